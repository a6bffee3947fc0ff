"""The harness's cost: its training epoch against a bare loop doing the same steps, in one process.

    python -m bench.checks.overhead [--model attention] [--size small] [--repeats 5]

The bare loop is what one would write by hand -- forward, masked cross-entropy, backward, clip, Adam --
over the very same batches, precomputed outside the clock. The harness's epoch (``bench.train.loop.fit``,
which also builds its length-bucketed batches, counts tokens, sums the loss on the device and reports
progress) is timed by its own stopwatch. Both start from the same seed; the two are interleaved A/B/A/B
so drifts in machine speed hit both. Prints the median ratio harness/bare.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import models
from bench.data.batching import batches
from bench.runner.cache import DataCache
from bench.spec.run import DataSpec, TrainConfig
from bench.train.loop import fit, loss_fn
from bench.train.seeding import seed_everything


def bare_epoch(model_name: str, size: str, prep, cfg: TrainConfig, seed: int) -> float:
    seed_everything(seed)
    model = models.build(model_name, len(prep.vocab), size)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    todo = list(batches(prep.train, cfg.batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)))
    model.train()
    t0 = time.perf_counter()
    for b in todo:
        logits = model(b.src, b.src_mask, b.tgt_in)
        loss = loss_fn(logits, b.tgt_out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
    return time.perf_counter() - t0


def harness_epoch(model_name: str, size: str, prep, cfg: TrainConfig, seed: int) -> float:
    seed_everything(seed)
    model = models.build(model_name, len(prep.vocab), size)
    r = fit(model, prep.train, prep.valid, cfg, torch.device("cpu"), seed, on_batch=lambda i, n: None)
    return r.epochs[0].train_s


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="attention")
    p.add_argument("--size", default="small")
    p.add_argument("--train", type=int, default=6000)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    prep = DataCache().get(DataSpec(task="date", train=a.train, valid=200, test=200))
    cfg = TrainConfig(epochs=1, target=None)
    bare, harness = [], []
    harness_epoch(a.model, a.size, prep, cfg, 0)  # warm-up, untimed
    for r in range(a.repeats):
        bare.append(bare_epoch(a.model, a.size, prep, cfg, r))
        harness.append(harness_epoch(a.model, a.size, prep, cfg, r))
        print(f"repeat {r}: bare {bare[-1]:.3f} s, harness {harness[-1]:.3f} s, ratio {harness[-1] / bare[-1]:.4f}", flush=True)
    ratio = statistics.median(h / b for h, b in zip(harness, bare))
    print(f"median harness/bare step-time ratio over {a.repeats} interleaved repeats: {ratio:.4f} (overhead {100 * (ratio - 1):+.2f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
