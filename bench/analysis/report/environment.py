"""The report's environment table: one row per session (device, versions, commit), and the warnings where they differ."""

from __future__ import annotations

import pandas as pd

from bench.analysis.environment import differences
from bench.results.store import Store

ENV_KEYS = ("device_name", "torch", "cuda", "python", "threads", "commit", "dirty", "host", "suite")


def environment(store: Store, sessions: list[str]) -> tuple[pd.DataFrame, list[str]]:
    info = {s["id"]: s for s in store.sessions()}
    rows = []
    for sid in sessions:
        e = info[sid]["env"]
        row = {"session": sid, **{k: e.get(k) for k in ENV_KEYS}, "started": info[sid]["started"], "status": info[sid]["status"]}
        row["commit"] = (row["commit"] or "")[:10] or None
        rows.append(row)
    env = pd.DataFrame(rows)
    warnings = [f"The sessions compared ran on different {what} ({', '.join(vals)}): speed differences mix machine and model."
                for _, what, vals in differences([info[sid]["env"] for sid in sessions])]
    return env, warnings
