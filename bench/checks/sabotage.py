"""The sabotage check: does ``compare`` catch a real slowdown, and only that, on a noisy machine?

    python -m bench.checks.sabotage [--repeats 5] [--models seq2seq,attention,transformer] [--slow attention] [--factor 2]
                             [--seeds 3] [--threads 1] [--clock wall|cpu] [--fail-on ...] [--train 1000 --epochs 3 --decode-repeats 9]

Each repeat runs two short sessions on the same machine, one after the other, into a temporary store: a
*base* session of the unchanged models, and a *new* session in which one model is sabotaged -- its
``forward`` and ``generate`` do the same work ``factor`` times (the logits are the mean of identical
copies, so a model without dropout, like attention, learns exactly the same; only the time changes). ``bench.regress.compare`` then judges
new against base with the default thresholds. The check passes when the sabotaged model is flagged "worse" on time
in every repeat and the unchanged models are never flagged -- the false-alarm and the miss rate of the
regression gate, measured rather than assumed. Exit code 0 when it passes, 1 when not. After the
per-repeat table it prints, per metric, the worst time ratio of the unchanged models and the mildest of
the sabotaged one: a metric separates the two at the threshold when the first is below it and the
second above.

Each model runs three seeds by default: compare takes speed medians over seeds, and a median absorbs a
burst of load from other jobs that hits one run (with one seed such bursts caused false alarms, and once
a miss, on a busy 2-core machine). Runs use one torch thread by default: on a shared CPU, more threads than free cores turn every
preemption of one worker into a stall of all of them at each parallel region (tiny models run thousands
of small ones), which multiplies noise. ``--clock cpu`` times with process CPU time instead of wall
time (an experiment beyond the suite's method, see ``clock``) to show how much of the noise is
preemption by other jobs.

The sabotage lives only in this script: a subclass swapped into the model registry for the new session
and removed afterwards; ``models/`` is untouched. Sessions carry a calibration (``bench.measure.calibrate``).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import torch

import models
from bench.measure import timing
from bench.regress.compare import compare
from bench.regress.sides import SPEED, side_from_store
from bench.regress.thresholds import parse_fail_on
from bench.results.store import Store
from bench.runner.progress import Progress
from bench.runner.session import run_session
from bench.spec.run import DataSpec, MeasureSpec, RunSpec, SessionConfig, TrainConfig

TIME_METRICS = tuple(SPEED)
SHOWN = (("train_tokens_per_s", "tok/s"), ("s_per_epoch", "s/epoch"), ("decode_latency_batch_s", "dec batch"),
         ("decode_latency_b1_s", "dec b=1"))
LABEL = dict(SHOWN) | {"time_to_target_s": "to target"}


def slowed(cls: type[models.Seq2Seq], factor: int) -> type[models.Seq2Seq]:
    """A subclass of ``cls`` whose forward and generate do their work ``factor`` times."""

    class Slowed(cls):  # type: ignore[valid-type, misc]
        def forward(self, src, src_mask, tgt_in):  # noqa: ANN001 -- same signature as the model's
            outs = []
            for _ in range(factor):  # a loop, not a comprehension: zero-argument super() needs this frame
                outs.append(super().forward(src, src_mask, tgt_in))
            return torch.stack(outs).mean(0)

        @torch.no_grad()
        def generate(self, *args, **kwargs):  # noqa: ANN002, ANN003
            gen = None
            for _ in range(factor):
                gen = super().generate(*args, **kwargs)
            return gen

    Slowed.__name__ = Slowed.__qualname__ = f"Slowed{cls.__name__}"
    return Slowed


@contextmanager
def sabotaged(name: str, factor: int) -> Iterator[None]:
    """Swap ``name``'s class in the model registry for a slowed subclass, for the duration only."""
    models.names()  # load the registry
    reg = models._REGISTRY  # noqa: SLF001 -- the sabotage is deliberately local to this script
    original = reg[name]
    reg[name] = replace(original, cls=slowed(original.cls, factor))
    try:
        yield
    finally:
        reg[name] = original


@contextmanager
def clock(kind: str) -> Iterator[None]:
    """``wall`` leaves the harness's timers alone; ``cpu`` makes them read this process's CPU time.

    An experiment, not the suite's method: on a CPU saturated by other jobs a single-threaded run's
    wall time stretches with every preemption while its CPU time does not. It swaps the clock that
    ``bench.measure.timing`` (Stopwatch, time_fn -- so calibration too) reads, for the duration only.
    """
    if kind == "wall":
        yield
        return
    orig = timing.time
    timing.time = types.SimpleNamespace(perf_counter=time.process_time)  # type: ignore[assignment]
    try:
        yield
    finally:
        timing.time = orig


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"
    except OSError:
        return "n/a"


def specs(model_names: list[str], train: int, epochs: int, decode_repeats: int, seeds: int = 1) -> list[RunSpec]:
    data = DataSpec(task="date", seed=0, train=train, valid=200, test=300)
    cfg = TrainConfig(epochs=epochs, batch_size=64, target=None, time_budget_s=None, eval_batch_size=300)
    measure = MeasureSpec(decode_batch=256, decode_repeats=decode_repeats, samples=0)
    return [RunSpec(model=m, size="tiny", seed=sd, data=data, train=cfg, measure=measure) for m in model_names for sd in range(seeds)]


PROG = "python -m bench.checks.sabotage"  # the name usage and errors show; `s2sbench check sabotage` passes its own


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    """This check's options: one parser for both doors, ``python -m bench.checks.sabotage`` and ``s2sbench check sabotage``."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="base/new session pairs (default: 5)")
    p.add_argument("--models", default="seq2seq,attention,transformer",
                   help="models in both sessions (default: seq2seq,attention,transformer)")
    p.add_argument("--slow", default="attention", help="the model sabotaged in the new session (default: attention)")
    p.add_argument("--factor", type=int, default=2, help="how many times the sabotaged model repeats its work (default: 2)")
    p.add_argument("--train", type=int, default=1000, help="training examples (date task; default: 1000)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per run (default: 3)")
    p.add_argument("--decode-repeats", type=int, default=9, help="timed decoding repeats per run (default: 9)")
    p.add_argument("--seeds", type=int, default=3,
                   help="seeds per model (default: 3): compare takes speed medians over seeds, which absorb a load burst hitting one run")
    p.add_argument("--threads", type=int, default=1, help="torch threads, 0 for torch's default (default 1: on a shared CPU, more threads "
                   "than free cores turn every preemption into a stall at each parallel region)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall: the harness's timers as they are; cpu: process CPU time instead (an experiment, use with --threads 1; "
                        "default: wall)")
    p.add_argument("--fail-on", help="thresholds as for `s2sbench compare` (default: its defaults)")
    p.add_argument("--keep", help="keep the store here instead of a temporary folder")
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    p = parser(prog)
    a = p.parse_args(argv)
    names = [m.strip() for m in a.models.split(",") if m.strip()]
    if a.slow not in names:
        p.error(f"--slow {a.slow!r} must be one of --models")
    run_specs = specs(names, a.train, a.epochs, a.decode_repeats, a.seeds)
    sc = SessionConfig(device="cpu", threads=a.threads or None)
    folder = a.keep or tempfile.mkdtemp(prefix="s2sbench-sabotage-")
    os.makedirs(folder, exist_ok=True)
    store = Store(os.path.join(folder, "sabotage.sqlite"))
    quiet = Progress(0, stream=io.StringIO())
    print(f"sabotage check: {a.repeats} repeats; models {', '.join(names)} (tiny, date, {a.train} examples, {a.epochs} epochs, {a.seeds} "
          f"seed(s), cpu, {a.threads or torch.get_num_threads()} threads, {a.clock} clock); {a.slow} does its work x{a.factor} "
          f"in the new session; load average {_load()}; store {store.path}", flush=True)
    th = parse_fail_on(a.fail_on)
    header = (f"{'rep':>3}  {'model':<12} {'sabotaged':<9} " + " ".join(f"{h:>9}" for _, h in SHOWN)
              + f"  {'cal new/base':>12}  time verdict")
    print(header + "\n" + "-" * (len(header) + 12), flush=True)
    hits = misses = false_alarms = 0
    cost: dict[tuple[bool, str], list[float]] = {}  # (sabotaged?, metric) -> time-equivalent ratios
    t0 = time.perf_counter()
    with clock(a.clock):
        for rep in range(1, a.repeats + 1):
            base = run_session(run_specs, store, sc, "sabotage", "bench.checks.sabotage base", progress=quiet, session_id=f"rep{rep}-base")
            with sabotaged(a.slow, a.factor):
                new = run_session(run_specs, store, sc, "sabotage", "bench.checks.sabotage new", progress=quiet, session_id=f"rep{rep}-new")
            sb, sn = side_from_store(store.path, base), side_from_store(store.path, new)
            c = compare(sb, sn, th)
            cal = f"×{sn.cal_s / sb.cal_s:.2f}" if sb.cal_s and sn.cal_s else "n/a"
            for m in names:
                rows = {r.metric: r for r in c.rows if r.model == m}
                is_slow = m == a.slow
                worse = [LABEL[k] for k in TIME_METRICS if k in rows and rows[k].verdict == "worse"]
                flagged = bool(worse)
                for k in TIME_METRICS:
                    if k in rows and rows[k].change:
                        cost.setdefault((is_slow, k), []).append(1 / rows[k].change if SPEED[k] == "high" else rows[k].change)
                quality = [r for r in rows.values() if r.kind in ("quality", "runs") and r.verdict == "worse"]
                hits += is_slow and flagged
                misses += is_slow and not flagged
                false_alarms += (not is_slow) and flagged
                ratios = " ".join(f"{'×' + format(rows[k].change, '.2f') if k in rows and rows[k].change else '—':>9}" for k, _ in SHOWN)
                verdict = f"worse ({', '.join(worse)})" if flagged else "same/better"
                mark = ("ok" if flagged == is_slow else "MISSED" if is_slow else "FALSE ALARM") + (" (quality worse!)" if quality else "")
                print(f"{rep:>3}  {m:<12} {'yes' if is_slow else 'no':<9} {ratios}  {cal:>12}  {verdict} {mark}", flush=True)
    elapsed = time.perf_counter() - t0
    store.close()
    limit = None if th.time is None else 1 + th.time
    print(f"\nper metric, as time ratios (tokens/s inverted; >1 is slower), threshold ×{limit or float('nan'):.2f}:")
    print(f"  {'metric':<10} {'unchanged: worst':>17} {'sabotaged: mildest':>19}  separated")
    for k, h in SHOWN:
        un, sa = cost.get((False, k), []), cost.get((True, k), [])
        if un and sa:
            sep = "yes" if limit and max(un) <= limit < min(sa) else "no"
            print(f"  {h:<10} {max(un):>17.2f} {min(sa):>19.2f}  {sep}")
    n_other = a.repeats * (len(names) - 1)
    passed = misses == 0 and false_alarms == 0
    print(f"\nsabotaged {a.slow} x{a.factor}: flagged in {hits}/{a.repeats} repeats; unchanged models flagged {false_alarms}/{n_other} "
          f"times; thresholds {th.describe()}, machine-normalised; {elapsed:.0f}s; load average {_load()}")
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
