"""Each architecture is what it claims to be: its defining connection, asserted directly.

A model that silently loses its residual connections, its peek or its second direction keeps its parameter
count, still passes the masking and agreement checks of test_models.py and still learns a small batch; only a
test of the connection itself sees the difference (``python -m bench.checks.mutation`` plants each such bug
and runs these tests). Each test builds a situation in which the connection alone decides the outcome:
zeroed sublayers that a residual must bridge, a changed source vector that only a peek can carry, a last
source token that only a backward direction can bring to the first position.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.nn import functional as F

import models
from models.ntm import content_weights
from models.transformer import MultiHeadAttention
from tests.models.test_models import V, random_batch


def build(name: str, seed: int = 0, **overrides) -> models.Seq2Seq:
    """A tiny model in eval mode without dropout (where it has dropout)."""
    torch.manual_seed(seed)
    if "dropout" in models.config(name, V, "tiny").__dataclass_fields__:
        overrides = {"dropout": 0.0, **overrides}
    return models.build(name, V, "tiny", **overrides).eval()


def zero_(module: torch.nn.Module) -> None:
    """Every weight and bias of ``module`` to zero. A zeroed LSTM outputs exactly 0 (input, forget and output
    gates 1/2, candidate tanh(0) = 0, so the cell and the output stay 0)."""
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()


def capture(module: torch.nn.Module, what: str, store: dict) -> torch.utils.hooks.RemovableHandle:
    """Record ``module``'s first input ("in") or its (first) output ("out") of its last call in ``store``."""
    if what == "in":
        return module.register_forward_pre_hook(lambda m, args: store.__setitem__("in", args[0]))
    return module.register_forward_hook(lambda m, args, out: store.__setitem__("out", out[0] if isinstance(out, tuple) else out))


# ---------------------------------------------------------------------------------------------------- GNMT


def test_gnmt_encoder_layers_from_residual_from_are_residual() -> None:
    """Wu et al. 2016 §3.1: from layer ``residual_from`` (the third) up, a layer's output is LSTM(x) + x; below, LSTM(x).

    With the residual layers zeroed, the encoder passes the last plain layer's output through unchanged; with
    that plain layer zeroed, what reaches the layer above is zeros (no residual bridges it).
    """
    m = build("gnmt", enc_layers=4)
    res = m.cfg.residual_from
    assert 1 <= res < len(m.encoder)
    src, mask, _ = random_batch()
    plain: dict = {}
    capture(m.encoder[res - 1], "out", plain)
    for layer in m.encoder[res:]:
        zero_(layer)
    with torch.no_grad():
        enc = m.encode(src, mask)
    assert plain["out"].abs().amax() > 0
    torch.testing.assert_close(enc, plain["out"] * mask.unsqueeze(-1), rtol=0, atol=1e-6)

    m = build("gnmt", enc_layers=4)
    zero_(m.encoder[res - 1])
    above: dict = {}
    capture(m.encoder[res], "in", above)
    with torch.no_grad():
        m.encode(src, mask)
    assert torch.equal(above["in"], torch.zeros_like(above["in"]))


@pytest.mark.parametrize("feed", ["gnmt", "output"])
def test_gnmt_decoder_layers_from_residual_from_are_residual(feed: str) -> None:
    """The decoder stack likewise: with its residual layers zeroed, the top of the stack -- what the output layer
    reads ("gnmt" feeding) or what attends (Luong "output" feeding) -- is the last plain layer's output."""
    m = build("gnmt", dec_layers=4, attention_feed=feed)
    res = m.cfg.residual_from
    src, mask, tgt_in = random_batch()
    plain: dict = {}
    top: dict = {}
    capture(m.decoder[res - 1], "out", plain)
    capture(m.out if feed == "gnmt" else m.attention, "in", top)  # "gnmt" feeding also attends from layer 0: read the output side
    for layer in m.decoder[res:]:
        zero_(layer)
    with torch.no_grad():
        m(src, mask, tgt_in)
    assert plain["out"].abs().amax() > 0
    torch.testing.assert_close(top["in"], plain["out"], rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------------- bidirectional


def _encoder_states(m: models.Seq2Seq, src: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = m.encode(src, mask)
    return out[0] if isinstance(out, tuple) else out  # attention: (states, decoder start); gnmt: states


@pytest.mark.parametrize("name, opts, bidirectional", [("gnmt", {}, True), ("attention", {"bidirectional": True}, True),
                                                       ("attention", {}, False)], ids=["gnmt", "attention-bidirectional", "attention"])
def test_a_bidirectional_encoder_s_first_state_sees_the_last_source_token(name: str, opts: dict, bidirectional: bool) -> None:
    """Book §8.4.1, Wu et al. §3.2: a bidirectional encoder's state at position 0 depends on every source token,
    the last real one included (through the backward direction); a left-to-right encoder's does not."""
    m = build(name, **opts)
    src, mask, _ = random_batch()
    rows = torch.arange(src.size(0))
    last = mask.sum(1) - 1
    assert (last > 0).all()
    changed = src.clone()
    changed[rows, last] = 3 + (src[rows, last] - 3 + 5) % (V - 3)  # another real token at each row's last position
    moved = (_encoder_states(m, changed, mask)[:, 0] - _encoder_states(m, src, mask)[:, 0]).abs().amax(-1)  # per row
    if bidirectional:
        assert (moved > 1e-6).all(), moved
    else:
        assert torch.equal(moved, torch.zeros_like(moved))


# ---------------------------------------------------------------------------------------------------- peeky


def test_peeky_decoder_sees_the_source_vector_at_every_step() -> None:
    """Book §7.4.2: peeky feeds the encoder's vector to every decoder step, both into the LSTM's input and into the
    output layer. Holding the decoder's starting state fixed and changing only that vector moves every step's
    logits -- through the LSTM input alone (output layer's peek columns zeroed) and through the output layer
    alone (LSTM's peek columns zeroed). Plain seq2seq has no peek: its logits do not move."""
    g = torch.Generator().manual_seed(3)
    B, T = 3, 6
    tgt = torch.randint(3, V, (B, T), generator=g)

    def moved(m: models.Seq2Seq) -> torch.Tensor:
        H = m.cfg.hidden
        state = (torch.randn(1, B, H, generator=g), torch.randn(1, B, H, generator=g))
        h_a, h_b = torch.randn(B, H, generator=g), torch.randn(B, H, generator=g)
        with torch.no_grad():
            la, _ = m._decode(tgt, state, h_a)
            lb, _ = m._decode(tgt, state, h_b)
        return (la - lb).abs().amax(-1)  # [B,T]

    peeky = build("peeky")
    E, H = peeky.cfg.embed, peeky.cfg.hidden
    through_input = copy.deepcopy(peeky)
    with torch.no_grad():
        through_input.out.weight[:, H:] = 0  # the output layer's view of the source vector
    assert (moved(through_input) > 1e-6).all()
    through_output = copy.deepcopy(peeky)
    with torch.no_grad():
        through_output.decoder.weight_ih_l0[:, E:] = 0  # the LSTM input's view of the source vector
    assert (moved(through_output) > 1e-6).all()
    assert moved(build("seq2seq")).max() == 0


# ---------------------------------------------------------------------------------------------------- Transformer


def test_transformer_attention_is_softmax_of_scaled_scores() -> None:
    """Vaswani et al. §3.2.1: softmax(q k^T / sqrt(d_head) + mask) v. The fused kernel's output and the maps the
    report shows (``MultiHeadAttention.weights``) both equal it computed by hand; padding gets weight 0, and the
    causal mask hides the future."""
    torch.manual_seed(0)
    B, h, T, S, dh = 2, 4, 3, 5, 8
    mha = MultiHeadAttention(h * dh, h, dropout=0.0, cross=False).eval()
    q, k, v = 3 * torch.randn(B, h, T, dh), 3 * torch.randn(B, h, S, dh), torch.randn(B, h, S, dh)  # x3: the scale matters
    keep = torch.tensor([[True, True, True, False, False], [True] * S])
    bias = torch.zeros(B, S).masked_fill(~keep, float("-inf"))[:, None, None, :]
    ref = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(dh) + bias, dim=-1)  # [B,h,T,S]
    assert (ref[0, ..., 3:] == 0).all()

    def heads_out(w: torch.Tensor) -> torch.Tensor:
        return mha.o((w @ v).transpose(1, 2).reshape(B, w.size(2), h * dh))

    with torch.no_grad():
        torch.testing.assert_close(MultiHeadAttention.weights(q, k, bias), ref)
        torch.testing.assert_close(mha.attend(q, k, v, bias=bias), heads_out(ref))
        qs = 3 * torch.randn(B, h, S, dh)
        future = torch.triu(torch.ones(S, S, dtype=torch.bool), diagonal=1)
        causal = torch.softmax((qs @ k.transpose(-2, -1) / math.sqrt(dh)).masked_fill(future, float("-inf")), dim=-1)
        torch.testing.assert_close(mha.attend(qs, k, v, causal=True), heads_out(causal))


def test_transformer_blocks_are_residual() -> None:
    """Pre-norm blocks (Xiong et al. 2020): every sublayer adds to the residual stream, x + f(LN(x)). With every
    sublayer's output projection zeroed (f = 0) each encoder and decoder block is the identity."""
    m = build("transformer")
    for layer in m.encoder:
        zero_(layer.attn.o)
        zero_(layer.ff[-1])
    for layer in m.decoder:
        zero_(layer.self_attn.o)
        zero_(layer.cross_attn.o)
        zero_(layer.ff[-1])
    src, mask, tgt_in = random_batch()
    d = m.cfg.d_model
    x, y, mem = (torch.randn(src.size(0), src.size(1), d), torch.randn(tgt_in.size(0), tgt_in.size(1), d),
                 torch.randn(src.size(0), src.size(1), d))
    bias = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))[:, None, None, :]
    with torch.no_grad():
        for layer in m.encoder:
            torch.testing.assert_close(layer(x, bias), x)
        for layer in m.decoder:
            out, _ = layer(y, layer.cross_attn.project_kv(mem), bias)
            torch.testing.assert_close(out, y)


# ---------------------------------------------------------------------------------------------------- NTM


def test_ntm_content_addressing_is_a_softmax_of_cosine_similarity() -> None:
    """Graves et al. 2014 eq. 5-6: w = softmax(beta * cos(key, M[i])). Cosine, not a dot product: a memory row's
    length does not change its weight, only its direction does."""
    g = torch.Generator().manual_seed(0)
    memory, key = torch.randn(2, 6, 5, generator=g), torch.randn(2, 3, 5, generator=g)
    beta = 5 * torch.rand(2, 3, 1, generator=g)
    expected = torch.softmax(beta * F.cosine_similarity(key.unsqueeze(2), memory.unsqueeze(1), dim=-1), dim=-1)
    w = content_weights(memory, key, beta)
    torch.testing.assert_close(w, expected, rtol=0, atol=1e-6)
    longer = memory.clone()
    longer[:, 2] *= 10
    torch.testing.assert_close(content_weights(longer, key, beta), w, rtol=0, atol=1e-6)
