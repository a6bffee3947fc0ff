"""Throughput: a fixed number of training steps on fixed-shape batches after warm-up, no evaluation.

What a GPU comparison of architectures needs (docs/design.md, "On a GPU: measure the architecture, not the
launches"; Long Range Arena's speed table): every step has the same shape, so the time per step is the architecture's cost at
that length and size, not the data's length distribution; the batches are on the device before the clock;
warm-up (allocator growth, autotuning, compilation, graph capture) is excluded; each step is timed on its
own (CUDA events recorded around it without waiting, read once at the end), so the spread is known too.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from bench.data.batching import Batch, Encoded, make_batch
from bench.data.vocab import PAD
from bench.measure.timing import sync


def fixed_batches(enc: Encoded, batch_size: int, n: int, generator: torch.Generator) -> list[Batch]:
    """``n`` batches of ``batch_size`` random rows, every one padded to the split's longest source and target.

    On a split whose examples all have one length (the scaling suites) nothing is padded at all.
    """
    S, T = int(enc.src_len.max()), int(enc.tgt_len.max())
    out = []
    for _ in range(n):
        idx = torch.randperm(len(enc), generator=generator)[:batch_size]
        if len(idx) < batch_size:  # a small split: rows repeat
            idx = idx.repeat((batch_size + len(idx) - 1) // len(idx))[:batch_size]
        b = make_batch(enc, idx)
        pad_s, pad_t = S - b.src.size(1), T - b.tgt_in.size(1)
        out.append(Batch(b.index, torch.nn.functional.pad(b.src, (0, pad_s), value=PAD),
                         torch.nn.functional.pad(b.src_mask, (0, pad_s), value=False),
                         torch.nn.functional.pad(b.tgt_in, (0, pad_t), value=PAD),
                         torch.nn.functional.pad(b.tgt_out, (0, pad_t), value=PAD)))
    return out


@dataclass
class StepTimes:
    seconds: list[float]  # one per timed step
    tokens_per_step: float  # mean target tokens (padding excluded) of the batches stepped

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def quantile(self, q: float) -> float:
        xs = sorted(self.seconds)
        return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step * len(self.seconds) / sum(self.seconds)


class OverBudget(RuntimeError):
    """The timed steps would take longer than the run's budget (judged from the last warm-up step)."""


def time_steps(step: Callable[[Batch], torch.Tensor], todo: list[Batch], device: torch.device, warmup: int, steps: int,
               budget_s: float | None = None) -> StepTimes:
    """Run ``warmup`` untimed then ``steps`` timed calls of ``step``, cycling through ``todo`` (on ``device``).

    ``budget_s``: the last warm-up step (past compilation and capture) estimates the timed steps' total; a
    run over it stops there (``OverBudget``) -- in a sweep, the point that is too slow is a result too.
    """
    last = 0.0
    for i in range(warmup):
        sync(device)
        t0 = time.perf_counter()
        step(todo[i % len(todo)])
        sync(device)
        last = time.perf_counter() - t0
    if budget_s is not None and last * steps > budget_s:
        raise OverBudget(f"{steps} steps would take about {last * steps:.0f} s ({last * 1000:.0f} ms each), over the budget of "
                         f"{budget_s:g} s")
    tokens = [float((b.tgt_out != PAD).sum()) for b in todo]  # read once, outside the clock
    if device.type == "cuda":
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(steps)]
        for i in range(steps):
            ev[i][0].record()
            step(todo[i % len(todo)])
            ev[i][1].record()
        torch.cuda.synchronize(device)
        secs = [a.elapsed_time(b) / 1000.0 for a, b in ev]
    else:
        secs = []
        for i in range(steps):
            t0 = time.perf_counter()
            step(todo[i % len(todo)])
            secs.append(time.perf_counter() - t0)
    return StepTimes(secs, sum(tokens[i % len(todo)] for i in range(steps)) / steps)
