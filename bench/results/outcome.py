"""A session's summary counted per run, not per record: a failed run that ``--resume`` retried successfully is
ok, its old failure kept in the store as history but no longer counted as a failure (the report's tables
and ``compare`` count the same way)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bench.results.store import RunRecord


@dataclass(frozen=True)
class Outcomes:
    ok: int  # runs with an ok record
    failed: int  # runs whose every record failed
    retried: int  # failed records of runs that later succeeded

    def text(self) -> str:
        retried = f" ({self.retried} earlier failure{'s' if self.retried != 1 else ''} retried ok)" if self.retried else ""
        return f"{self.ok} runs ok, {self.failed} failed{retried}"


def outcomes(runs: Iterable[RunRecord]) -> Outcomes:
    ok: set[str] = set()
    failures: dict[str, int] = {}
    for r in runs:
        if r.status == "ok":
            ok.add(r.key)
        else:
            failures[r.key] = failures.get(r.key, 0) + 1
    return Outcomes(len(ok), sum(1 for k in failures if k not in ok), sum(n for k, n in failures.items() if k in ok))
