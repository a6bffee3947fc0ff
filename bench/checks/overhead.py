"""The harness's cost: its training epoch against a bare loop doing the same steps, in one process.

    python -m bench.checks.overhead [--model attention] [--size small] [--repeats 5] [--device cuda]

The bare loop is what one would write by hand -- forward, masked cross-entropy, backward, clip, Adam --
over the very same batches, built and moved to the device outside the clock, timed with a synchronised
clock. The harness's epoch (``bench.train.loop.fit``: it builds its length-bucketed batches, counts tokens
and moves them before its clock, sums the loss on the device and reports progress) is timed by its own
stopwatch. Both start from the same seed; the two are interleaved A/B/A/B so drifts in machine speed hit
both. Prints the median ratio harness/bare (the goal: at most 1.03).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import models
from bench.data.batching import batches
from bench.measure.device import resolve_device
from bench.measure.timing import sync
from bench.runner.cache import DataCache, Prepared
from bench.spec.run import DataSpec, TrainConfig
from bench.train.loop import fit
from bench.train.loss import loss_fn
from bench.train.seeding import seed_everything


def bare_epoch(model_name: str, size: str, prep: Prepared, cfg: TrainConfig, seed: int, device: torch.device) -> float:
    seed_everything(seed)
    model = models.build(model_name, len(prep.vocab), size).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    todo = [b.to(device) for b in batches(prep.train, cfg.batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))]
    model.train()
    sync(device)
    t0 = time.perf_counter()
    for b in todo:
        logits = model(b.src, b.src_mask, b.tgt_in)
        loss = loss_fn(logits, b.tgt_out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
    sync(device)
    return time.perf_counter() - t0


def harness_epoch(model_name: str, size: str, prep: Prepared, cfg: TrainConfig, seed: int, device: torch.device) -> float:
    seed_everything(seed)
    model = models.build(model_name, len(prep.vocab), size).to(device)
    r = fit(model, prep.train, prep.valid, cfg, device, seed, on_batch=lambda i, n: None)
    return r.epochs[0].train_s


def ratio(model: str, size: str, device: torch.device, repeats: int = 5, train: int = 6000, log: bool = True) -> float:
    """Median harness/bare epoch-time ratio over ``repeats`` interleaved pairs (after one untimed warm-up each)."""
    prep = DataCache().get(DataSpec(task="date", train=train, valid=200, test=200))
    cfg = TrainConfig(epochs=1, target=None)
    harness_epoch(model, size, prep, cfg, 0, device)  # warm-up, untimed (allocator, cuDNN autotuning)
    bare_epoch(model, size, prep, cfg, 0, device)
    bare, harness = [], []
    for r in range(repeats):
        bare.append(bare_epoch(model, size, prep, cfg, r, device))
        harness.append(harness_epoch(model, size, prep, cfg, r, device))
        if log:
            print(f"repeat {r}: bare {bare[-1]:.3f} s, harness {harness[-1]:.3f} s, ratio {harness[-1] / bare[-1]:.4f}", flush=True)
    return statistics.median(h / b for h, b in zip(harness, bare))


PROG = "python -m bench.checks.overhead"  # the name usage and errors show; `s2sbench check overhead` passes its own


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    """This check's options: one parser for both doors, ``python -m bench.checks.overhead`` and ``s2sbench check overhead``."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="attention", help="model to time (default: attention)")
    p.add_argument("--size", default="small", help="model size (default: small)")
    p.add_argument("--train", type=int, default=6000, help="training examples per epoch (default: 6000)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved harness/bare pairs (default: 5)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: cpu)")
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    a = parser(prog).parse_args(argv)
    r = ratio(a.model, a.size, resolve_device(a.device), a.repeats, a.train)
    print(f"median harness/bare step-time ratio over {a.repeats} interleaved repeats: {r:.4f} (overhead {100 * (r - 1):+.2f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
