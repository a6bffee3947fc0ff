"""Latency of a short call (a greedy decode), robust to one scheduler hiccup."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from bench.measure.timing import median, time_fn

MIN_TIMED_S = 0.3


def call_latency(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median seconds of one call of ``fn`` after one warm-up call.

    A call of a few milliseconds is at the mercy of one scheduler hiccup: calls are repeated until they
    add up to at least ``MIN_TIMED_S`` (``repeats`` at least, 50 at most), so the median rests on many.
    """
    first = time_fn(fn, device, repeats=1, warmup=1)[0]
    n = min(50, max(repeats, math.ceil(MIN_TIMED_S / max(first, 1e-6))))
    return median(time_fn(fn, device, repeats=n, warmup=0) + [first])
