"""copy / reverse / sort: deterministic generators, exact alignments, the length split, disjoint splits, clear errors."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from bench.data import tasks
from bench.data.batching import encode_split
from bench.data.tasks import TaskData, TaskOptions
from bench.data.tasks.algorithmic import _to_string, copy_example, reverse_example, sort_example
from bench.data.vocab import Vocab
from bench.errors import UserError

ALGO = ("copy", "reverse", "sort")
SMALL = dict(train=300, valid=50, test=100)


def _all(d: TaskData):
    return d.train + d.valid + d.test


def test_registered_with_alignments():
    for name in ALGO:
        assert name in tasks.names()
        assert tasks.entry(name).aligned


def test_only_the_tasks_that_draw_lengths_take_them():
    """The registry says which tasks a --length sweep or a length split applies to (the runner refuses the rest)."""
    assert {n for n in tasks.names() if tasks.entry(n).lengths} == set(ALGO)


def test_the_three_transformations():
    assert copy_example("38172").tgt == "38172"
    assert reverse_example("38172").tgt == "27183"
    assert sort_example("38172").tgt == "12378"
    assert copy_example("38172").align == ((0, 1), (1, 2), (2, 3), (3, 4), (4, 5))
    assert reverse_example("38172").align == ((4, 5), (3, 4), (2, 3), (1, 2), (0, 1))
    # rank i <- source position of the i-th smallest: 1@2, 2@4, 3@0, 7@3, 8@1
    assert sort_example("38172").align == ((2, 3), (4, 5), (0, 1), (3, 4), (1, 2))
    # ties are stable: the leftmost equal character comes first
    assert sort_example("2121").align == ((1, 2), (3, 4), (0, 1), (2, 3))
    # the alphabet defines the order
    assert sort_example("xzy", alphabet="zyx").tgt == "zyx"


@pytest.mark.parametrize("name", ALGO)
def test_deterministic_per_seed(name):
    a = tasks.make(name, TaskOptions(seed=3, **SMALL))
    b = tasks.make(name, TaskOptions(seed=3, **SMALL))
    c = tasks.make(name, TaskOptions(seed=4, **SMALL))
    assert a == b
    assert [e.src for e in a.train] != [e.src for e in c.train]
    assert (len(a.train), len(a.valid), len(a.test)) == (300, 50, 100)


@pytest.mark.parametrize("name", ALGO)
def test_alignment_points_at_the_target_character(name):
    d = tasks.make(name, TaskOptions(seed=0, **SMALL))
    for ex in _all(d):
        assert len(ex.align) == len(ex.tgt) == len(ex.src)
        assert sorted(ex.align) == [(i, i + 1) for i in range(len(ex.src))]  # a permutation of the positions
        for ch, (lo, hi) in zip(ex.tgt, ex.align, strict=True):
            assert ex.src[lo:hi] == ch
        if name == "sort":
            assert list(ex.tgt) == sorted(ex.src)
            for i in range(len(ex.tgt) - 1):  # stable: equal characters keep their source order
                if ex.tgt[i] == ex.tgt[i + 1]:
                    assert ex.align[i][0] < ex.align[i + 1][0]


def test_alignment_survives_source_reversal():
    d = tasks.make("copy", TaskOptions(seed=0, **SMALL))
    vocab = Vocab.from_texts(d.texts())
    enc = encode_split(d.train, vocab, reverse_source=True)
    for i, ex in enumerate(d.train):
        src = vocab.decode(enc.src[i].tolist())
        assert src == ex.src[::-1]
        for ch, (lo, hi) in zip(ex.tgt, enc.align[i], strict=True):
            assert src[lo:hi] == ch


def test_length_split_defaults():
    d = tasks.make("copy", TaskOptions(seed=0, train=2000, valid=200, test=400))
    assert all(1 <= len(e.src) <= 10 for e in d.train + d.valid)
    test_lens = Counter(len(e.src) for e in d.test)
    assert sum(v for k, v in test_lens.items() if k <= 10) == 200  # half in range
    assert sum(v for k, v in test_lens.items() if 11 <= k <= 20) == 200  # half longer
    assert set(test_lens) - set(range(1, 21)) == set()
    assert {11, 20} <= set(test_lens)


def test_length_split_custom_ranges_and_alphabet():
    opts = TaskOptions(seed=1, train=400, valid=40, test=81, train_lengths=(3, 6), test_lengths=(9, 12), extra={"alphabet": "xyz"})
    d = tasks.make("reverse", opts)
    assert {len(e.src) for e in d.train + d.valid} == {3, 4, 5, 6}
    lens = [len(e.src) for e in d.test]
    assert sum(3 <= n <= 6 for n in lens) == 40 and sum(9 <= n <= 12 for n in lens) == 41
    assert set("".join(e.src + e.tgt for e in _all(d))) == set("xyz")
    # only train_lengths given: the test range defaults to the next lengths up to twice the longest
    d2 = tasks.make("copy", TaskOptions(seed=0, train=100, valid=10, test=20, train_lengths=(1, 4)))
    assert {len(e.src) for e in d2.test if len(e.src) > 4} <= set(range(5, 9))


def test_short_lengths_are_not_starved():
    # Drawn length first: a length-1 string is as likely as a length-10 one until all ten are used.
    d = tasks.make("copy", TaskOptions(seed=0, train=2000, valid=100, test=200))
    srcs = {e.src for e in _all(d)}
    assert {str(i) for i in range(10)} <= srcs
    assert sum(len(s) == 2 for s in srcs) == 100
    per_len = Counter(len(e.src) for e in d.train)
    assert min(per_len[n] for n in range(3, 11)) > 100  # 2000 over 10 lengths: ~200 each where there is room


@pytest.mark.parametrize("name", ALGO)
def test_splits_disjoint_and_unique(name):
    d = tasks.make(name, TaskOptions(seed=0, train=500, valid=100, test=200))
    tr, va, te = ({e.src for e in s} for s in (d.train, d.valid, d.test))
    assert len(tr) == 500 and len(va) == 100 and len(te) == 200  # no duplicates inside a split
    assert not tr & va and not tr & te and not va & te


def test_overlapping_ranges_stay_disjoint_and_can_exhaust_exactly():
    # 2 + 4 + 8 = 14 strings of length 1-3 over "ab": asking for all 14 gives each exactly once.
    opts = TaskOptions(seed=0, train=6, valid=2, test=6, train_lengths=(1, 3), test_lengths=(1, 3), extra={"alphabet": "ab"})
    d = tasks.make("copy", opts)
    srcs = [e.src for e in _all(d)]
    assert len(srcs) == len(set(srcs)) == 14


@pytest.mark.parametrize(
    "opts, message",
    [
        (TaskOptions(train_lengths=(0, 3)), "train_lengths"),
        (TaskOptions(train_lengths=(5, 3)), "train_lengths"),
        (TaskOptions(train_lengths=(1,)), "train_lengths"),  # type: ignore[arg-type]
        (TaskOptions(test_lengths=(2.5, 3)), "test_lengths"),  # type: ignore[arg-type]
        (TaskOptions(train=200, valid=10, test=10, train_lengths=(1, 2)), "only 110 distinct sources of lengths 1-2"),
        (TaskOptions(train=10, valid=10, test=10, train_lengths=(1, 3), extra={"alphabet": "ab"}), "only 14 distinct"),
        (TaskOptions(train=4, valid=2, test=4, test_lengths=(11, 11), extra={"alphabet": "a"}), "only 1 distinct sources of length 11"),
        (TaskOptions(extra={"alphabet": "abca"}), "repeats"),
        (TaskOptions(extra={"alphabet": ""}), "alphabet"),
        (TaskOptions(extra={"alphabet": 7}), "alphabet"),
        (TaskOptions(train=-1), "train size"),
    ],
)
def test_bad_options_are_user_errors(opts, message):
    with pytest.raises(UserError, match=message):
        tasks.make("copy", opts)


# ---------------------------------------------------------------------------------------------------- long sequences


def _to_string_digit_by_digit(index: int, n: int, alphabet: str) -> str:
    """The definition: base-|alphabet| digits of ``index``, most significant first, n of them."""
    chars = []
    for _ in range(n):
        index, d = divmod(index, len(alphabet))
        chars.append(alphabet[d])
    return "".join(reversed(chars))


@pytest.mark.parametrize("alphabet", ["0123456789", "ab", "abcdefghijklmnopqrstuvwxyz"])
def test_long_strings_are_the_same_strings(alphabet):
    """The split-in-halves conversion gives exactly the digit-by-digit strings (the data of a seed never moves)."""
    rng = random.Random(0)
    powers: dict[int, int] = {}
    for n in [*range(0, 70), 127, 128, 129, 1000, 1024, 2048]:
        for index in {0, len(alphabet) ** n - 1, rng.randrange(len(alphabet) ** n)}:
            assert _to_string(index, n, alphabet, powers) == _to_string_digit_by_digit(index, n, alphabet)


@pytest.mark.parametrize("name", ALGO)
def test_sources_up_to_2048_characters(name):
    """Long-sequence sweeps: train on lengths near 1024, test up to twice that; examples stay exact."""
    d = tasks.make(name, TaskOptions(seed=0, train=40, valid=4, test=8, train_lengths=(1000, 1024)))
    assert all(1000 <= len(e.src) <= 1024 for e in d.train + d.valid)
    assert all(1000 <= len(e.src) <= 2048 for e in d.test) and max(len(e.src) for e in d.test) > 1024
    for ex in _all(d):
        assert len(ex.tgt) == len(ex.src) == len(ex.align)
        assert ex.tgt == {"copy": ex.src, "reverse": ex.src[::-1], "sort": "".join(sorted(ex.src))}[name]
        assert "".join(ex.src[lo] for lo, _ in ex.align) == ex.tgt
    assert len({e.src for e in _all(d)}) == 52


def test_sort_is_stable_in_the_alphabets_order():
    src = "".join(random.Random(1).choice("cab") for _ in range(3000))
    ex = sort_example(src, alphabet="cab")
    assert ex.tgt == "c" * src.count("c") + "a" * src.count("a") + "b" * src.count("b")
    assert [lo for lo, _ in ex.align] == sorted(range(len(src)), key=lambda i: ("cab".index(src[i]), i))
