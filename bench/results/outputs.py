"""Each test example's output of a run -- source, references, hypothesis, distance to the closest reference -- so
that users can read the errors and anyone can recompute the scores (``s2sbench export --predictions``).

They are stored apart from the run's metrics, one row per run in the ``run_predictions`` table
(``bench.results.store``): a test split of 12,000 words would otherwise be read back by every report. Tokens are
written as the run's tokenizers cut them: characters run together, other tokens (phones, words, subwords)
separated by spaces.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from bench.errors import UserError

KEY = "test_predictions"  # a finished run's metrics carry them to the session under this key; it stores them apart
COLUMNS = ("source", "references", "hypothesis", "distance")


@dataclass(frozen=True)
class Prediction:
    source: str
    references: tuple[str, ...]
    hypothesis: str
    distance: int  # token edits to the closest reference

    def row(self) -> list[Any]:
        return [self.source, list(self.references), self.hypothesis, self.distance]


def encode(rows: Sequence[Prediction | Sequence[Any]]) -> str:
    """Predictions (or their rows) -> the stored JSON text."""
    out = [r.row() if isinstance(r, Prediction) else [r[0], list(r[1]), r[2], int(r[3])] for r in rows]
    return json.dumps({"columns": list(COLUMNS), "rows": out}, ensure_ascii=False)


def decode(text: str) -> list[Prediction]:
    doc = json.loads(text)
    cols = doc.get("columns", list(COLUMNS))
    at = {c: cols.index(c) for c in COLUMNS}
    return [Prediction(r[at["source"]], tuple(r[at["references"]]), r[at["hypothesis"]], int(r[at["distance"]]))
            for r in doc.get("rows", [])]


EXPORT_COLUMNS = ("session", "run", *COLUMNS)  # run: the run's key (task/model/size/seed/config hash)


def export_rows(store: Any, sessions: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Every stored test output of the sessions' runs, in store order; runs without them are skipped."""
    for sid in sessions:
        for r in store.runs(sid):
            for p in store.predictions(r.id) or []:
                yield {"session": sid, "run": r.key, "source": p.source, "references": list(p.references), "hypothesis": p.hypothesis,
                       "distance": p.distance}


def write_predictions(store: Any, sessions: Sequence[str], out: TextIO, fmt: str = "csv") -> int:
    """CSV (references as a JSON list) or JSON lines on ``out`` -> rows written. No stored outputs at all is bad input."""
    rows = export_rows(store, sessions)
    first = next(rows, None)
    if first is None:
        raise UserError(f"{store.path}: no test outputs stored for session(s) {', '.join(sessions)} (runs keep them since s2sbench "
                        "stored predictions; throughput and failed runs have none)")
    n = 0
    if fmt == "json":
        for row in itertools.chain([first], rows):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
        return n
    w = csv.writer(out, lineterminator="\n")
    w.writerow(EXPORT_COLUMNS)
    for row in itertools.chain([first], rows):
        w.writerow([json.dumps(row[c], ensure_ascii=False) if c == "references" else row[c] for c in EXPORT_COLUMNS])
        n += 1
    return n
