"""Side by side with the book's own numpy code: same data, same settings, same machine, one invocation.

    python -m bench.checks.vsbook --book-code PATH/TO/dlfs2 --data PATH/TO/date.txt [--epochs 3]

Runs the book's ``run_book.py`` (attention seq2seq, source reversed, batch 128, Adam 1e-3, clip 5.0; its
evaluation decodes one test example at a time) and then s2sbench's ``attention`` at size ``book`` with the
same settings, and prints both per-epoch figures and the ratios: seconds per training epoch, and time to
99 % test exact match with evaluation included. Each side's BLAS environment is left as it is unless
``--unset-openblas-hints`` is given (some machines set OPENBLAS_CORETYPE, which slows a current numpy).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

from bench.runner.cache import DataCache
from bench.runner.execute import execute
from bench.spec.run import DataSpec, RunSpec, SessionConfig, TrainConfig


def run_book(book_code: str, data_dir: str, epochs: int, unset: bool) -> list[dict]:
    env = dict(os.environ)
    if unset:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    cmd = [sys.executable, os.path.join(book_code, "run_book.py"), "--task", "date", "--model", "attention", "--reverse",
           "--epochs", str(epochs), "--data-dir", data_dir]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def run_ours(data_file: str, epochs: int, amp: str) -> list[dict]:
    spec = RunSpec(model="attention", size="book", seed=0,
                   data=DataSpec(task="date", task_file=data_file, reverse_source=True),
                   train=TrainConfig(epochs=epochs, batch_size=128, lr=1e-3, clip=5.0, target=None, amp=amp))
    prep = DataCache().get(spec.data)
    _, history, _ = execute(spec, prep, torch.device("cpu"), SessionConfig(device="cpu", peak_flops=1.0))
    return [{"epoch": h["epoch"], "train_s": h["train_s"], "eval_s": h["eval_s"], "test_exact_match": h["valid_exact_match"]}
            for h in history]


def time_to(rows: list[dict], target: float) -> float | None:
    wall = 0.0
    for r in rows:
        wall += r["train_s"] + r["eval_s"]
        if r["test_exact_match"] >= target:
            return wall
    return None


PROG = "python -m bench.checks.vsbook"  # the name usage and errors show; `s2sbench check vsbook` passes its own


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    """This check's options: one parser for both doors, ``python -m bench.checks.vsbook`` and ``s2sbench check vsbook``."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--book-code", required=True, help="folder holding the book's run_book.py")
    p.add_argument("--data", required=True, help="the book's date.txt")
    p.add_argument("--epochs", type=int, default=3, help="epochs on each side (default: 3)")
    p.add_argument("--amp", default="off", choices=["off", "bf16"], help="s2sbench's precision: off or bf16 (default: off)")
    p.add_argument("--unset-openblas-hints", action="store_true", help="unset OPENBLAS_CORETYPE for both sides (default: leave it)")
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    a = parser(prog).parse_args(argv)
    book = run_book(a.book_code, os.path.dirname(os.path.abspath(a.data)), a.epochs, a.unset_openblas_hints)
    ours = run_ours(a.data, a.epochs, a.amp)
    print(f"{'epoch':>5} | {'book train s':>12} {'eval s':>7} {'test %':>7} | {'s2sbench train s':>16} {'eval s':>7} {'test %':>7}")
    for b, o in zip(book, ours):
        print(f"{b['epoch']:>5} | {b['train_s']:>12.2f} {b['eval_s']:>7.2f} {b['test_exact_match'] * 100:>7.2f} | "
              f"{o['train_s']:>16.2f} {o['eval_s']:>7.2f} {o['test_exact_match'] * 100:>7.2f}")
    bs = sum(r["train_s"] for r in book) / len(book)
    os_ = sum(r["train_s"] for r in ours) / len(ours)
    print(f"seconds per training epoch: book {bs:.2f}, s2sbench {os_:.2f}, ratio {os_ / bs:.3f}")
    tb, to = time_to(book, 0.99), time_to(ours, 0.99)
    if tb and to:
        print(f"time to 99 % test exact match, evaluation included: book {tb:.1f} s, s2sbench {to:.1f} s, ratio {to / tb:.3f}")
    else:
        print(f"time to 99 %: book {tb}, s2sbench {to} (not reached by one side within {a.epochs} epochs)")
    print(json.dumps({"book": book, "s2sbench": ours, "threads": torch.get_num_threads()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
