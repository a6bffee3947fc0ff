"""The book's data as the book's code sees it: padding spaces kept as characters, fixed-length targets.

``keep_source_padding`` and ``fixed_length_target`` (data options of a run) must turn a book-format file
into exactly the arrays the book's ``dataset/sequence.py`` builds -- checked against the book's own loader
where ``../shared`` holds it -- and leave the default (padding stripped, an end token) as it was.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from bench.data.batching import encode_split
from bench.data.tasks import textfile
from bench.data.vocab import BOS, EOS, PAD
from bench.errors import UserError
from bench.runner.cache import DataCache
from bench.spec.run import DataSpec, RunSpec
from tests.bookcode import BOOK_CODE, BOOK_DATA, book_modules, needs_book_code, needs_book_data

PAIRS = [("16+75", "91"), ("52+607", "659"), ("1+2", "3")] + [(f"{i}+{i * 7}", str(i * 8)) for i in range(1, 10)]
LINES = [f"{s:<7}_{t:<4}\n" for s, t in PAIRS]  # the book's fixed widths: "16+75  _91  "


@pytest.fixture
def mini(tmp_path) -> str:
    p = tmp_path / "mini.txt"
    p.write_text("".join(LINES), encoding="utf-8")
    return str(p)


def test_padding_is_kept_only_where_asked(mini: str) -> None:
    plain = {e.src: e.tgt for e in textfile.load(mini).train + textfile.load(mini).test}
    assert plain["16+75"] == "91"
    kept = textfile.load(mini, keep_source_padding=True, keep_target_padding=True)
    pairs = {e.src: e.tgt for e in kept.train + kept.test}
    assert pairs["16+75  "] == "91  " and pairs["52+607 "] == "659 "
    assert {len(s) for s in pairs} == {7} and {len(t) for t in pairs.values()} == {4}
    src_only = textfile.load(mini, keep_source_padding=True)
    assert {e.src: e.tgt for e in src_only.train + src_only.test}["16+75  "] == "91"
    # Same examples, same split: only the padding differs.
    assert [e.src.rstrip() for e in kept.train] == [e.src for e in textfile.load(mini).train]


def test_fixed_width_targets_are_required_to_keep_their_padding(tmp_path) -> None:
    p = tmp_path / "ragged.txt"
    p.write_text("".join(LINES) + "9+9    _18\n", encoding="utf-8")
    textfile.load(str(p), keep_source_padding=True)  # the sources may be ragged
    with pytest.raises(UserError, match="width"):
        textfile.load(str(p), keep_target_padding=True)


def test_reversing_a_padded_source_puts_the_padding_first(mini: str) -> None:
    d = textfile.load(mini, keep_source_padding=True)
    from bench.data.vocab import Vocab

    vocab = Vocab.from_texts(d.texts())
    enc = encode_split(d.train, vocab, reverse_source=True)
    sp = vocab.index[" "]
    row = next(i for i, e in enumerate(d.train) if e.src == "16+75  ")
    assert enc.src[row].tolist() == [sp, sp] + vocab.encode("57+61")  # the book reverses the padded line
    assert bool((enc.src_len == 7).all())  # every padding space is a real token: nothing is masked


def test_without_an_end_token_the_target_is_all_there_is(mini: str) -> None:
    from bench.data.vocab import Vocab

    d = textfile.load(mini, keep_target_padding=True)
    vocab = Vocab.from_texts(d.texts())
    fixed, plain = encode_split(d.train, vocab, eos=False), encode_split(d.train, vocab)
    t = vocab.encode(d.train[0].tgt)
    assert fixed.tgt_in[0].tolist() == [BOS] + t[:-1] and fixed.tgt_out[0].tolist() == t
    assert plain.tgt_in[0].tolist() == [BOS] + t and plain.tgt_out[0].tolist() == t + [EOS]
    assert EOS not in fixed.tgt_out and PAD not in fixed.tgt_out and bool((fixed.tgt_len == len(t)).all())


def test_data_options_reach_the_run_and_leave_old_keys_alone(mini: str) -> None:
    base = RunSpec("seq2seq", "book", 0, DataSpec(task="mini", task_file=mini))
    assert "keep_source_padding" not in base.config()["data"]  # runs stored before the options keep their key
    book = RunSpec("seq2seq", "book", 0, DataSpec(task="mini", task_file=mini, keep_source_padding=True, fixed_length_target=True))
    assert book.key() != base.key() and book.config()["data"]["fixed_length_target"] is True
    prep = DataCache().get(book.data)
    assert bool((prep.train.src_len == 7).all()) and EOS not in prep.train.tgt_out


@needs_book_code
@needs_book_data
@pytest.mark.parametrize("name, reverse", [("addition", True), ("addition", False), ("date", True)])
def test_the_book_format_is_the_books_own_arrays(name: str, reverse: bool) -> None:
    """Our encoded splits, mapped character by character, are the arrays of the book's ``load_data``
    (reversed as ``run_book.py`` reverses them), decoder input and target split as the book's ``Seq2seq.forward``."""
    path = os.path.join(BOOK_DATA, f"{name}.txt")
    prep = DataCache().get(DataSpec(task=name, task_file=path, reverse_source=reverse, keep_source_padding=True, fixed_length_target=True))
    with book_modules("dataset.sequence") as (sequence,):
        (x_train, t_train), (x_test, t_test) = sequence.load_data(os.path.relpath(path, os.path.join(BOOK_CODE, "dataset")))
        char_to_id = dict(sequence.get_vocab()[0])
    if reverse:
        x_train, x_test = x_train[:, ::-1], x_test[:, ::-1]
    to_book = np.full(len(prep.vocab), -1)
    for c, i in prep.vocab.index.items():
        to_book[i] = char_to_id[c]
    to_book[BOS] = char_to_id["_"]  # the book's start symbol
    for enc, x, t in ((prep.train, x_train, t_train), (prep.test, x_test, t_test)):
        assert np.array_equal(to_book[enc.src.numpy()], x)
        assert np.array_equal(to_book[enc.tgt_in.numpy()], t[:, :-1])
        assert np.array_equal(to_book[enc.tgt_out.numpy()], t[:, 1:])
    assert torch.equal(prep.valid.src, prep.test.src)  # the book scores its held-out 10 % every epoch
