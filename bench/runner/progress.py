"""Session progress: one live line on a terminal, plain lines in logs (CI)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total_runs: int, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total = total_runs
        self.k = 0
        self.label = ""
        self.t0 = time.perf_counter()
        self._last = 0.0

    def _eta(self) -> str:
        if self.k <= 1:
            return "?"
        per = (time.perf_counter() - self.t0) / (self.k - 1)
        return f"{per * (self.total - self.k + 1):.0f}s"

    def start_run(self, label: str) -> None:
        self.k += 1
        self.label = label
        self._line(f"[run {self.k}/{self.total}] {label}", final=not self.tty)

    def batch(self, i: int, n: int, epoch: int) -> None:
        if not self.tty:
            return
        now = time.perf_counter()
        if now - self._last < 0.2 and i != n:
            return
        self._last = now
        width = 20
        fill = int(width * i / max(n, 1))
        self._line(f"[run {self.k}/{self.total}] {self.label} epoch {epoch} [{'#' * fill}{'.' * (width - fill)}] {i}/{n}  ETA session "
                   f"{self._eta()}")

    def epoch(self, epoch: int, acc: float, train_s: float) -> None:
        self._line(f"[run {self.k}/{self.total}] {self.label} epoch {epoch}: valid exact {acc:.1%} ({train_s:.1f}s)", final=True)

    def end_run(self, status: str, detail: str) -> None:
        self._line(f"[run {self.k}/{self.total}] {self.label}: {status} {detail}", final=True)

    def _line(self, text: str, final: bool = False) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
