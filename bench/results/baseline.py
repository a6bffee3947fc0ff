"""Baseline files: a session's per-seed results frozen as JSON and committed beside the code.

The file format lives here: what a baseline holds (``Baseline``, one ``Entry`` per configuration), its
version, its JSON document (``document``), writing it and reading it back with one clear error per way it
can be wrong (``save``, ``load``). Which session becomes one, and comparing against it, is regression
tracking's (``bench.regress.sides``, ``bench.regress.compare``). Files are written to a temporary name and
renamed, so a failed write leaves neither half a baseline nor a stray temporary file.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from bench.errors import UserError
from bench.results import files
from bench.results.metrics import finite, finite_as_stored
from bench.results.tidy import config_of

FORMAT = "s2sbench-baseline"
VERSION = 1
DEFAULT_DIR = os.path.join("results", "baselines")


@dataclass(frozen=True)
class Entry:
    """One configuration's results in a baseline: the per-seed values of its runs that finished, and the seeds
    whose run failed."""

    task: str
    model: str  # the model with its non-default options, as compare labels it: "attention(score=general)"
    size: str
    config_hashes: tuple[str, ...]  # the configuration's hash, sorted; empty in files saved before hashes were kept
    config: dict[str, Any] | None  # the run config less the seed; None in files saved before configs were kept
    seeds: dict[int, dict[str, int | float | None]]  # seed -> metric -> value, read by metrics.finite_as_stored
    failed: dict[int, str]  # seed -> why its run failed
    summary: dict[str, Any] = field(default_factory=dict)  # means and medians for readers of the file; compare recomputes them

    @property
    def config_hash(self) -> str | None:
        return ",".join(self.config_hashes) or None


@dataclass(frozen=True)
class Baseline:
    """What a baseline file holds, as this code writes and reads it."""

    name: str  # NAME of NAME.json; a file that names none is called by its file name
    session: dict[str, Any]  # the session it was saved from: id, started, finished, status, suite, command
    env: dict[str, Any]  # that session's environment, less its calibration
    calibration: dict[str, Any] | None  # that session's calibration (bench.measure.calibrate); None when it had none
    entries: tuple[Entry, ...]  # in the file's order


def bad(path: str, why: str) -> UserError:
    return UserError(f"{path}: not a usable s2sbench baseline ({why})")


def name(n: str) -> str:
    """A baseline's name (``NAME`` of ``NAME.json``), checked."""
    stem = n[:-5] if n.lower().endswith(".json") else n
    if not stem or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", stem):
        raise UserError(f"baseline name {n!r}: use letters, digits, '.', '_' and '-' (it becomes NAME.json)")
    return stem


def _strict_json(x: Any) -> Any:
    """Every float read as a number is (NaN and infinities -> null), so the file is strict JSON."""
    if isinstance(x, float):
        return finite(x)
    if isinstance(x, dict):
        return {str(k): _strict_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_strict_json(v) for v in x]
    return x


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(_strict_json(doc), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_text_atomic(path: str, text: str, what: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder; nothing is left on failure."""
    files.write_text(path, text, what)


def refuse_existing(path: str) -> None:
    """Refuse to replace the baseline at ``path`` (``baseline save`` without ``--force``), saying which session it holds."""
    if not os.path.lexists(path):
        return
    held = ""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        sid = (doc.get("session") or {}).get("id") if isinstance(doc, dict) and isinstance(doc.get("session"), dict) else None
        held = f" (session {sid})" if sid else ""
    except (OSError, ValueError):
        pass
    raise UserError(f"{path}: a baseline of that name exists{held}; give --force to replace it, or choose another NAME")


def write(path: str, doc: dict[str, Any]) -> None:
    write_text_atomic(path, dumps(doc), "baseline")


def document(b: Baseline, created: str | None = None) -> dict[str, Any]:
    """A baseline as its JSON document. Results are keyed ``task/model/size``, with ``/HASH`` added where one task,
    model and size has several configurations; ``created`` defaults to now (UTC)."""
    per_cell = collections.Counter((e.task, e.model, e.size) for e in b.entries)
    results = {}
    for e in sorted(b.entries, key=lambda e: (e.task, e.model, e.size, str(e.config_hash))):
        cell = (e.task, e.model, e.size)
        results["/".join(cell) + (f"/{e.config_hash}" if per_cell[cell] > 1 else "")] = {
            "task": e.task,
            "model": e.model,
            "size": e.size,
            "config_hashes": list(e.config_hashes),
            **({"config": e.config} if e.config is not None else {}),
            "seeds": {str(s): e.seeds[s] for s in sorted(e.seeds)},
            "failed": {str(s): e.failed[s] for s in sorted(e.failed)},
            "summary": e.summary,
        }
    return {
        "format": FORMAT,
        "schema_version": VERSION,
        "name": b.name,
        "created": created or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "session": b.session,
        "env": b.env,
        "calibration": b.calibration,
        "results": results,
    }


def save(b: Baseline, directory: str = DEFAULT_DIR) -> str:
    """Write ``directory/NAME.json``. -> its path."""
    path = os.path.join(directory, name(b.name) + ".json")
    write(path, document(b))
    return path


def from_document(doc: Any, path: str = "<baseline>") -> Baseline:
    """A baseline document (checked here) -> Baseline; a malformed result is refused with its key."""
    doc = check(doc, path)
    entries = []
    for k, r in doc["results"].items():
        try:
            task, model, size = str(r["task"]), str(r["model"]), str(r["size"])
            entries.append(Entry(
                task=task, model=model, size=size,
                seeds={int(s): {m: finite_as_stored(x) for m, x in dict(vals).items()} for s, vals in dict(r.get("seeds", {})).items()},
                failed={int(s): str(e) for s, e in dict(r.get("failed", {})).items()},
                config_hashes=tuple(sorted({str(h) for h in r.get("config_hashes", [])})),
                config=config_of(r.get("config")),
                summary=r["summary"] if isinstance(r.get("summary"), dict) else {}))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise bad(path, f"result {k!r} is malformed ({type(e).__name__}: {e})") from None
    session = doc.get("session") if isinstance(doc.get("session"), dict) else {}
    return Baseline(doc.get("name") or os.path.splitext(os.path.basename(path))[0], dict(session), doc.get("env", {}),
                    doc.get("calibration"), tuple(entries))


def load(path: str) -> Baseline:
    return from_document(read(path), path)


def read(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        raise UserError(f"{path}: no such baseline file")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read the baseline ({e})") from None
    except ValueError as e:
        raise bad(path, f"not valid JSON: {e}") from None
    return check(doc, path)


def check(doc: Any, path: str = "<baseline>") -> dict[str, Any]:
    """The document is a baseline of a version this code reads, and every per-seed metric value is a number or null
    (the rest of its results is checked by the reader)."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise bad(path, f"'format' is not {FORMAT!r}")
    v = doc.get("schema_version")
    if not isinstance(v, int) or isinstance(v, bool):
        raise bad(path, "no schema_version")
    if v > VERSION:
        raise bad(path, f"schema version {v}; this s2sbench reads up to version {VERSION}")
    results, env, cal = doc.get("results"), doc.get("env", {}), doc.get("calibration")
    if not isinstance(results, dict) or not isinstance(env, dict) or not (cal is None or isinstance(cal, dict)):
        raise bad(path, "'results' and 'env' must be objects, 'calibration' an object or null")
    for key, r in results.items():
        seeds = r.get("seeds", {}) if isinstance(r, dict) else None
        if not isinstance(seeds, dict):
            raise bad(path, f"result {key!r} is malformed (its 'seeds' is not an object)")
        for seed, values in seeds.items():
            if not isinstance(values, dict):
                raise bad(path, f"result {key!r} seed {seed}: not an object of metric values")
            for metric, x in values.items():
                # A string or a boolean would be skipped as "no value", turning the group's rows into "new":
                # compare would then check nothing and pass. Refuse it here.
                if x is not None and (isinstance(x, bool) or not isinstance(x, (int, float))):
                    raise bad(path, f"result {key!r} seed {seed}: {metric} must be a number or null, got {x!r}")
    return doc
