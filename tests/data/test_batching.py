"""Vocabulary, encoding (with source reversal and its alignment mapping) and length-bucketed batching."""

from __future__ import annotations

import pytest
import torch

from bench.data import tasks
from bench.data.batching import batches, encode_split
from bench.data.tasks import Example, TaskOptions
from bench.data.vocab import BOS, EOS, PAD, Vocab, lengths_mask, pad_batch


@pytest.fixture(scope="module")
def date_data() -> tasks.TaskData:
    return tasks.make("date", TaskOptions(seed=1, train=203, valid=20, test=20))


@pytest.fixture(scope="module")
def vocab(date_data) -> Vocab:
    return Vocab.from_texts(date_data.texts())


# --- vocabulary ------------------------------------------------------------------------------------


def test_special_ids_are_fixed() -> None:
    assert (PAD, BOS, EOS) == (0, 1, 2)
    v = Vocab.from_texts(["ab", "ba c"])
    assert [v.token(i) for i in range(3)] == ["<pad>", "<bos>", "<eos>"]
    assert len(v) == 3 + 4  # ' ', a, b, c
    assert min(v.encode("abc ")) >= 3


def test_encode_decode_round_trip(vocab, date_data) -> None:
    for ex in date_data.train[:50]:
        for text in (ex.src, ex.tgt):
            ids = vocab.encode(text)
            assert len(ids) == len(text)
            assert vocab.decode(ids) == text
            assert "".join(vocab.token(i) for i in ids) == text


def test_decode_skips_pad_bos_and_stops_at_eos() -> None:
    v = Vocab.from_texts(["abc"])
    a, b, c = v.encode("abc")
    assert v.decode([BOS, a, PAD, b, EOS, c, c]) == "ab"
    assert v.decode(torch.tensor([a, b, c])) == "abc"
    assert v.decode([EOS, a]) == ""


def test_encode_rejects_unknown_characters() -> None:
    with pytest.raises(ValueError, match="'z'"):
        Vocab.from_texts(["abc"]).encode("abz")


def test_pad_batch_and_lengths_mask() -> None:
    x = pad_batch([[5, 6, 7], [8], []])
    assert x.tolist() == [[5, 6, 7], [8, PAD, PAD], [PAD, PAD, PAD]]
    assert pad_batch([[5]], length=4).tolist() == [[5, PAD, PAD, PAD]]
    m = lengths_mask(torch.tensor([3, 1, 0]), 3)
    assert m.tolist() == [[True, True, True], [True, False, False], [False, False, False]]


# --- encoding --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
def test_encode_split_tensors(vocab, date_data, reverse: bool) -> None:
    exs = date_data.train[:40]
    enc = encode_split(exs, vocab, reverse_source=reverse)
    assert len(enc) == 40 and enc.reversed_source is reverse
    for i, ex in enumerate(exs):
        n, t = int(enc.src_len[i]), len(ex.tgt)
        assert n == len(ex.src)
        want = ex.src[::-1] if reverse else ex.src
        assert vocab.decode(enc.src[i, :n]) == want
        assert (enc.src[i, n:] == PAD).all()
        assert int(enc.tgt_len[i]) == t + 1
        assert enc.tgt_in[i, 0] == BOS and vocab.decode(enc.tgt_in[i, 1 : t + 1]) == ex.tgt
        assert vocab.decode(enc.tgt_out[i, :t]) == ex.tgt and enc.tgt_out[i, t] == EOS
        assert (enc.tgt_out[i, t + 1 :] == PAD).all() and (enc.tgt_in[i, t + 1 :] == PAD).all()


def test_reversal_maps_alignment_spans(vocab, date_data) -> None:
    exs = date_data.train[:80]
    plain = encode_split(exs, vocab)
    rev = encode_split(exs, vocab, reverse_source=True)
    assert plain.align == tuple(ex.align for ex in exs)
    checked = 0
    for i, ex in enumerate(exs):
        src_rev = ex.src[::-1]
        assert vocab.decode(rev.src[i, : len(ex.src)]) == src_rev
        for sp, orig in zip(rev.align[i], ex.align, strict=True):
            assert (sp is None) == (orig is None)
            if sp is None:
                continue
            assert src_rev[sp[0] : sp[1]] == ex.src[orig[0] : orig[1]][::-1]
            assert sp[1] - sp[0] == orig[1] - orig[0]
            checked += 1
    assert checked == 80 * 8


def test_examples_without_alignment_stay_without(vocab) -> None:
    v = Vocab.from_texts(["12+3", "15"])
    enc = encode_split([Example("12+3", "15")], v, reverse_source=True)
    assert enc.align == (None,)


# --- batching --------------------------------------------------------------------------------------


def _enc(vocab, date_data):
    return encode_split(date_data.train, vocab)  # 203 rows: not a multiple of the batch size


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("batch_size, bucket", [(16, 2), (16, 50), (7, 1), (500, 3)])
def test_batches_cover_every_row_once_trimmed_and_masked(vocab, date_data, shuffle, batch_size, bucket) -> None:
    enc = _enc(vocab, date_data)
    gen = torch.Generator().manual_seed(0)
    seen = []
    for b in batches(enc, batch_size, shuffle=shuffle, generator=gen, bucket=bucket):
        idx = b.index
        assert 1 <= len(idx) <= batch_size
        seen += idx.tolist()
        lens = enc.src_len[idx]
        S, T = int(lens.max()), int(enc.tgt_len[idx].max())
        assert b.src.shape == (len(idx), S) and b.src_mask.shape == (len(idx), S)  # trimmed to its longest source
        assert b.tgt_in.shape == (len(idx), T) and b.tgt_out.shape == (len(idx), T)
        assert torch.equal(b.src_mask, torch.arange(S)[None, :] < lens[:, None])  # True exactly on real tokens
        assert (b.src[b.src_mask] != PAD).all() and (b.src[~b.src_mask] == PAD).all()
        assert torch.equal(b.src, enc.src[idx, :S]) and torch.equal(b.tgt_out, enc.tgt_out[idx, :T])
        assert torch.equal(b.tgt_in, enc.tgt_in[idx, :T])
        assert b.target_tokens == int(enc.tgt_len[idx].sum())
    assert sorted(seen) == list(range(len(enc)))


def test_unshuffled_batches_are_sorted_by_length(vocab, date_data) -> None:
    enc = _enc(vocab, date_data)
    order = torch.cat([b.index for b in batches(enc, 16, shuffle=False)])
    lens = enc.src_len[order]
    assert (lens[1:] >= lens[:-1]).all()


def test_same_generator_seed_same_batch_order(vocab, date_data) -> None:
    enc = _enc(vocab, date_data)

    def order(seed: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(seed)
        return [b.index.tolist() for b in batches(enc, 16, shuffle=True, generator=g, bucket=2)]

    assert order(7) == order(7)
    assert order(7) != order(8)
    # one generator, two epochs: a different order each epoch
    g = torch.Generator().manual_seed(7)
    e1 = [b.index.tolist() for b in batches(enc, 16, shuffle=True, generator=g)]
    e2 = [b.index.tolist() for b in batches(enc, 16, shuffle=True, generator=g)]
    assert e1 != e2


def test_shuffled_batches_group_similar_lengths(vocab, date_data) -> None:
    # Bucketing: with one pool holding the whole split, each batch spans far fewer lengths than a random batch.
    enc = _enc(vocab, date_data)
    g = torch.Generator().manual_seed(0)
    spreads = [int(enc.src_len[b.index].max() - enc.src_len[b.index].min()) for b in batches(enc, 16, shuffle=True, generator=g, bucket=50)]
    total = int(enc.src_len.max() - enc.src_len.min())
    assert sum(spreads) / len(spreads) < total / 2
