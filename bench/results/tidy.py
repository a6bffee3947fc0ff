"""The store as tidy tables: one row per run (``runs_frame``), one row per run and epoch (``epochs_frame``), one row
per stored test example of a finished run (``samples_frame``).

Everything downstream -- export, report, compare -- starts here, so a value shows the same everywhere.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from bench.errors import UserError
from bench.results.metrics import CATALOGUE, s_per_epoch
from bench.results.store import DamagedStore, Store

# Identity and status, then every catalogued metric, then what explains them.
RUN_COLUMNS = [
    "session", "task", "model", "size", "seed", "status", "epochs", "epoch_seconds",
    *(m.name for m in CATALOGUE),
    "wall_to_target_s", "train_examples_per_s", "decode_tokens_per_s", "mode", "capture", "src_len", "tgt_len", "batch_size",
    "error", "key", "config_hash", "model_options", "device", "device_type", "amp", "length", "model_order", "model_is_reference",
    "model_recurrent", "model_scan", "config",
    "data_source", "test_questions", "test_questions_in_train", "test_examples_in_train",  # the split's test/train overlap
    # real data: what a target token is (names the token error rate), tokens unseen in training, sacrebleu's signatures
    "target_unit", "test_unk_tokens", "test_tokens", "valid_unk_tokens", "bleu_signature", "chrf_signature",
]


def select_sessions(store: Store, ref: str) -> list[str]:
    """``latest`` | ``all`` | an id | ids joined by commas -> session ids (each must exist)."""
    if ref == "all":
        every = store.sessions()
        if not every:
            raise UserError(f"{store.path}: the store has no sessions yet")
        damaged = [s for s in every if s.get("damaged")]
        if damaged:  # all of them cannot be read: name the damage (one session at a time still can)
            raise DamagedStore(store.path, damaged[0]["damaged"])
        return [s["id"] for s in every]
    return [store.session(r.strip())["id"] for r in ref.split(",") if r.strip()]


def filter_sessions(store: Store, ids: list[str], device: str | None = None, commits: list[str] | None = None) -> list[str]:
    """Keep the sessions whose device name contains ``device`` and whose commit is in ``commits``."""
    env = {s["id"]: s["env"] for s in store.sessions()}
    out = [i for i in ids
           if (device is None or device.lower() in str(env[i].get("device_name", "")).lower() or device == env[i].get("device_type"))
           and (commits is None or any(str(env[i].get("commit") or "").startswith(c) for c in commits))]
    if not out:
        raise UserError(f"{store.path}: no session matches the filter")
    return out


def runs_frame(store: Store, sessions: list[str]) -> pd.DataFrame:
    envs = {s["id"]: s["env"] for s in store.sessions()}
    rows: list[dict[str, Any]] = []
    for sid in sessions:
        env = envs.get(sid, {})
        for r in store.runs(sid):
            m = r.metrics
            row = {c: m.get(c) for c in RUN_COLUMNS}
            row.update(session=r.session, task=r.task, model=r.model, size=r.size, seed=r.seed, status=r.status, error=r.error,
                       key=r.key, config_hash=r.config_hash, model_options=json.dumps(r.config.get("model_options", {}), sort_keys=True),
                       device=env.get("device_name"), device_type=env.get("device_type"), amp=r.config.get("train", {}).get("amp"),
                       length=fixed_length(r.config), config=json.dumps({k: v for k, v in r.config.items() if k != "seed"}, sort_keys=True),
                       capture=r.config.get("train", {}).get("capture", "eager"),
                       mode="throughput" if "throughput" in r.config else "quality")
            row["epoch_seconds"] = m.get("epoch_seconds", [])
            row["s_per_epoch"] = s_per_epoch(row["epoch_seconds"])
            meta = m.get("model_meta") or {}  # the registry's metadata, stored with the run (reports never import models)
            row["model_order"], row["model_is_reference"] = meta.get("order"), bool(meta.get("reference"))
            row["model_recurrent"] = meta.get("recurrent")  # None where the run predates the field
            row["model_scan"] = meta.get("scan")  # recurrent but trained by a parallel scan; None before the field
            row["test_by_length"] = m.get("test_by_length", {})
            rows.append(row)
    df = pd.DataFrame(rows, columns=RUN_COLUMNS + ["test_by_length"])
    for c in ("seed", "params", "epochs", "peak_memory_bytes", "length"):  # stay integers beside a failed run's empty cells
        df[c] = df[c].astype("Int64")
    return df


def config_of(v: Any) -> dict[str, Any] | None:
    """A run's config as ``runs_frame``'s ``config`` column holds it (JSON text) or as a baseline file does (an
    object) -> the dict, or None when it is neither."""
    try:
        c = json.loads(v) if isinstance(v, str) else v
    except ValueError:
        return None
    return c if isinstance(c, dict) else None


def fixed_length(config: dict[str, Any]) -> int | None:
    """The one source length every example of a run has (a point of a length sweep), else None.

    Read from the config, not the metrics, so a point that failed (out of memory) still has its length.
    """
    data = config.get("data") or {}
    tr, te = data.get("train_lengths"), data.get("test_lengths")
    if isinstance(tr, (list, tuple)) and len(tr) == 2 and tr[0] == tr[1] and (te is None or list(te) == list(tr)):
        return int(tr[0])
    return None


def epochs_frame(store: Store, sessions: list[str]) -> pd.DataFrame:
    """One row per run and epoch, with what identifies the run's configuration (config hash, device)."""
    envs = {s["id"]: s["env"] for s in store.sessions()}
    rows = []
    for sid in sessions:
        dev = envs.get(sid, {}).get("device_name")
        for r in store.runs(sid):
            for e in r.history:
                rows.append({"session": sid, "task": r.task, "model": r.model, "size": r.size, "seed": r.seed,
                             "config_hash": r.config_hash, "device": dev, **e})
    return pd.DataFrame(rows)


# The decoded test examples a run stores for its attention heatmaps (bench.train.evaluate), one row each.
SAMPLE_COLUMNS = ["session", "run", "task", "model", "size", "seed", "sample", "src", "pred", "target", "attention", "reversed_source",
                  "references"]


def samples_frame(store: Store, sessions: list[str]) -> pd.DataFrame:
    """One row per stored test example of a finished run, in the store's order: ``run`` (the stored run's id),
    ``sample`` (its place among the run's examples), ``src`` and ``pred`` (token lists, the source as the model
    read it), ``target``, ``attention`` (rows of weights, ``[T',S]``), ``reversed_source`` and ``references`` (every
    right answer as a token list; None for runs stored before they were kept)."""
    rows = []
    for sid in sessions:
        for r in store.runs(sid):
            if r.status != "ok":
                continue
            for i, s in enumerate(r.samples):
                rows.append({"session": sid, "run": r.id, "task": r.task, "model": r.model, "size": r.size, "seed": r.seed, "sample": i,
                             "src": s["src"], "pred": s["pred"], "target": s["target"], "attention": s["attention"],
                             "reversed_source": bool(s.get("reversed_source")),
                             "references": s.get("references")})  # every right answer as tokens (runs since tokens per side)
    return pd.DataFrame(rows, columns=SAMPLE_COLUMNS)
