"""Baseline files: a session's per-seed results frozen as JSON and committed beside the code.

The file format lives here (what a baseline holds, its version, reading it back with one clear error per
way it can be wrong); turning a session into one, and comparing against it, is ``bench.analysis.compare``.
Files are written to a temporary name and renamed, so a failed write leaves neither half a baseline nor a
stray temporary file.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

from bench.errors import UserError
from bench.results import files

FORMAT = "s2sbench-baseline"
VERSION = 1
DEFAULT_DIR = os.path.join("results", "baselines")


def bad(path: str, why: str) -> UserError:
    return UserError(f"{path}: not a usable s2sbench baseline ({why})")


def name(n: str) -> str:
    """A baseline's name (``NAME`` of ``NAME.json``), checked."""
    stem = n[:-5] if n.lower().endswith(".json") else n
    if not stem or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", stem):
        raise UserError(f"baseline name {n!r}: use letters, digits, '.', '_' and '-' (it becomes NAME.json)")
    return stem


def _finite(x: Any) -> Any:
    """NaN and infinities -> None, so the file is strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(_finite(doc), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


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
