"""The harness's static decoder (``bench.train.decode``): through the Transformer's fixed-shape step
(``decode_step``), the same tokens as cached and uncached decoding, any batch that fits, reused across
batches, stopping early as every greedy loop does; on CUDA captured as graphs and replayed. The step alone,
pure torch, is tested in tests/models/test_decode_step.py.

CPU runs the static step eagerly -- the very code a CUDA graph captures -- so equality with ``generate`` is
checked everywhere; the ``gpu`` tests capture it and skip without CUDA. Cross-path comparisons run in
float64 (as the cache test in test_models does) so that equal tokens cannot hinge on a near-tie: the static
step attends over the whole cache with a mask, which may round differently from a shorter attention.
"""

from __future__ import annotations

import pytest
import torch

import models
from bench.data.vocab import BOS, EOS
from bench.train.decode import StaticDecoder
from models.base import STOP_CHECK_EVERY, after_eos
from tests.models.test_models import V, _ending_token, _module_calls, random_batch, tiny

NEVER = -1  # an EOS no model produces: every step runs


def _model(positions: str = "sinusoidal", dtype: torch.dtype = torch.float64, device: str = "cpu", size: str = "small"):
    torch.manual_seed(0)
    return models.build("transformer", V, size, positions=positions).to(device=device, dtype=dtype).eval()


def _batch(B: int, S: int = 12, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """B right-padded rows (B = 1 keeps the longest row of a 2-row batch)."""
    src, mask, _ = random_batch(B=max(B, 2), S=S, seed=seed)
    return src[:B], mask[:B]


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
@pytest.mark.parametrize("B", [1, 3, 6])
def test_static_decoding_equals_cached_and_uncached(positions: str, B: int) -> None:
    model = _model(positions)
    src, mask = _batch(B)
    for eos in (NEVER, EOS):
        cached = model.generate(src, mask, 20, BOS, eos, return_attention=True)
        uncached = model.generate(src, mask, 20, BOS, eos, return_attention=True, use_cache=False)
        static = StaticDecoder(model, src.size(0), src.size(1), 20, return_attention=True)(src, mask, BOS, eos)
        assert torch.equal(static.tokens, cached.tokens) and torch.equal(static.tokens, uncached.tokens)
        torch.testing.assert_close(static.attention, cached.attention)
    assert cached.tokens.unique().numel() > 1  # a non-trivial sequence


def test_one_decoder_serves_smaller_batches_and_is_reused() -> None:
    """Rows and source columns are padded up to the decoder's shape without changing any result, and a
    decode leaves nothing behind for the next one (buffers reset, outputs cloned)."""
    model = _model()
    dec = StaticDecoder(model, batch=8, src_len=16, max_len=24, return_attention=True)
    results = []
    for B, S, seed in ((6, 12, 1), (3, 9, 2), (8, 16, 3), (1, 5, 4)):
        src, mask = _batch(B, S, seed)
        got = dec(src, mask, BOS, EOS, max_len=20)
        want = model.generate(src, mask, 20, BOS, EOS, return_attention=True)
        assert got.tokens.shape == (B, 20) and got.attention.shape == (B, 20, S)
        assert torch.equal(got.tokens, want.tokens)
        torch.testing.assert_close(got.attention, want.attention)
        results.append(got)
    src, mask = _batch(6, 12, 1)  # the first batch again: the same result, and the first result unchanged
    assert torch.equal(dec(src, mask, BOS, EOS, max_len=20).tokens, results[0].tokens)
    assert torch.equal(results[0].tokens, model.generate(src, mask, 20, BOS, EOS).tokens)


def test_static_decoding_in_float32_matches_the_cache() -> None:
    model = _model(dtype=torch.float32)
    src, mask = _batch(6)
    static = StaticDecoder(model, src.size(0), src.size(1), 20)(src, mask, BOS, EOS)
    assert torch.equal(static.tokens, model.generate(src, mask, 20, BOS, EOS).tokens)


def test_static_decoding_stops_early_with_the_fixed_length_result() -> None:
    """As every greedy loop (tests/models/test_models.py, early stop): decoding stops once every row has emitted
    EOS, checked between chunks of STOP_CHECK_EVERY steps, and returns exactly what running all max_len steps
    and finishing the rows gives -- tokens, PAD and maps -- with fewer steps run."""
    src, mask, _ = random_batch(B=4, S=8)
    max_len = 5 * STOP_CHECK_EVERY
    for seed in range(10):  # random weights: the first model whose rows share a token, used as EOS
        model = tiny("transformer", seed=seed)
        dec = StaticDecoder(model, batch=4, src_len=8, max_len=max_len, return_attention=True)
        full = dec(src, mask, BOS, NEVER)
        eos = _ending_token(full.tokens, max_len - 2 * STOP_CHECK_EVERY)  # every row ends well before max_len
        if eos is not None:
            break
    assert eos is not None, "no seed gives a token that every row emits"
    stopped = dec(src, mask, BOS, eos)
    dead = after_eos(full.tokens, eos)
    assert torch.equal(stopped.tokens, full.tokens.masked_fill(dead, 0))
    assert torch.equal(stopped.attention, full.attention.masked_fill(dead.unsqueeze(-1), 0.0))
    assert _module_calls(model, lambda: dec(src, mask, BOS, eos)) < _module_calls(model, lambda: dec(src, mask, BOS, NEVER))


def test_static_decoder_refuses_what_it_cannot_do() -> None:
    model = _model()
    with pytest.raises(ValueError, match="eval mode"):
        StaticDecoder(model.train(), 2, 12, 6)
    model.eval()
    with pytest.raises(ValueError, match="CUDA"):
        StaticDecoder(model, 2, 12, 6, graph=True)
    with pytest.raises(ValueError, match="max_positions"):
        StaticDecoder(model, 2, 12, model.cfg.longest_sequence() + 1)
    dec = StaticDecoder(model, 2, 12, 6)
    src, mask = _batch(3)
    with pytest.raises(ValueError, match="does not fit"):
        dec(src, mask, BOS, EOS)
    with pytest.raises(ValueError, match="max_len"):
        dec(src[:2], mask[:2], BOS, EOS, max_len=7)


def test_static_decoding_under_inference_mode() -> None:
    """The harness decodes under torch.inference_mode; a decoder built inside it works outside it too."""
    model = _model()
    src, mask = _batch(3)
    with torch.inference_mode():
        dec = StaticDecoder(model, 3, 12, 20)
        inside = dec(src, mask, BOS, EOS)
    outside = dec(src, mask, BOS, EOS)
    assert torch.equal(inside.tokens, outside.tokens)


# ---------------------------------------------------------------------------------------------------- CUDA graphs

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_cuda_graph_gives_the_eager_tokens(positions: str) -> None:
    """Captured: the same tokens as the eager static step (float32, bit for bit: the same kernels), and in
    float64 the same tokens as cached and uncached decoding; a second decode replays correctly."""
    for dtype in (torch.float32, torch.float64):
        model = _model(positions, dtype=dtype, device="cuda")
        graph = StaticDecoder(model, batch=8, src_len=16, max_len=24, return_attention=True)
        eager = StaticDecoder(model, batch=8, src_len=16, max_len=24, return_attention=True, graph=False)
        assert graph._graphs and not eager._graphs
        for B, S, seed in ((8, 16, 1), (3, 12, 2)):
            src, mask = (t.cuda() for t in _batch(B, S, seed))
            g, e = graph(src, mask, BOS, EOS, max_len=20), eager(src, mask, BOS, EOS, max_len=20)
            assert torch.equal(g.tokens, e.tokens)
            if dtype == torch.float64:
                cached = model.generate(src, mask, 20, BOS, EOS, return_attention=True)
                uncached = model.generate(src, mask, 20, BOS, EOS, use_cache=False)
                assert torch.equal(g.tokens, cached.tokens) and torch.equal(g.tokens, uncached.tokens)
                torch.testing.assert_close(g.attention, cached.attention)
                live = ~after_eos(g.tokens, EOS)
                torch.testing.assert_close(g.attention.sum(-1), live.to(dtype))


@pytest.mark.gpu
@cuda
def test_a_graph_reads_the_parameters_where_they_are() -> None:
    """PyTorch's contract: a replay runs the captured kernels on the captured tensors. Weights changed in place
    (as an optimizer step changes them) change the replayed tokens as they change eager decoding's; a batch
    copied into the static inputs is decoded as itself."""
    model = _model(dtype=torch.float64, device="cuda")
    dec = StaticDecoder(model, batch=3, src_len=12, max_len=20)
    src, mask = (t.cuda() for t in _batch(3))
    assert torch.equal(dec(src, mask, BOS, NEVER).tokens, model.generate(src, mask, 20, BOS, NEVER).tokens)
    with torch.no_grad():  # in place: the output layer now always picks token 7
        model.out.bias.zero_()
        model.out.bias[7] = 1e4
    after = dec(src, mask, BOS, NEVER).tokens
    assert (after == 7).all() and torch.equal(after, model.generate(src, mask, 20, BOS, NEVER).tokens)


@pytest.mark.slow
@pytest.mark.parametrize("max_len", [20, 7])
def test_compiled_static_step_gives_the_same_tokens(max_len: int) -> None:
    """The step through torch.compile (inductor's fused kernels; CPU here, the same code a CUDA graph then
    captures): in float64 the tokens of cached decoding, for whole chunks of steps and a shorter rest."""
    pytest.importorskip("torch._inductor")
    model = _model()
    src, mask = _batch(3)
    dec = StaticDecoder(model, batch=3, src_len=src.size(1), max_len=max_len, return_attention=True, compile=True)
    for eos in (NEVER, EOS):
        got, want = dec(src, mask, BOS, eos), model.generate(src, mask, max_len, BOS, eos, return_attention=True)
        assert torch.equal(got.tokens, want.tokens)
        torch.testing.assert_close(got.attention, want.attention)


@pytest.mark.gpu
@cuda
def test_compiled_cuda_graph_gives_the_cached_tokens() -> None:
    """Compiled, then captured (chunks of 8 steps and a rest of 4): in float64 the tokens of cached decoding."""
    model = _model(dtype=torch.float64, device="cuda")
    dec = StaticDecoder(model, batch=8, src_len=16, max_len=20, return_attention=True, compile=True)
    assert sorted(dec._graphs) == [4, 8]
    for B, S, seed in ((8, 16, 1), (3, 12, 2)):
        src, mask = (t.cuda() for t in _batch(B, S, seed))
        for eos in (NEVER, EOS):
            got, want = dec(src, mask, BOS, eos), model.generate(src, mask, 20, BOS, eos, return_attention=True)
            assert torch.equal(got.tokens, want.tokens)
