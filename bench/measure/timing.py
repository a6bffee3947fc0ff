"""Device-synchronised timing and the autocast context.

CUDA work is asynchronous: a host clock read without synchronising times the kernel *launches*, not the
work. Every timer here synchronises the device before reading the clock (or uses CUDA events), and
steady-state figures exclude warm-up (allocator growth, cuDNN autotuning, torch.compile).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch


def sync(device: torch.device) -> None:
    """Wait for all queued work on ``device`` (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Accumulating wall clock that synchronises ``device`` at every start and stop."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.total = 0.0
        self._t0: float | None = None

    def start(self) -> None:
        sync(self.device)
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        assert self._t0 is not None, "stop() without start()"
        sync(self.device)
        dt = time.perf_counter() - self._t0
        self.total += dt
        self._t0 = None
        return dt


def time_fn(fn: Callable[[], object], device: torch.device, repeats: int = 5, warmup: int = 1) -> list[float]:
    """Seconds per call of ``fn`` for ``repeats`` calls after ``warmup`` untimed calls.

    On CUDA the interval is read from CUDA events recorded around the call (device time, not launch time);
    on CPU from a synchronised perf_counter.
    """
    for _ in range(warmup):
        fn()
    out = []
    if device.type == "cuda":
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            out.append(start.elapsed_time(end) / 1000.0)
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


@dataclass(frozen=True)
class Precision:
    """Mixed precision as one value: ``off``, ``bf16`` or ``fp16`` (fp16 needs CUDA and a grad scaler)."""

    amp: str = "off"

    def autocast(self, device: torch.device) -> Callable[[], AbstractContextManager]:
        if self.amp == "off":
            return nullcontext
        dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
        return lambda: torch.autocast(device_type=device.type, dtype=dtype)

    def scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(device.type) if self.amp == "fp16" else None
