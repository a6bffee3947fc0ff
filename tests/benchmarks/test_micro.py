"""Micro-benchmarks (pytest-benchmark): one training step and one batched greedy decode per registered model.

    pytest tests/benchmarks/test_micro.py --benchmark-only -p no:cacheprovider --benchmark-autosave
    pytest tests/benchmarks/test_micro.py --benchmark-only --benchmark-compare --benchmark-compare-fail=mean:25%

The normal test run skips them (``--benchmark-skip`` in pyproject's addopts). Shapes are fixed (batch 64,
source 24, target 12, vocabulary 60, size tiny) and the data is a fixed random batch, so two saved runs
time the same work. The training step is the harness's own (``bench.train.loop.make_step``: forward, masked
cross-entropy, backward, gradient clipping, Adam). Decoding uses an EOS id the model can never produce,
so every row decodes the full length. On CUDA each call ends with ``torch.cuda.synchronize()`` so the
time is the work, not the launch (docs/design.md, "Measurement pitfalls"); on CPU the thread count is recorded in
``extra_info`` (set it with S2SBENCH_TEST_THREADS, default 1 via tests/conftest.py).

These time code on one machine, call by call; cross-session regression tracking of whole runs is
``s2sbench compare`` (machine-normalised); the two answer different questions.
"""

from __future__ import annotations

import pytest
import torch

import models
from bench.data.batching import Batch
from bench.data.vocab import BOS, PAD
from bench.spec.run import TrainConfig
from bench.train.loop import make_step

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BATCH, SRC_LEN, TGT_LEN, VOCAB, SIZE = 64, 24, 12, models.BUDGET_VOCAB, "tiny"
NEVER = -1  # an EOS id greedy decoding never produces: fixed decode length


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def fixed_batch(seed: int = 0) -> Batch:
    """A right-padded random batch with varied lengths (fixed by the seed), on DEVICE."""
    g = torch.Generator().manual_seed(seed)
    src_len = torch.randint(SRC_LEN // 2, SRC_LEN + 1, (BATCH,), generator=g)
    tgt_len = torch.randint(TGT_LEN // 2, TGT_LEN + 1, (BATCH,), generator=g)
    src_mask = torch.arange(SRC_LEN).unsqueeze(0) < src_len.unsqueeze(1)
    src = torch.randint(3, VOCAB, (BATCH, SRC_LEN), generator=g).masked_fill(~src_mask, PAD)
    tgt = torch.randint(3, VOCAB, (BATCH, TGT_LEN), generator=g)
    tgt_mask = torch.arange(TGT_LEN).unsqueeze(0) < tgt_len.unsqueeze(1)
    tgt_in = torch.cat([torch.full((BATCH, 1), BOS), tgt[:, :-1]], dim=1).masked_fill(~tgt_mask, PAD)
    tgt_out = tgt.masked_fill(~tgt_mask, PAD)
    return Batch(torch.arange(BATCH), src, src_mask, tgt_in, tgt_out).to(DEVICE)


def build(name: str) -> models.Seq2Seq:
    torch.manual_seed(0)
    return models.build(name, VOCAB, SIZE).to(DEVICE)


def _info(benchmark, name: str, model: models.Seq2Seq) -> None:
    benchmark.extra_info.update(model=name, size=SIZE, params=models.count_params(model), batch=BATCH, src_len=SRC_LEN,
                                tgt_len=TGT_LEN, device=str(DEVICE), threads=torch.get_num_threads(), torch=torch.__version__)


@pytest.mark.benchmark(group="train-step")
@pytest.mark.parametrize("name", models.names())
def test_train_step(benchmark, name: str) -> None:
    model = build(name).train()
    step = make_step(model, TrainConfig(lr=1e-3), DEVICE)
    b = fixed_batch()
    _info(benchmark, name, model)

    def run() -> torch.Tensor:
        loss = step(b)
        _sync()
        return loss

    loss = benchmark.pedantic(run, rounds=15, iterations=1, warmup_rounds=2)
    assert torch.isfinite(loss).item()


@pytest.mark.benchmark(group="greedy-decode")
@pytest.mark.parametrize("name", models.names())
def test_greedy_decode(benchmark, name: str) -> None:
    model = build(name).eval()
    b = fixed_batch()
    _info(benchmark, name, model)

    def run() -> torch.Tensor:
        tokens = model.generate(b.src, b.src_mask, TGT_LEN, BOS, NEVER).tokens
        _sync()
        return tokens

    tokens = benchmark.pedantic(run, rounds=15, iterations=1, warmup_rounds=2)
    assert tokens.shape == (BATCH, TGT_LEN)
