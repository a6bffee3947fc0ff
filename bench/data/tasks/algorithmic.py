"""Algorithmic tasks: ``copy``, ``reverse`` and ``sort`` of a string over a small alphabet.

These are the tasks of the Neural Turing Machine paper (Graves et al. 2014, §4.1 copy, §4.5 priority sort)
and of Tensor2Tensor's ``algorithmic_*`` problems: the right answer *and* the right alignment are known
exactly, and a **length split** measures extrapolation -- train and valid hold sources with lengths in
``TaskOptions.train_lengths``; the test split holds half in-range lengths and half ``test_lengths``
(longer, by default), so accuracy by source length separates "learned the data" from "learned the
algorithm" (docs/design.md, "Splits"; book §8.1 on the fixed-length-vector bottleneck).

Alignments, per target character ``i`` of a source of length ``n``:

* copy    -- ``(i, i + 1)``;
* reverse -- ``(n - 1 - i, n - i)``;
* sort    -- the source position of the element of rank ``i``, ties broken stably (the leftmost equal
  character comes first). The order is the alphabet's order (for the default digits, numeric order).

Sources are drawn length first, uniformly over the range, then characters uniformly (so short lengths
are not starved by the exponentially many long strings); a length whose every string is already used is
dropped from the draw. All three tasks draw the same sources for the same seed, so their results compare
on identical inputs. Splits are disjoint by source string.

Lengths have no cap: the long-sequence sweeps (docs/design.md, "Throughput runs") use sources of 1024 characters and
test on up to 2048. Drawing, converting and sorting a source cost time about linear in its length (the
string's index is split in halves, not peeled digit by digit; sort is a counting sort), and the count of
strings per length is an exact integer however large.

Options: ``TaskOptions.train_lengths`` (default ``(1, 10)``), ``TaskOptions.test_lengths`` (default
``(hi + 1, 2 * hi)`` for a training range ending at ``hi``, i.e. ``(11, 20)``), and
``TaskOptions.extra["alphabet"]`` (a string of distinct characters; default ``"0123456789"``).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from bench.data.tasks.base import Example, TaskData, TaskOptions, register
from bench.errors import UserError

DEFAULT_ALPHABET = "0123456789"
DEFAULT_TRAIN_LENGTHS = (1, 10)


# --- the three transformations: source -> example with its alignment ------------------------------


def copy_example(src: str, alphabet: str = DEFAULT_ALPHABET) -> Example:
    return Example(src, src, tuple((i, i + 1) for i in range(len(src))))


def reverse_example(src: str, alphabet: str = DEFAULT_ALPHABET) -> Example:
    n = len(src)
    return Example(src, src[::-1], tuple((n - 1 - i, n - i) for i in range(n)))


def sort_example(src: str, alphabet: str = DEFAULT_ALPHABET) -> Example:
    # Counting sort, linear in the length: positions bucketed by character, buckets in the alphabet's order;
    # each bucket keeps source order, so ties are stable.
    buckets: dict[str, list[int]] = {c: [] for c in alphabet}
    for i, c in enumerate(src):
        buckets[c].append(i)
    order = [i for c in alphabet for i in buckets[c]]
    return Example(src, "".join(c * len(buckets[c]) for c in alphabet), tuple((i, i + 1) for i in order))


# --- options ------------------------------------------------------------------------------------------


def _alphabet(opts: TaskOptions) -> str:
    a = opts.extra.get("alphabet", DEFAULT_ALPHABET)
    if isinstance(a, (list, tuple)) and all(isinstance(c, str) and len(c) == 1 for c in a):
        a = "".join(a)
    if not isinstance(a, str) or not a:
        raise UserError(f"option 'alphabet' must be a non-empty string of characters, got {a!r}")
    if len(set(a)) != len(a):
        dup = sorted({c for c in a if a.count(c) > 1})
        raise UserError(f"option 'alphabet' repeats character(s) {''.join(dup)!r}; give each character once")
    return a


def _range(name: str, value: object) -> tuple[int, int]:
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) for x in value)
        and 1 <= value[0] <= value[1]
    )
    if not ok:
        raise UserError(f"option {name!r} must be (low, high) with 1 <= low <= high, got {value!r}")
    return int(value[0]), int(value[1])  # type: ignore[index]


def length_ranges(opts: TaskOptions) -> tuple[tuple[int, int], tuple[int, int]]:
    """-> (train_lengths, test_lengths) with the defaults applied and checked."""
    train = _range("train_lengths", opts.train_lengths if opts.train_lengths is not None else DEFAULT_TRAIN_LENGTHS)
    test = _range("test_lengths", opts.test_lengths) if opts.test_lengths is not None else (train[1] + 1, 2 * train[1])
    return train, test


# --- sampling distinct sources, length first ------------------------------------------------------------


_DIGITS_BY_ONE = 32  # below this length a string's digits are peeled off one by one


def _to_string(index: int, n: int, alphabet: str, powers: dict[int, int] | None = None) -> str:
    """The ``index``-th string of length ``n`` (base-|alphabet| digits, most significant first).

    Peeling the n digits one by one divides an n-digit number n times: quadratic in n (a 1024-character
    source took 2 ms). Long strings are split instead: one division by k^(n/2) gives the two halves'
    indices, recursively, down to short runs peeled digit by digit -- the same string, several times
    faster at length 1024. ``powers`` caches k^m across calls for the same alphabet.
    """
    k = len(alphabet)
    pw = {} if powers is None else powers
    out: list[str] = []

    def emit(idx: int, m: int) -> None:
        if m <= _DIGITS_BY_ONE:
            chars = []
            for _ in range(m):
                idx, d = divmod(idx, k)
                chars.append(alphabet[d])
            out.extend(reversed(chars))
            return
        low = m // 2
        if low not in pw:
            pw[low] = k**low
        high_idx, low_idx = divmod(idx, pw[low])
        emit(high_idx, m - low)
        emit(low_idx, low)

    emit(index, n)
    return "".join(out)


def _fmt(lo: int, hi: int) -> str:
    return f"length {lo}" if lo == hi else f"lengths {lo}-{hi}"


def draw_sources(rng: random.Random, lengths: tuple[int, int], k: int, alphabet: str, used: dict[int, set[int]], what: str) -> list[str]:
    """Draw ``k`` distinct source strings with lengths in ``lengths`` that are not in ``used`` (updated).

    Each draw picks a length uniformly among the lengths that still have unused strings, then a string of
    that length uniformly among the unused ones (rejection, or an explicit pick from the free strings once
    more than half of them would be taken, so exhausting a short length costs no more than listing it).
    Raises UserError when the range cannot hold ``k`` more distinct strings.
    """
    lo, hi = lengths
    size = {n: len(alphabet) ** n for n in range(lo, hi + 1)}
    free = {n: size[n] - len(used.get(n, ())) for n in size}
    if sum(free.values()) < k:
        have = sum(free.values())
        raise UserError(
            f"{what}: only {have:,} distinct sources of {_fmt(lo, hi)} over a {len(alphabet)}-character alphabet are left, "
            f"{k:,} are needed; widen the length range, use a larger alphabet or ask for fewer examples"
        )
    # 1. how many strings of each length: the length is drawn uniformly among the lengths not yet full.
    counts = dict.fromkeys(size, 0)
    open_ = [n for n in size if free[n] > 0]
    for _ in range(k):
        n = open_[rng.randrange(len(open_))]
        counts[n] += 1
        if counts[n] == free[n]:
            open_.remove(n)
    # 2. which strings: distinct indices per length.
    out: list[str] = []
    powers: dict[int, int] = {}  # k^m, shared by every string drawn here
    for n in size:
        c = counts[n]
        if not c:
            continue
        taken = used.setdefault(n, set())
        if 2 * c > free[n]:  # most of what is left: list the free strings (few, since free[n] < 2c)
            picks = rng.sample([i for i in range(size[n]) if i not in taken], c)
        else:
            picks = []
            new: set[int] = set()
            while len(picks) < c:
                i = rng.randrange(size[n])
                if i not in taken and i not in new:
                    new.add(i)
                    picks.append(i)
        taken.update(picks)
        out.extend(_to_string(i, n, alphabet, powers) for i in picks)
    rng.shuffle(out)
    return out


def length_split(name: str, transform: Callable[[str, str], Example], opts: TaskOptions) -> TaskData:
    """Train/valid/test for an algorithmic task with a length split, disjoint by source string.

    The in-range pool (train + valid + half the test) is drawn at once and shuffled, so all three splits
    share the same length distribution; the other half of the test is drawn from ``test_lengths`` among the
    strings not used yet (the ranges may overlap). Same ``opts``, same examples, in the same order.
    """
    alphabet = _alphabet(opts)
    train_len, test_len = length_ranges(opts)
    for key in ("train", "valid", "test"):
        v = getattr(opts, key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise UserError(f"task {name}: the {key} size must be a non-negative integer, got {v!r}")
    rng = random.Random(opts.seed)
    used: dict[int, set[int]] = {}
    test_in = opts.test // 2
    pool = draw_sources(rng, train_len, opts.train + opts.valid + test_in, alphabet, used, f"task {name} (train/valid/test in range)")
    longer = draw_sources(rng, test_len, opts.test - test_in, alphabet, used, f"task {name} (test_lengths)")
    test = pool[opts.train + opts.valid :] + longer
    rng.shuffle(test)

    def ex(srcs: list[str]) -> list[Example]:
        return [transform(s, alphabet) for s in srcs]

    a, b = opts.train, opts.train + opts.valid
    return TaskData(name, ex(pool[:a]), ex(pool[a:b]), ex(test), source=f"generator:{name}")


@register("copy", "copy a digit string (NTM §4.1); length split: train on short, test also on longer", aligned=True, lengths=True)
def make_copy(opts: TaskOptions) -> TaskData:
    return length_split("copy", copy_example, opts)


@register("reverse", "reverse a digit string (Tensor2Tensor); length split", aligned=True, lengths=True)
def make_reverse(opts: TaskOptions) -> TaskData:
    return length_split("reverse", reverse_example, opts)


@register("sort", "sort a digit string, stable (NTM §4.5 priority sort); length split", aligned=True, lengths=True)
def make_sort(opts: TaskOptions) -> TaskData:
    return length_split("sort", sort_example, opts)


__all__ = ["copy_example", "draw_sources", "length_ranges", "length_split", "reverse_example", "sort_example"]
