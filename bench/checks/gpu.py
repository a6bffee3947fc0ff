"""The GPU self-check: what a user runs on a new GPU machine before trusting its figures (under 6 minutes
on one H100).

    PYTHONPATH=. python -m bench.checks.gpu            # from a plain checkout: the machine's python and torch
    PYTHONPATH=. python -m bench.checks.gpu --quick    # fewer repeats (about half the time)
    PYTHONPATH=. python -m bench.checks.gpu --only step,decode   # some of: overhead, step, decode, determinism, scaling

It needs no install step and no network (GPU machines often have neither), reads no data file, and prints
one table: check, model, figure, goal, verdict. Without CUDA it says so and exits 0 (``--device cpu``
runs the same code paths at toy sizes, which is how the test suite keeps this file working).

1. **harness / bare loop**: the harness's training epoch against a hand-written loop over the same
   device-resident batches (``bench.checks.overhead``); goal <= 1.03.
2. **step time by launch mode**: one training step (forward, loss, backward, clip, Adam) at size small,
   batch 128, 32-character sources, bf16, eager vs ``torch.compile`` vs a captured CUDA graph
   (``bench.train.capture``) vs a captured graph of the compiled model (``compile-cudagraph``);
   goals: Transformer <= 3 ms, attention LSTM <= 2 ms (best mode). Models that cannot be captured (their
   forward waits for the host: ``models.host_sync``) get a row that says why.
3. **greedy decoding per token** of the small Transformer at batch 1: without cache, with cache, and the
   static cache replayed as CUDA graphs (eager and compiled step); goals: the graph <= 0.1 ms/token, the
   best cached decoder >= 3x uncached at 256.
4. **determinism**: two ``--deterministic`` trainings (date, 2 epochs) compared on their per-epoch losses,
   bit for bit, in a fresh process (deterministic cuBLAS must be set before CUDA starts, and slows the rest).
5. **scaling probe**: Transformer against the attention LSTM at size large, 256-character sources, batch
   64, bf16, eager and compiled: tokens/s, and MFU against the measured bf16 matmul rate (goal >= 30 %).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import torch

import models
from bench.analysis import markdown
from bench.checks import overhead
from bench.data.vocab import BOS
from bench.measure.calibrate import peak_matmul_gflops
from bench.measure.device import resolve_device
from bench.measure.latency import call_latency
from bench.runner.cache import DataCache
from bench.spec.run import DataSpec, TrainConfig
from bench.train.decode import static_decoder
from bench.train.loop import make_step, train_step_flops
from bench.train.seeding import seed_everything
from bench.train.throughput import fixed_batches, time_steps

NEVER = -1  # an end token no model emits: decode every step
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout (no install step)


@dataclass
class Row:
    check: str
    model: str
    figure: str
    value: float | None
    goal: str = ""
    ok: bool | None = None  # None: no goal, or not measured here

    def cells(self) -> list[str]:
        v = "–" if self.value is None else f"{self.value:,.4g}"
        verdict = {True: "pass", False: "MISS", None: ""}[self.ok]
        return [self.check, self.model, self.figure, v, self.goal, verdict]


def failed(check: str, model: str, what: str, e: Exception) -> Row:
    """A check that raised, as a missed row (its traceback goes to stderr): one failure is a row, not the end."""
    traceback.print_exc()
    first = str(e).splitlines()[0] if str(e) else ""
    return Row(check, model, f"{what}{type(e).__name__}: {first}"[:110], None, "", False)


@dataclass(frozen=True)
class Scale:
    """Sizes of the check: the real ones on a GPU, toy ones for ``--device cpu`` (the code paths, not the figures)."""

    size: str = "small"
    big: str = "large"
    batch: int = 128
    length: int = 32
    probe_length: int = 256
    probe_batch: int = 64
    decode_lengths: tuple[int, ...] = (64, 256)
    steps: int = 50
    repeats: int = 3
    train: int = 4000
    overhead_repeats: int = 5  # harness/bare pairs: a ratio of ~0.5 s epochs moves by a few % between pairs
    overhead_train: int = 8000

    @classmethod
    def toy(cls) -> Scale:
        return cls(size="tiny", big="tiny", batch=8, length=8, probe_length=16, probe_batch=4, decode_lengths=(8, 16), steps=3,
                   repeats=1, train=300, overhead_repeats=1, overhead_train=300)


def _copy_prep(length: int, n: int):
    return DataCache().get(DataSpec(task="copy", train=n, valid=1, test=1, train_lengths=(length, length), test_lengths=(length, length)))


def check_overhead(dev: torch.device, sc: Scale) -> list[Row]:
    return [Row("harness / bare loop", m, "epoch time ratio",
                overhead.ratio(m, sc.size, dev, sc.overhead_repeats, sc.overhead_train, log=False), "<= 1.03",
                None) for m in ("attention", "transformer", "gnmt")]


def check_step_modes(dev: torch.device, sc: Scale, quick: bool) -> list[Row]:
    amp = "bf16" if dev.type == "cuda" else "off"
    modes = ["eager", "compile"] + (["cudagraph", "compile-cudagraph"] if dev.type == "cuda" else [])
    if quick and dev.type != "cuda":
        modes = ["eager"]
    prep = _copy_prep(sc.length, sc.batch * 2)
    goals = {"transformer": 3.0, "attention": 2.0}
    rows = []
    for m in ("attention", "gnmt", "transformer"):
        best = None
        for mode in modes:
            sync = models.host_sync(m, sc.size) if TrainConfig(capture=mode).graph else None
            if sync:  # refused by the harness too (bench.runner.session.validate): a row that says why
                rows.append(Row("step time", m, f"{mode}: not capturable, {sync}"[:110], None))
                continue
            try:
                seed_everything(0)
                model = models.build(m, len(prep.vocab), sc.size).to(dev)
                todo = [b.to(dev) for b in fixed_batches(prep.train, sc.batch, 2, torch.Generator().manual_seed(0))]
                step = make_step(model, TrainConfig(amp=amp, capture=mode), dev, rows=sc.batch)
                ms = time_steps(step, todo, dev, warmup=10 if mode == "compile" else 3, steps=sc.steps).median * 1000
            except Exception as e:  # noqa: BLE001 -- the other modes still run
                rows.append(failed("step time", m, f"{mode} {amp}: ", e))
                continue
            best = ms if best is None else min(best, ms)
            rows.append(Row("step time", m, f"{mode} {amp} ms/step", ms))
        if m in goals and dev.type == "cuda" and best is not None:
            rows.append(Row("step time", m, "best mode ms/step", best, f"<= {goals[m]:g}", best <= goals[m]))
    return rows


def check_decode(dev: torch.device, sc: Scale) -> list[Row]:
    seed_everything(0)
    rows = []
    for L in sc.decode_lengths:
        prep = _copy_prep(L - 1, 4)  # targets of L tokens (EOS included)
        model = models.build("transformer", len(prep.vocab), sc.size).to(dev).eval()
        src = prep.train.src[:1].to(dev)
        mask = src != 0
        per_token: dict[str, float] = {}
        for name, fn in _decoders(model, src, mask, L, dev).items():
            with torch.inference_mode():
                per_token[name] = call_latency(fn, dev, sc.repeats) / L * 1000
            graph = name.startswith("static") and name.endswith("graph")
            rows.append(Row("decode b=1", "transformer", f"L={L} {name} ms/token", per_token[name], "<= 0.1" if graph else "",
                            per_token[name] <= 0.1 if graph else None))
        # The cache saves work (O(1) positions per step instead of O(t)); eager, at batch 1, a GPU spends the
        # step launching kernels either way, so the saving shows once the launches are gone: the goal is
        # judged on the best cached decoder (the static one, replayed as a graph, on CUDA).
        rows.append(Row("decode b=1", "transformer", f"L={L} eager cached speed-up x", per_token["uncached"] / per_token["cached"]))
        best = min(v for k, v in per_token.items() if k != "uncached")
        goal = L >= 256
        rows.append(Row("decode b=1", "transformer", f"L={L} best cached speed-up x", per_token["uncached"] / best, ">= 3" if goal else "",
                        per_token["uncached"] / best >= 3 if goal and dev.type == "cuda" else None))
    return rows


def _decoders(model: models.Seq2Seq, src: torch.Tensor, mask: torch.Tensor, L: int, dev: torch.device) -> dict[str, Callable[[], object]]:
    """The ways to decode ``L`` tokens of one source: without cache, with cache, and the static decoder."""
    out: dict[str, Callable[[], object]] = {
        "uncached": lambda: model.generate(src, mask, L, BOS, NEVER, use_cache=False),
        "cached": lambda: model.generate(src, mask, L, BOS, NEVER),
    }
    dec = static_decoder(model, 1, src.size(1), L)
    if dec is not None:
        out["static" + (" graph" if dev.type == "cuda" else " eager")] = lambda: dec(src, mask, BOS, NEVER)
    if dev.type == "cuda":  # the step through inductor first, then captured (its build compiles: seconds)
        fused = static_decoder(model, 1, src.size(1), L, compile=True)
        if fused is not None:
            out["static compiled graph"] = lambda: fused(src, mask, BOS, NEVER)
    return out


def check_determinism(dev: torch.device, sc: Scale) -> list[Row]:
    """Two deterministic trainings, per-epoch losses compared bit for bit (``bench.checks.determinism``).

    In a fresh process: deterministic cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` before CUDA starts, and in
    this process it would slow every other check (it tripled the eager cached decode of the small
    Transformer on an H200: docs/results-gpu.md).
    """
    cmd = [sys.executable, "-m", "bench.checks.determinism", "--device", str(dev), "--size", sc.size, "--train", str(min(sc.train, 2000)),
           "--json"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"determinism check exited {done.returncode}: "
                           f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}")
    return [Row("determinism", r["model"], "max abs loss difference, 2 runs", r["max_loss_diff"], "== 0", bool(r["identical"]))
            for r in json.loads(done.stdout)]


def check_scaling(dev: torch.device, sc: Scale) -> list[Row]:
    amp = "bf16" if dev.type == "cuda" else "off"
    peak = peak_matmul_gflops(dev).get(amp, 0.0) * 1e9
    prep = _copy_prep(sc.probe_length, sc.probe_batch * 2)
    rows, rate = [], {}
    modes = ("eager", "compile") if dev.type == "cuda" else ("eager",)
    for mode in modes:
        for m in ("attention", "transformer"):
            try:
                seed_everything(0)
                model = models.build(m, len(prep.vocab), sc.big).to(dev)
                todo = [b.to(dev) for b in fixed_batches(prep.train, sc.probe_batch, 2, torch.Generator().manual_seed(0))]
                fpt = train_step_flops(model, todo[0]) / max(todo[0].target_tokens, 1)
                step = make_step(model, TrainConfig(amp=amp, capture=mode), dev)
                t = time_steps(step, todo, dev, warmup=10 if mode == "compile" else 3, steps=max(3, sc.steps // 5))
            except Exception as e:  # noqa: BLE001 -- the other points still run
                rows.append(failed("scaling probe", m, f"{mode} {amp}: ", e))
                continue
            rate[m, mode] = t.tokens_per_s
            mfu = fpt * t.tokens_per_s / peak if peak else None
            rows.append(Row("scaling probe", m, f"{sc.big} L={sc.probe_length} {mode} {amp} tokens/s", t.tokens_per_s))
            rows.append(Row("scaling probe", m, f"{mode} MFU % of measured {amp} matmul", None if mfu is None else 100 * mfu,
                            ">= 30" if m == "transformer" else "",
                            (100 * mfu >= 30) if (m == "transformer" and mfu and dev.type == "cuda") else None))
        if ("transformer", mode) in rate and ("attention", mode) in rate:
            rows.append(Row("scaling probe", "transformer / attention", f"{mode} tokens/s ratio",
                            rate["transformer", mode] / rate["attention", mode]))
    return rows


# The checks, in the order they run; --only picks some by these names.
CHECKS: dict[str, Callable[[torch.device, Scale, bool], list[Row]]] = {
    "overhead": lambda dev, sc, quick: check_overhead(dev, sc),
    "step": check_step_modes,
    "decode": lambda dev, sc, quick: check_decode(dev, sc),
    "determinism": lambda dev, sc, quick: check_determinism(dev, sc),
    "scaling": lambda dev, sc, quick: check_scaling(dev, sc),
}
PARTS = tuple(CHECKS)


def table(rows: list[Row]) -> str:
    return markdown.table(["check", "model", "figure", "value", "goal", "verdict"], [r.cells() for r in rows], align="lllrll")


PROG = "python -m bench.checks.gpu"  # the name usage and errors show; `s2sbench check gpu` passes its own


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    """This check's options: one parser for both doors, ``python -m bench.checks.gpu`` and ``s2sbench check gpu``."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda | cuda:N; cpu runs the code paths at toy sizes (default: cuda)")
    p.add_argument("--quick", action="store_true", help="fewer repeats and steps")
    p.add_argument("--only", default=",".join(PARTS), help=f"checks to run, comma-separated (default all: {','.join(PARTS)})")
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    p = parser(prog)
    a = p.parse_args(argv)
    only = [x.strip() for x in a.only.split(",") if x.strip()]
    if not only or set(only) - set(PARTS):
        p.error(f"--only takes some of {', '.join(PARTS)}; got {a.only!r}")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("GPU self-check: no CUDA device here; nothing to check (use --device cpu to exercise the code paths)")
        return 0
    dev = resolve_device(a.device)
    sc = Scale() if dev.type == "cuda" else Scale.toy()
    if a.quick and dev.type == "cuda":
        sc = Scale(repeats=1, steps=20, train=2000)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"GPU self-check on {name} (torch {torch.__version__}, CUDA {torch.version.cuda})", flush=True)
    t0 = time.perf_counter()
    rows: list[Row] = []
    done = 0
    for name in (k for k in PARTS if k in only):
        try:
            rows += CHECKS[name](dev, sc, a.quick)
        except Exception as e:  # noqa: BLE001 -- one failing check is a row, not the end of the table
            rows.append(failed("error", "", f"{name}: ", e))
        for r in rows[done:]:  # as they come, so a check cut short by a timeout still leaves its figures
            print("  " + " | ".join(r.cells()[:4]), file=sys.stderr, flush=True)
        done = len(rows)
        print(f"  ... {len(rows)} rows, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    for r in rows:  # the overhead goal is judged on the GPU only: CPU epochs at toy size are noise
        if r.check == "harness / bare loop" and r.value is not None and dev.type == "cuda":
            r.ok = r.value <= 1.03
    print(table(rows))
    print(f"{sum(r.ok is True for r in rows)} passed, {sum(r.ok is False for r in rows)} missed, in {time.perf_counter() - t0:.0f} s on "
          f"{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
