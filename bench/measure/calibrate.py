"""Machine calibration: a fixed small workload timed in the session's own process.

Sessions run at different times, on machines that differ and are shared with other jobs. A speed figure
alone (tokens/s, s/epoch) mixes the code's speed with the machine's speed *at that moment*. Each session
therefore times the same fixed workload -- a 512x512x512 fp32 matmul and an ``nn.LSTM`` forward+backward
of fixed shape, the two kinds of work the zoo is made of (Transformers are matmuls, the RNNs are fused LSTM
kernels) -- and ``bench.regress.compare`` divides speed metrics by that figure before taking ratios, so that a
machine twice as slow (or twice as loaded) gives the same normalised speed.

The figure is the median of several repeats after warm-up, device-synchronised (``bench.measure.timing.time_fn``:
CUDA events on GPUs, a synchronised clock on CPUs). Inputs and weights come from a private generator
inside ``fork_rng``, so calibrating never moves the global RNG streams that seed the runs.

The matmul throughput (``matmul_gflops``) doubles as a measured peak for MFU on CPUs, where no datasheet
figure applies to a shared, frequency-scaled core.

Limits: one measurement at the session start cancels the machine's speed and a steady load, not noise
that comes and goes during the session; a small fixed shape underuses a large GPU (launch overheads
dominate), so on GPUs it tracks the driver/host path more than peak FLOPs; and fp32 says nothing about
bf16/fp16 tensor-core speed.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from bench.measure.timing import median, sync, time_fn

CALIBRATION_VERSION = 1
MATMUL_N = 512  # square fp32 matmul, n x n @ n x n
MATMUL_PER_CALL = 4  # matmuls per timed call: one call is several ms on a CPU, well above clock noise
LSTM_BATCH, LSTM_STEPS, LSTM_INPUT, LSTM_HIDDEN = 64, 16, 32, 128


def _matmul_workload(device: torch.device, gen: torch.Generator):
    a = torch.randn(MATMUL_N, MATMUL_N, generator=gen).to(device)
    b = torch.randn(MATMUL_N, MATMUL_N, generator=gen).to(device)
    c = torch.empty(MATMUL_N, MATMUL_N, device=device)

    @torch.no_grad()
    def run() -> None:
        for _ in range(MATMUL_PER_CALL):
            torch.mm(a, b, out=c)
        sync(device)

    return run


def _lstm_workload(device: torch.device, gen: torch.Generator):
    lstm = nn.LSTM(LSTM_INPUT, LSTM_HIDDEN, batch_first=True)
    with torch.no_grad():
        for p in lstm.parameters():
            p.uniform_(-1 / math.sqrt(LSTM_HIDDEN), 1 / math.sqrt(LSTM_HIDDEN), generator=gen)
    lstm = lstm.to(device)
    x = torch.randn(LSTM_BATCH, LSTM_STEPS, LSTM_INPUT, generator=gen).to(device)

    def run() -> None:
        lstm.zero_grad(set_to_none=True)
        out, _ = lstm(x)
        out.sum().backward()
        sync(device)

    return run


PEAK_N = {"cpu": 512, "cuda": 4096}  # square matmul for the peak rate: large enough to fill the device
PEAK_DTYPES = {"off": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def peak_matmul_gflops(device: torch.device, repeats: int = 5) -> dict[str, float]:
    """Measured matmul GFLOP/s per precision (``off`` = fp32): MFU's denominator in the precision a run uses.

    A run under bf16 autocast is measured against the bf16 matmul rate, not the fp32 one (on a GPU the two
    differ by an order of magnitude). fp16 is measured on CUDA only (CPUs rarely have fast fp16 matmuls).
    """
    n = PEAK_N.get(device.type, 512)
    out: dict[str, float] = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        gen = torch.Generator().manual_seed(4321)
        for amp, dtype in PEAK_DTYPES.items():
            if amp == "fp16" and device.type != "cuda":
                continue
            a = torch.randn(n, n, generator=gen).to(device, dtype)
            b = torch.randn(n, n, generator=gen).to(device, dtype)
            c = torch.empty(n, n, device=device, dtype=dtype)

            @torch.no_grad()
            def run(a=a, b=b, c=c) -> None:
                for _ in range(MATMUL_PER_CALL):
                    torch.mm(a, b, out=c)
                sync(device)

            secs = median(time_fn(run, device, repeats=repeats, warmup=2))
            out[amp] = 2 * n**3 * MATMUL_PER_CALL / secs / 1e9
    return out


def _spread(xs: list[float]) -> float:
    m = median(xs)
    return (max(xs) - min(xs)) / m if xs and m > 0 else math.nan


def calibrate(device: torch.device | str = "cpu", repeats: int = 7, warmup: int = 2) -> dict[str, Any]:
    """Time the fixed workloads on ``device``. -> seconds per workload, their geometric mean, matmul GFLOP/s.

    ``combined_s`` (the geometric mean of ``matmul_s`` and ``lstm_s``) is the one figure ``compare``
    normalises by; the spreads ((max - min) / median over the repeats) say how noisy the machine was.
    """
    device = torch.device(device)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        gen = torch.Generator().manual_seed(1234)
        mm = time_fn(_matmul_workload(device, gen), device, repeats=repeats, warmup=warmup)
        ls = time_fn(_lstm_workload(device, gen), device, repeats=repeats, warmup=warmup)
        peaks = peak_matmul_gflops(device)
    matmul_s, lstm_s = median(mm), median(ls)
    flops = 2 * MATMUL_N**3 * MATMUL_PER_CALL
    return {
        "version": CALIBRATION_VERSION,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "matmul_s": matmul_s,
        "lstm_s": lstm_s,
        "combined_s": math.sqrt(matmul_s * lstm_s),
        "matmul_gflops": flops / matmul_s / 1e9,
        "peak_gflops": peaks,  # per precision (off = fp32), the peak MFU is measured against
        "matmul_spread": _spread(mm),
        "lstm_spread": _spread(ls),
        "workload": {
            "matmul": f"{MATMUL_PER_CALL} x fp32 {MATMUL_N}x{MATMUL_N} @ {MATMUL_N}x{MATMUL_N}",
            "lstm": f"nn.LSTM fwd+bwd batch {LSTM_BATCH}, {LSTM_STEPS} steps, input {LSTM_INPUT}, hidden {LSTM_HIDDEN}",
        },
    }
