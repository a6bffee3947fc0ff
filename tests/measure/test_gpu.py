"""The CUDA paths of the measurement layer, on a real GPU (``PYTHONPATH=. python -m pytest -m gpu``).

Each skips cleanly without CUDA; the same contracts are tested with mocks on CPU in test_timing.py.
"""

from __future__ import annotations

import pytest
import torch

import models
from bench.data.batching import encode_split, make_batch
from bench.data.tasks import TaskOptions, make
from bench.data.vocab import Vocab
from bench.measure.calibrate import peak_matmul_gflops
from bench.measure.flops import counter
from bench.measure.memory import peak_memory_bytes, reset_peak_memory
from bench.measure.timing import time_fn
from bench.spec.run import TrainConfig
from bench.train.loop import make_step

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
DEV = torch.device("cuda") if torch.cuda.is_available() else None


def test_event_timing_sees_the_work_not_the_launch():
    a = torch.randn(4096, 4096, device=DEV)
    (t,) = time_fn(lambda: a @ a, DEV, repeats=1, warmup=1)
    (t8,) = time_fn(lambda: [a @ a for _ in range(8)], DEV, repeats=1, warmup=1)
    assert t > 0 and t8 > 4 * t  # eight matmuls take about eight times one; launches alone would not


def test_peak_memory_counts_a_large_allocation():
    reset_peak_memory(DEV)
    x = torch.empty(256 * 2**20, dtype=torch.uint8, device=DEV)
    assert peak_memory_bytes(DEV) >= 256 * 2**20
    del x


def test_bf16_matmul_peak_is_measured_and_beats_fp32():
    peaks = peak_matmul_gflops(DEV, repeats=3)
    assert set(peaks) == {"off", "bf16", "fp16"} and peaks["bf16"] > peaks["off"] > 0


def test_cudnn_lstm_flops_follow_the_gate_matmul_formula():
    B, T, D, H = 3, 5, 8, 16
    lstm = torch.nn.LSTM(D, H, batch_first=True).to(DEV)
    x = torch.randn(B, T, D, device=DEV, requires_grad=True)
    with counter() as fc:
        out, _ = lstm(x)
        out.sum().backward()
    assert fc.get_total_flops() == 3 * 2 * B * T * 4 * H * (D + H)


def test_fp16_training_step_uses_a_grad_scaler_and_stays_finite():
    data = make("date", TaskOptions(seed=0, train=64, valid=8, test=8))
    vocab = Vocab.from_texts(data.texts())
    enc = encode_split(data.train, vocab)
    b = make_batch(enc, torch.arange(32)).to(DEV)
    model = models.build("attention", len(vocab), "tiny").to(DEV)
    step = make_step(model, TrainConfig(amp="fp16"), DEV)
    losses = [float(step(b)) for _ in range(5)]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
