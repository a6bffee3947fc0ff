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
import tempfile
from typing import Any

from bench.errors import UserError

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
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise UserError(f"{path}: cannot write the {what} ({e.strerror or e})") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


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
    """The document's envelope is a baseline of a version this code reads (its results are checked by the reader)."""
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
    return doc
