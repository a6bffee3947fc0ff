"""Size ``book`` is the book's code ("Deep Learning from Scratch 2", ch. 7-8), and the other sizes are unchanged.

Where ``../shared`` holds the book's numpy code, its models (with its own initialisation) are copied weight by
weight into ours at size ``book`` and both are run on the same book-format batch: the logits, the loss and
the greedy answers must agree. Without it, the options are checked on their own.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from torch import nn

import models
from bench.data.vocab import BOS, EOS, PAD
from bench.runner.cache import DataCache
from bench.spec.run import DataSpec
from bench.train.loop import loss_fn
from tests.bookcode import BOOK_DATA, book_modules, needs_book_code, needs_book_data

V = models.BUDGET_VOCAB
BOOK = ("seq2seq", "peeky", "attention")


# ---------------------------------------------------------------------------------------------- the options


def test_book_size_sets_the_books_values_and_only_it() -> None:
    for name in ("seq2seq", "peeky"):
        cfg = models.config(name, V, "book")
        assert (cfg.carry_cell, cfg.init, cfg.one_bias) == (False, "book", True)
        for size in models.BUDGETS:  # today's behaviour at the equivalent sizes
            cfg = models.config(name, V, size)
            assert (cfg.carry_cell, cfg.init, cfg.one_bias) == (True, "torch", False)
    cfg = models.config("attention", V, "book")
    assert (cfg.shared_embedding, cfg.init, cfg.one_bias) == (False, "book", True)
    for size in models.BUDGETS:
        cfg = models.config("attention", V, size)
        assert (cfg.shared_embedding, cfg.init, cfg.one_bias) == (True, "torch", False)


def test_an_unknown_init_is_refused() -> None:
    with pytest.raises(ValueError, match="init"):
        models.config("seq2seq", V, "book", init="xavier")
    with pytest.raises(ValueError, match="init"):
        models.config("attention", V, "book", init="xavier")


@pytest.mark.parametrize("name", BOOK)
def test_book_init_has_the_books_scales(name: str) -> None:
    """Embeddings N(0, 0.01^2), weights N(0, 1/fan_in), biases 0 (ch07/seq2seq.py); PAD's row stays zero."""
    torch.manual_seed(0)
    model = models.build(name, V, "book")
    for pname, p in model.named_parameters():
        if "bias" in pname:
            assert (p == 0).all(), pname
        elif "embed" in pname:
            assert abs(float(p.detach()[1:].std()) - 0.01) < 0.001 and (p[0] == 0).all(), pname
        else:
            want = 1 / math.sqrt(p.size(1))
            assert abs(float(p.detach().std()) - want) < 0.05 * want and abs(float(p.detach().mean())) < 0.05 * want, pname
    torch.manual_seed(0)
    default = models.build(name, V, "book", init="torch")  # PyTorch's defaults: uniform, biases nonzero
    assert any(("bias" in n and (p != 0).any()) for n, p in default.named_parameters())


@pytest.mark.parametrize("name", ("seq2seq", "peeky"))
def test_without_carry_cell_the_decoder_starts_from_h_and_a_zero_cell(name: str) -> None:
    torch.manual_seed(0)
    model = models.build(name, V, "tiny", carry_cell=False).eval()
    src = torch.randint(3, V, (4, 6))
    mask = torch.ones_like(src, dtype=torch.bool)
    tgt_in = torch.randint(3, V, (4, 5))
    with torch.no_grad():
        _, (h, c) = model.encoder(model.src_embed(src))
        assert (c != 0).any()
        want, _ = model._decode(tgt_in, (h, torch.zeros_like(c)), h[0])
        torch.testing.assert_close(model(src, mask, tgt_in), want, rtol=0, atol=1e-6)
        carried = models.build(name, V, "tiny").eval()
        carried.load_state_dict(model.state_dict())
        assert not torch.allclose(carried(src, mask, tgt_in), want)


@pytest.mark.parametrize("name", BOOK)
def test_one_bias_holds_the_second_lstm_bias_at_zero_through_training(name: str) -> None:
    torch.manual_seed(0)
    model = models.build(name, V, "tiny", one_bias=True, init="torch")
    src = torch.randint(3, V, (4, 6))
    mask = torch.ones_like(src, dtype=torch.bool)
    tgt = torch.randint(3, V, (4, 5))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        loss_fn(model(src, mask, tgt), tgt).backward()
        opt.step()
    named = dict(model.named_parameters())
    hh = [n for n in named if "bias_hh" in n]
    assert hh and all((named[n] == 0).all() and not named[n].requires_grad for n in hh)
    assert all((named[n.replace("bias_hh", "bias_ih")] != 0).any() for n in hh)  # the one bias does learn
    two = dict(models.build(name, V, "tiny").named_parameters())
    assert all(two[n].requires_grad for n in hh)


def test_separate_target_embedding_is_used_by_the_decoder() -> None:
    torch.manual_seed(0)
    model = models.build("attention", V, "tiny", shared_embedding=False).eval()
    assert model.tgt_embed is not None and model.tgt_embed.weight is not model.embed.weight
    src = torch.randint(3, V, (3, 5))
    mask = torch.ones_like(src, dtype=torch.bool)
    tgt_in = torch.randint(3, V, (3, 4))
    with torch.no_grad():
        ref = model(src, mask, tgt_in)
        model.tgt_embed.weight.add_(1.0)  # only the decoder reads it
        assert not torch.allclose(model(src, mask, tgt_in), ref)
    shared = models.build("attention", V, "tiny")
    assert shared.tgt_embed is None
    assert models.count_params(model) - models.count_params(shared) == V * model.cfg.embed


# ------------------------------------------------------------------------------- against the book's code


def _gates(w: np.ndarray) -> np.ndarray:
    """Book LSTM columns (f, g, i, o) -> torch rows (i, f, g, o): [in, 4H] -> [4H, in]."""
    f, g, i, o = np.split(w, 4, axis=-1)
    return np.concatenate([i, f, g, o], axis=-1).T


def _lstm(lstm: nn.LSTM, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray) -> None:
    lstm.weight_ih_l0.copy_(torch.from_numpy(_gates(Wx)))
    lstm.weight_hh_l0.copy_(torch.from_numpy(_gates(Wh)))
    lstm.bias_ih_l0.copy_(torch.from_numpy(_gates(b[None])[:, 0]))
    lstm.bias_hh_l0.zero_()  # the book has one bias


@torch.no_grad()
def _copy_book(book, ours: models.Seq2Seq, name: str, to_book: np.ndarray) -> None:
    """Load the book model's weights into ours. ``to_book``: our id -> the book's id (-1: none)."""
    H = ours.cfg.hidden
    known = to_book >= 0

    def embed(table: nn.Embedding, W: np.ndarray) -> None:
        table.weight.zero_()
        table.weight[torch.from_numpy(known)] = torch.from_numpy(W[to_book[known]])

    enc, dec = book.encoder, book.decoder
    if name == "attention":
        embed(ours.embed, enc.embed.W)
        embed(ours.tgt_embed, dec.embed.W)
    else:
        embed(ours.src_embed, enc.embed.W)
        embed(ours.tgt_embed, dec.embed.W)
    _lstm(ours.encoder, *enc.lstm.params)
    Wx, Wh, b = dec.lstm.params
    W, bo = dec.affine.params
    if name == "peeky":  # the book concatenates (h_enc, x) and (h_enc, y); ours (x, h_enc) and (y, h_enc)
        Wx = np.concatenate([Wx[H:], Wx[:H]])
        W = np.concatenate([W[H:], W[:H]])
    _lstm(ours.decoder, Wx, Wh, b)
    ours.out.weight.zero_()
    ours.out.weight[torch.from_numpy(known)] = torch.from_numpy(W[:, to_book[known]].T)
    ours.out.bias.fill_(-1e4)  # our PAD and EOS: the book has no such class
    ours.out.bias[torch.from_numpy(known)] = torch.from_numpy(bo[to_book[known]])


@needs_book_code
@needs_book_data
@pytest.mark.parametrize("name", BOOK)
def test_book_size_computes_what_the_books_code_computes(name: str) -> None:
    """The book's model and ours at size book, same weights, same reversed addition batch (padding read as
    characters, fixed-length target): same logits, same loss, same greedy answers. This pins the decoder's
    zero cell state, the padding the encoder reads, peeky's concatenations and attention over every position;
    and the same gradients, so a training step differs only in the optimiser's arithmetic."""
    path = os.path.join(BOOK_DATA, "addition.txt")
    prep = DataCache().get(DataSpec(task="addition", task_file=path, reverse_source=True, keep_source_padding=True,
                                    fixed_length_target=True))
    with book_modules("dataset.sequence", "seq2seq", "peeky_seq2seq", "attention_seq2seq") as (sequence, s2s, peeky, att):
        sequence.load_data(os.path.relpath(path, os.path.join(os.path.dirname(sequence.__file__))))
        char_to_id = dict(sequence.get_vocab()[0])
        cls = {"seq2seq": s2s.Seq2seq, "peeky": peeky.PeekySeq2seq, "attention": att.AttentionSeq2seq}[name]
        H = models.config(name, V, "book").hidden
        np.random.seed(0)
        book = cls(len(char_to_id), 16, H)
        to_book = np.full(len(prep.vocab), -1)
        for c, i in prep.vocab.index.items():
            to_book[i] = char_to_id[c]
        to_book[BOS] = char_to_id["_"]
        ours = models.build(name, len(prep.vocab), "book").eval()
        _copy_book(book, ours, name, to_book)

        rows = torch.arange(48)
        src, tgt_in, tgt_out = prep.train.src[rows], prep.train.tgt_in[rows], prep.train.tgt_out[rows]
        mask = torch.ones_like(src, dtype=torch.bool)
        xs, ts = to_book[src.numpy()], np.concatenate([to_book[tgt_in.numpy()], to_book[tgt_out.numpy()[:, -1:]]], axis=1)
        enc_out = book.encoder.forward(xs)
        score = book.decoder.forward(ts[:, :-1], enc_out)
        loss = book.forward(xs, ts)
        book.backward()
        answers = [book.generate(xs[[i]], char_to_id["_"], tgt_out.size(1)) for i in range(8)]
    ours.train()
    logits = ours(src, mask, tgt_in)
    loss_fn(logits, tgt_out).backward()  # the gradients too: one training step computes the same thing
    for lstm, (gWx, gWh, gb) in ((ours.encoder, book.encoder.lstm.grads), (ours.decoder, book.decoder.lstm.grads)):
        if lstm is ours.decoder and name == "peeky":
            gWx = np.concatenate([gWx[H:], gWx[:H]])
        torch.testing.assert_close(lstm.weight_ih_l0.grad, torch.from_numpy(_gates(gWx)), rtol=1e-3, atol=1e-5)
        torch.testing.assert_close(lstm.weight_hh_l0.grad, torch.from_numpy(_gates(gWh)), rtol=1e-3, atol=1e-5)
        torch.testing.assert_close(lstm.bias_ih_l0.grad, torch.from_numpy(_gates(gb[None])[:, 0]), rtol=1e-3, atol=1e-5)
    src_embed = ours.embed if name == "attention" else ours.src_embed
    known_ids = torch.from_numpy(np.flatnonzero(to_book >= 0))
    torch.testing.assert_close(src_embed.weight.grad[known_ids], torch.from_numpy(book.encoder.embed.grads[0][to_book[known_ids.numpy()]]),
                               rtol=1e-3, atol=1e-6)
    ours.eval()
    with torch.no_grad():
        logits = ours(src, mask, tgt_in)
        gen = ours.generate(src[:8], mask[:8], tgt_out.size(1), BOS, EOS)
    known = torch.from_numpy(np.flatnonzero(to_book >= 0))
    order = torch.from_numpy(to_book[known.numpy()])
    mine = torch.empty_like(torch.from_numpy(score))
    mine[..., order] = logits[..., known]
    torch.testing.assert_close(mine, torch.from_numpy(score), rtol=1e-4, atol=1e-4)
    assert abs(float(loss_fn(logits, tgt_out)) - float(loss)) < 1e-4
    assert [[int(to_book[t]) for t in row] for row in gen.tokens.tolist()] == [[int(t) for t in a] for a in answers]
    assert PAD not in gen.tokens
