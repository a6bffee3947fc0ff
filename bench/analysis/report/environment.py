"""The report's environment table: one row per session (device, versions, commit), and the warnings where they differ."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.analysis.environment import differences

ENV_KEYS = ("device_name", "torch", "cuda", "python", "threads", "commit", "dirty", "host", "suite")


def environment(sessions: list[dict[str, Any]]) -> tuple[pd.DataFrame, list[str]]:
    """``sessions``: the stored session records (``Store.sessions()``: id, started, status, env), in the report's
    order. -> (one row per session, a warning per environment field on which they differ)."""
    rows = []
    for s in sessions:
        e = s["env"]
        row = {"session": s["id"], **{k: e.get(k) for k in ENV_KEYS}, "started": s["started"], "status": s["status"]}
        row["commit"] = (row["commit"] or "")[:10] or None
        rows.append(row)
    env = pd.DataFrame(rows)
    warnings = [f"The sessions compared ran on different {what} ({', '.join(vals)}): speed differences mix machine and model."
                for _, what, vals in differences([s["env"] for s in sessions])]
    return env, warnings
