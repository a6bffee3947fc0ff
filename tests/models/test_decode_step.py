"""The optional fixed-shape decoding step (``Seq2Seq.decode_step``, ``models.base.DecodeStep``), pure torch.

For every registered model that offers one: loaded with a batch and stepped eagerly, it gives ``generate``'s
tokens and maps, in buffers built larger than the batch (rows and columns padded); its position lives on the
device and moves by one per step; and on CUDA the step reads nothing back to the host (the ``gpu`` test,
which skips without CUDA). How the harness replays the step is tested in tests/train/test_decode.py.
"""

from __future__ import annotations

import pytest
import torch

import models
from bench.data.vocab import BOS
from tests.models.test_models import random_batch, tiny

NEVER = -1  # an EOS no model produces: every step runs
OFFERS = [n for n in models.names() if tiny(n).decode_step(1, 1, 1) is not None]


def test_the_transformer_offers_a_step_and_the_default_is_none() -> None:
    assert "transformer" in OFFERS
    assert models.Seq2Seq().decode_step(1, 1, 1) is None  # a model without one decodes through generate alone


@pytest.mark.parametrize("name", OFFERS)
def test_stepping_gives_generates_tokens_and_maps(name: str) -> None:
    """float64, so that equal tokens cannot hinge on a near-tie between two ways of rounding."""
    src, mask, _ = random_batch(B=4, S=9)
    L = 12
    for seed in range(5):  # random weights: the first model whose greedy decode is not one token repeated
        model = tiny(name, dtype=torch.float64, seed=seed)
        if model.generate(src, mask, L, BOS, NEVER).tokens.unique().numel() > 1:
            break
    step = model.decode_step(6, 11, L, return_attention=True)  # two rows and two columns more than the batch
    step.load(src, mask, BOS)
    for t in range(L):
        assert int(step.position) == t
        step.step()
    assert int(step.position) == L
    want = model.generate(src, mask, L, BOS, NEVER, return_attention=True)
    assert torch.equal(step.tokens[:4], want.tokens)
    assert want.tokens.unique().numel() > 1  # a non-trivial sequence
    if want.attention is not None:
        torch.testing.assert_close(step.attention[:4, :, :9], want.attention)


def test_the_transformer_step_writes_one_cache_position_and_moves_on() -> None:
    """The step reads its position from a device tensor and advances it; the cache fills one column per step."""
    model = tiny("transformer", dtype=torch.float64)
    step = model.decode_step(batch=2, src_len=9, max_len=6)
    src, mask, _ = random_batch(B=2, S=9)
    step.load(src, mask, BOS)
    for layer_cache in step.caches:
        layer_cache[0].zero_()
    for t in range(3):
        assert int(step.position) == t
        step.step()
    k = step.caches[0][0]  # [B,h,L,dh]
    assert (k[:, :, :3].abs().sum(dim=(0, 1, 3)) > 0).all() and (k[:, :, 3:] == 0).all()
    assert int(step.position) == 3


def test_a_step_refuses_what_it_cannot_hold() -> None:
    model = tiny("transformer")
    with pytest.raises(ValueError, match="max_positions"):
        model.decode_step(2, 9, model.cfg.longest_sequence() + 1)
    step = model.decode_step(2, 9, 6)
    src, mask, _ = random_batch(B=3, S=9)
    with pytest.raises(ValueError, match="does not fit"):
        step.load(src, mask, BOS)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", OFFERS)
def test_the_step_has_no_host_sync(name: str) -> None:
    """Run eagerly with CUDA's sync debug mode set to error: any host-device sync in the step raises."""
    model = tiny(name).cuda()
    step = model.decode_step(batch=4, src_len=9, max_len=10, return_attention=True)
    src, mask, _ = random_batch(B=4, S=9)
    step.load(src.cuda(), mask.cuda(), BOS)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(10):
            step.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert int(step.position) == 10
