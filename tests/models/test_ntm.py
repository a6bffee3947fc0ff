"""Neural Turing Machine: addressing on hand-made inputs, padding invariance, attention maps, learning copy."""

from __future__ import annotations

import time

import torch
from torch.nn import functional as F

import models
from bench.data.batching import batches, encode_split
from bench.data.tasks import TaskOptions, make
from bench.data.vocab import BOS, EOS, Vocab
from models.base import after_eos
from models.ntm import NTMSeq2Seq, content_weights, interpolate, read, sharpen, shift, write


def _one_hot(n: int, i: int) -> torch.Tensor:
    return F.one_hot(torch.tensor(i), n).float().view(1, 1, n)  # [B=1,K=1,N]


# --- addressing pieces -------------------------------------------------------------------------------


def test_content_key_equal_to_a_row_gets_the_largest_weight():
    g = torch.Generator().manual_seed(0)
    memory = torch.randn(1, 8, 5, generator=g)
    for row in range(8):
        key = memory[:, row : row + 1].clone()  # [1,1,5]
        w = content_weights(memory, key, torch.full((1, 1, 1), 5.0))
        assert w.shape == (1, 1, 8)
        assert int(w.argmax()) == row
        assert torch.allclose(w.sum(-1), torch.ones(1, 1))
    # beta = 0: no preference at all
    w0 = content_weights(memory, memory[:, :1], torch.zeros(1, 1, 1))
    assert torch.allclose(w0, torch.full_like(w0, 1 / 8))


def test_content_addressing_is_finite_on_empty_memory_and_zero_key():
    memory = torch.zeros(1, 4, 3, requires_grad=True)
    key = torch.zeros(1, 1, 3, requires_grad=True)
    w = content_weights(memory, key, torch.ones(1, 1, 1))
    w.sum().backward()
    assert torch.isfinite(w).all() and torch.isfinite(memory.grad).all() and torch.isfinite(key.grad).all()


def test_shift_moves_one_hot_by_one_slot_circularly():
    plus, minus, stay = torch.tensor([[[0.0, 0, 1]]]), torch.tensor([[[1.0, 0, 0]]]), torch.tensor([[[0.0, 1, 0]]])
    assert torch.equal(shift(_one_hot(6, 2), plus), _one_hot(6, 3))
    assert torch.equal(shift(_one_hot(6, 5), plus), _one_hot(6, 0))  # the last slot wraps to the first
    assert torch.equal(shift(_one_hot(6, 0), minus), _one_hot(6, 5))
    assert torch.equal(shift(_one_hot(6, 4), stay), _one_hot(6, 4))
    # a split shift blurs: half stays, half moves
    assert torch.allclose(shift(_one_hot(6, 1), torch.tensor([[[0.0, 0.5, 0.5]]])), 0.5 * (_one_hot(6, 1) + _one_hot(6, 2)))
    # any shift range is the circular convolution sum_k s[k] w[i - k]
    g = torch.Generator().manual_seed(3)
    w, s = torch.softmax(torch.randn(2, 3, 7, generator=g), -1), torch.softmax(torch.randn(2, 3, 5, generator=g), -1)
    expected = sum(s[..., k + 2 : k + 3] * torch.roll(w, k, dims=-1) for k in range(-2, 3))
    assert torch.allclose(shift(w, s), expected, atol=1e-6)


def test_sharpening_with_gamma_one_changes_nothing_and_more_sharpens():
    w = torch.softmax(torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(1)), dim=-1)
    assert torch.allclose(sharpen(w, torch.ones(2, 3, 1)), w, atol=1e-6)
    s = sharpen(w, torch.full((2, 3, 1), 3.0))
    assert torch.allclose(s.sum(-1), torch.ones(2, 3), atol=1e-6)
    assert (s.max(-1).values > w.max(-1).values).all()


def test_sharpening_gradient_is_finite_at_zero_weights():
    w = _one_hot(5, 2).requires_grad_()
    gamma = torch.full((1, 1, 1), 2.0, requires_grad=True)
    sharpen(w, gamma).pow(2).sum().backward()
    assert torch.isfinite(w.grad).all() and torch.isfinite(gamma.grad).all()


def test_interpolation_gate():
    wc, wp = _one_hot(4, 1), _one_hot(4, 3)
    assert torch.equal(interpolate(wc, wp, torch.zeros(1, 1, 1)), wp)
    assert torch.equal(interpolate(wc, wp, torch.ones(1, 1, 1)), wc)


def test_erase_one_clears_exactly_the_written_row_and_add_writes_it():
    memory = torch.randn(1, 5, 4, generator=torch.Generator().manual_seed(2))
    w = _one_hot(5, 2).view(1, 5)
    cleared = write(memory, w, torch.ones(1, 4), torch.zeros(1, 4))
    assert torch.equal(cleared[0, 2], torch.zeros(4))
    keep = [0, 1, 3, 4]
    assert torch.equal(cleared[0, keep], memory[0, keep])
    a = torch.tensor([[1.0, -2.0, 3.0, 0.5]])
    written = write(memory, w, torch.ones(1, 4), a)
    assert torch.equal(written[0, 2], a[0]) and torch.equal(written[0, keep], memory[0, keep])
    # reading with the same one-hot weighting returns the row
    assert torch.equal(read(written, w.view(1, 1, 5))[0, 0], a[0])


def test_source_attention_follows_writes():
    # Source step s wrote slot s + 1; reading slot 3 means looking at source position 2.
    S, N = 4, 6
    ww = torch.zeros(1, S, N)
    for s in range(S):
        ww[0, s, s + 1] = 1.0
    read_w = torch.zeros(1, 2, 1, N)
    read_w[0, 0, 0, 3] = 1.0
    read_w[0, 1, 0, 0] = 1.0  # a slot never written: no mass -> uniform over the real source
    mask = torch.tensor([[True, True, True, False]])
    att = NTMSeq2Seq.source_attention(read_w, ww * mask.unsqueeze(-1), mask)
    assert torch.allclose(att[0, 0], torch.tensor([0.0, 0.0, 1.0, 0.0]))
    assert torch.allclose(att[0, 1], torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.0]))


# --- the model ---------------------------------------------------------------------------------------------


def test_registered_and_sizes_match_the_budgets():
    assert "ntm" in models.names()
    assert models.sizes("ntm") == ["tiny", "small", "base", "large", "xl"]
    for size, budget in models.BUDGETS.items():
        n = models.param_count("ntm", models.BUDGET_VOCAB, size)  # meta device: xl's 100 M are never allocated
        assert abs(n - budget) <= 0.1 * budget, (size, n, budget)


def _batch(seed: int = 0, V: int = 12, B: int = 4, S: int = 7, T: int = 5):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([S, 3, 1, 5])[:B]
    src = torch.randint(3, V, (B, S), generator=g)
    mask = torch.arange(S).unsqueeze(0) < lengths.unsqueeze(1)
    src = src.masked_fill(~mask, 0)
    tgt_in = torch.randint(3, V, (B, T), generator=g)
    tgt_in[:, 0] = BOS
    return src, mask, tgt_in


def _model(V: int = 12, **kw) -> NTMSeq2Seq:
    torch.manual_seed(0)
    return models.build("ntm", V, "tiny", **kw).eval()  # type: ignore[return-value]


def test_shapes_and_finite_gradients():
    m = _model(read_heads=2).train()
    src, mask, tgt_in = _batch()
    logits = m(src, mask, tgt_in)
    assert logits.shape == (4, 5, 12)
    logits.logsumexp(-1).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    assert m.init_w_logits.grad is not None and m.init_reads.grad is not None  # learned initial state is used


def test_padding_in_the_source_changes_nothing():
    m = _model()
    src, mask, tgt_in = _batch()
    out = m(src, mask, tgt_in)
    # more padding columns, and garbage (not PAD) under the mask: identical outputs
    extra = torch.randint(3, 12, (4, 6), generator=torch.Generator().manual_seed(9))
    src2 = torch.cat([src.masked_fill(~mask, 7), extra], dim=1)
    mask2 = torch.cat([mask, torch.zeros(4, 6, dtype=torch.bool)], dim=1)
    assert torch.equal(m(src2, mask2, tgt_in), out)
    g1 = m.generate(src, mask, 6, BOS, EOS, return_attention=True)
    g2 = m.generate(src2, mask2, 6, BOS, EOS, return_attention=True)
    assert torch.equal(g1.tokens, g2.tokens)
    assert torch.allclose(g2.attention[:, :, : src.size(1)], g1.attention, atol=1e-6)  # sums over a longer S: rounding only
    assert torch.equal(g2.attention[:, :, src.size(1) :], torch.zeros(4, 6, 6))
    # each row alone, unpadded, gives its own outputs
    for b in range(4):
        n = int(mask[b].sum())
        alone = m(src[b : b + 1, :n], mask[b : b + 1, :n], tgt_in[b : b + 1])
        assert torch.allclose(alone[0], out[b], atol=1e-5)


def test_generate_attention_rows_are_distributions_over_real_source():
    m = _model()
    src, mask, _ = _batch()
    gen = m.generate(src, mask, 5, BOS, EOS, return_attention=True)
    assert gen.tokens.shape == (4, 5) and gen.attention.shape == (4, 5, 7)
    live = ~after_eos(gen.tokens, EOS)  # up to each row's EOS; zero after it, like the PAD tokens
    assert torch.allclose(gen.attention.sum(-1), live.float(), atol=1e-5)
    assert (gen.attention >= 0).all()
    assert torch.equal(gen.attention * ~mask.unsqueeze(1), torch.zeros(4, 5, 7))
    assert m.generate(src, mask, 5, BOS, EOS).attention is None


def test_generate_agrees_with_teacher_forcing_on_its_own_output():
    m = _model()
    src, mask, _ = _batch()
    gen = m.generate(src, mask, 6, BOS, EOS).tokens
    raw = m(src, mask, torch.cat([torch.full((4, 1), BOS), gen[:, :-1]], dim=1)).argmax(-1)
    first_eos = [(r == EOS).nonzero()[0, 0].item() + 1 if (r == EOS).any() else r.numel() for r in gen]
    for b, n in enumerate(first_eos):
        assert torch.equal(raw[b, :n], gen[b, :n])


# --- learning ----------------------------------------------------------------------------------------------


def _exact_match(m, enc, vocab) -> float:
    m.eval()
    ok = 0
    with torch.no_grad():
        for b in batches(enc, 256, shuffle=False):
            gen = m.generate(b.src, b.src_mask, b.tgt_out.size(1) + 1, BOS, EOS)
            ok += sum(vocab.decode(row.tolist()) == enc.examples[i].tgt for i, row in zip(b.index.tolist(), gen.tokens, strict=True))
    m.train()
    return ok / len(enc)


def test_learns_copy_at_short_lengths():
    opts = TaskOptions(seed=0, train=1000, valid=100, test=0, train_lengths=(1, 4), extra={"alphabet": "abcdef"})
    data = make("copy", opts)
    vocab = Vocab.from_texts(data.texts())
    train, valid = encode_split(data.train, vocab), encode_split(data.valid, vocab)
    torch.manual_seed(0)
    m = models.build("ntm", len(vocab), "tiny")
    opt = torch.optim.Adam(m.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(0)
    step, acc, t0 = 0, 0.0, time.perf_counter()
    while step < 1000 and acc < 1.0:
        for b in batches(train, 32, shuffle=True, generator=gen):
            logits = m(b.src, b.src_mask, b.tgt_in)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), b.tgt_out.reshape(-1), ignore_index=0)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 10.0)
            opt.step()
            step += 1
            if step % 50 == 0:
                acc = _exact_match(m, valid, vocab)
                if acc == 1.0:
                    break
    print(f"copy: {acc:.3f} exact match on held-out examples after {step} steps, {time.perf_counter() - t0:.1f} s")
    assert acc == 1.0, f"exact match {acc:.3f} after {step} steps"


def test_mixed_precision_keeps_addressing_in_float32():
    m = _model()
    src, mask, tgt_in = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = m(src, mask, tgt_in)
        gen = m.generate(src, mask, 5, BOS, EOS, return_attention=True)
    assert torch.isfinite(logits.float()).all()
    assert gen.attention.dtype == torch.float32
    assert torch.allclose(gen.attention.sum(-1), torch.ones(4, 5), atol=1e-5)
