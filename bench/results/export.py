"""Stored runs in the shape experiment trackers take: flat parameters, final metrics, stepped series, tags.

MLflow and TensorBoard (``export_mlflow``, ``export_tensorboard``) both want the same four things of a
run, so they are worked out once, here, from the store and the tidy frame (a value exports as the report
shows it: ``s_per_epoch`` is the catalogue's steady-state median, not a second definition). The store stays
the source of truth; an export is a copy for people who already look at those tools.

Every stored run gets a ``uid``: a hash of its session, key and start and end times. It names the run in
the tracker, so exporting a session again finds what it wrote before instead of adding it twice, while a
failed run and its retry under ``--resume`` (same key, other times) stay two runs, as they are two in the
store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from bench.results.metrics import CATALOGUE, finite
from bench.results.store import RunRecord, Store
from bench.results.tidy import runs_frame

Scalar = str | float | int | bool

# Per-epoch records (``bench.train.loop.Epoch``) become series named "epoch/<field>", stepped by epoch; the
# names people look for first (the loss, validation exact match and epoch time) are among them.
EPOCH_PREFIX = "epoch/"
CURVES = ("epoch/loss", "epoch/valid_exact_match", "epoch/train_s")


@dataclass(frozen=True)
class ExportRun:
    uid: str  # stable identity of the stored run: what makes a second export a no-op
    session: str
    key: str
    name: str  # for people: task/model(options)/size/seedN
    status: str  # ok | failed
    error: str | None
    started: float | None  # POSIX seconds
    finished: float | None
    config: dict[str, Scalar]  # the run's resolved config, flattened ("train.lr"), plus task and mode
    metrics: dict[str, float]  # final figures (finite numbers only)
    series: dict[str, list[tuple[int, float, float | None]]] = field(default_factory=dict)  # name -> (step, value, POSIX time)
    tags: dict[str, str] = field(default_factory=dict)  # session, commit, device, status, ...


def run_uid(r: RunRecord) -> str:
    return hashlib.sha256(f"{r.session}\x00{r.key}\x00{r.started}\x00{r.finished}".encode()).hexdigest()[:16]


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Scalar]:
    """Nested config -> ``{"train.lr": 0.003, ...}``; lists become JSON text, None the text "none"."""
    out: dict[str, Scalar] = {}
    for k in sorted(d):
        v = d[k]
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        elif v is None:
            out[name] = "none"
        elif isinstance(v, (list, tuple)):
            out[name] = json.dumps(list(v))
        elif isinstance(v, (str, bool, int, float)):
            out[name] = v
        else:
            out[name] = str(v)
    return out


def _posix(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        t = dt.datetime.fromisoformat(ts)
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).timestamp()


def _name(r: RunRecord) -> str:
    opts = r.config.get("model_options") or {}
    model = r.model + (f"({','.join(f'{k}={opts[k]}' for k in sorted(opts))})" if opts else "")
    return f"{r.task}/{model}/{r.size}/seed{r.seed}"


def final_metrics(stored: dict[str, Any], row: dict[str, Any]) -> dict[str, float]:
    """Every finite number the run stored, and the catalogue's figures as the tidy frame derives them."""
    out = {k: f for k, v in stored.items() if (f := finite(v)) is not None}
    for m in CATALOGUE:
        f = finite(row.get(m.name))
        if f is not None:
            out[m.name] = f
    return out


def series(r: RunRecord, started: float | None) -> dict[str, list[tuple[int, float, float | None]]]:
    """Stepped series: the per-epoch history, a throughput run's step times, exact match by source length."""
    out: dict[str, list[tuple[int, float, float | None]]] = {}
    for e in r.history:
        step = e.get("epoch")
        if not isinstance(step, int):
            continue
        wall = finite(e.get("wall_cum_s"))
        t = started + wall if started is not None and wall is not None else started
        for k, v in e.items():
            f = finite(v)
            if k != "epoch" and f is not None:
                out.setdefault(EPOCH_PREFIX + k, []).append((step, f, t))
    if not r.history:  # stores without a history still have the epoch times
        for i, v in enumerate(r.metrics.get("epoch_seconds") or [], 1):
            if (f := finite(v)) is not None:
                out.setdefault(EPOCH_PREFIX + "train_s", []).append((i, f, started))
    for i, v in enumerate(r.metrics.get("step_seconds") or [], 1):
        if (f := finite(v)) is not None:
            out.setdefault("step/step_s", []).append((i, f, started))
    by_len = r.metrics.get("test_by_length") or {}
    if isinstance(by_len, dict):
        for length in sorted(by_len, key=lambda s: int(s) if str(s).isdigit() else 0):
            v = by_len[length]
            if str(length).isdigit() and isinstance(v, (list, tuple)) and len(v) == 2 and v[1]:
                out.setdefault("by_length/test_exact_match", []).append((int(length), v[0] / v[1], _posix(r.finished)))
    return out


def export_runs(store: Store, sessions: list[str]) -> list[ExportRun]:
    """Every run of ``sessions``, in store order, as an :class:`ExportRun`."""
    envs = {s["id"]: s for s in store.sessions()}
    frame = runs_frame(store, sessions)
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    out: list[ExportRun] = []
    i = 0
    for sid in sessions:
        s = envs[sid]
        env = s["env"]
        for r in store.runs(sid):
            row = rows[i]
            i += 1
            started, finished = _posix(r.started), _posix(r.finished)
            config = flatten(r.config)
            config["task"] = r.task
            config["mode"] = "throughput" if "throughput" in r.config else "quality"
            tags = {
                "session": sid,
                "key": r.key,
                "status": r.status,
                "commit": str(env.get("commit") or ""),
                "dirty": "" if env.get("dirty") is None else str(bool(env["dirty"])).lower(),
                "device": str(env.get("device_name") or env.get("device") or ""),
                "device_type": str(env.get("device_type") or ""),
                "host": str(env.get("host") or ""),
                "suite": str(s.get("suite") or ""),
                "torch": str(env.get("torch") or ""),
            }
            if r.error:
                tags["error"] = r.error
            out.append(ExportRun(run_uid(r), sid, r.key, _name(r), r.status, r.error, started, finished, config,
                                 final_metrics(r.metrics, row), series(r, started), {k: v for k, v in tags.items() if v}))
    return out
