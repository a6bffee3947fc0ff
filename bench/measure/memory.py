"""Peak memory of a run: the CUDA allocator's peak on a GPU, the process's sampled RSS on a CPU."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import torch


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int | None:
    """CUDA: peak bytes allocated since the last reset. CPU: None here (``PeakRSS`` samples the process)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return None


class PeakRSS:
    """Peak resident memory of this process while a run is in flight, sampled every 50 ms.

    ``ru_maxrss`` is the process's peak since it started, not this run's (docs/design.md, "Measurement pitfalls").
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self.start = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            return 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self.rss()
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.rss())


def call_peak_bytes(fn: Callable[[], object], device: torch.device) -> int | None:
    """CUDA: the allocator's peak during one call of ``fn``, above what was allocated when it started -- what the
    call itself needs (a decode's cache, state and activations). It resets the device's peak: read the run's
    peak first (``run_peak``'s ``floor``). CPU: None (one process's RSS cannot single out a call of milliseconds)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    start = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - start)


def run_peak(device: torch.device, rss: PeakRSS, floor: int | None = None) -> dict[str, object]:
    """The three peak-memory fields every run stores. ``floor``: the device's peak read before something reset it
    (``call_peak_bytes``), so that the run's peak stays the largest of the run."""
    if device.type == "cuda":
        p = max(peak_memory_bytes(device) or 0, floor or 0)
        return {"peak_memory_bytes": p, "peak_memory_kind": "cuda_max_allocated", "peak_memory_run_bytes": p}
    return {"peak_memory_bytes": rss.peak, "peak_memory_kind": "process_rss_peak", "peak_memory_run_bytes": rss.peak - rss.start}
