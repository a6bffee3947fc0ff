"""Exact match against length: the time-to-quality runs of one task and size that differ in their fixed source
length only (the copy-length suites), one line per model -- the figure of Jelassi et al. 2024 ("Repeat After Me:
Transformers are Better than State Space Models at Copying", Fig. 1 and 3) for every architecture of the story --
and, per model, from which length its exact match falls below half while the reference (the model recorded as
not recurrent: the Transformer) stays above 90 %.

A fixed-size state, however well gated, holds a bounded amount of the source (book §8.1, the fixed-length
vector); Jelassi et al. show a state-space model failing to copy once the string outgrows it while attention,
which keeps every position, does not. These lines show where each model of a session stands.
"""

from __future__ import annotations

import pandas as pd

from bench.analysis import configs
from bench.analysis.report.palette import model_order
from bench.analysis.report.tables import annotate

FAILS_BELOW = 0.5  # a model "fails" at a length where its exact match is below this
HOLDS_ABOVE = 0.9  # ... while the reference "holds" there above this


def length_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """The points: finished time-to-quality runs at one fixed source length each, grouped into *scopes* (task, size
    and every setting but the model and the length) that hold at least two lengths. One row per scope, model
    label and length: ``exact`` (test exact match, mean over seeds), ``seeds``; with ``task``, ``size``, ``model``
    and ``scope_title`` (task · size, and what sets the scope apart from the others of its task and size)."""
    cols = ["scope", "scope_title", "task", "size", "model", "model_label", "length", "exact", "seeds"]
    q = runs[(runs["mode"] == "quality") & (runs["status"] == "ok") & runs["length"].notna()] if "mode" in runs else runs.iloc[:0]
    if q.empty:
        return pd.DataFrame(columns=cols)
    a = annotate(q, ignore=configs.LENGTH_FIELDS)
    a["scope"] = [configs.digest(configs.without(f, configs.MODEL_FIELDS + configs.LENGTH_FIELDS)) for f in a["flat"]]
    a = a[a.groupby("scope")["length"].transform("nunique") >= 2]
    if a.empty:
        return pd.DataFrame(columns=cols)
    flats = {s: configs.without(g["flat"].iloc[0], configs.MODEL_FIELDS + configs.LENGTH_FIELDS) for s, g in a.groupby("scope", sort=False)}
    titles = {}
    for (task, size), g in a.groupby(["task", "size"], sort=False):
        lab = configs.labels({s: flats[s] for s in dict.fromkeys(g["scope"])})
        for s in dict.fromkeys(g["scope"]):
            titles[s] = f"{task} · size {size}" + (f" · {lab[s]}" if lab.get(s) else "")
    a["exact"] = pd.to_numeric(a["test_exact_match"], errors="coerce")
    pts = (a.groupby(["scope", "task", "size", "model", "model_label", "length"], sort=False)
           .agg(exact=("exact", "mean"), seeds=("seed", "nunique")).reset_index())
    pts["length"] = pts["length"].astype(int)
    pts["scope_title"] = pts["scope"].map(titles)
    rank = {m: i for i, m in enumerate(model_order(runs))}  # the story's order: lines, legend and verdicts alike
    pts["rank"] = [rank.get(m, len(rank)) for m in pts["model"]]
    first = {sc: i for i, sc in enumerate(dict.fromkeys(pts["scope"]))}
    pts["first"] = pts["scope"].map(first)
    return pts.sort_values(["first", "rank", "model_label", "length"], kind="stable")[cols].reset_index(drop=True)


def _pct(x: float) -> str:
    return f"{x * 100:.1f} %"


BELOW = f"{FAILS_BELOW * 100:.0f} %"
ABOVE = f"{HOLDS_ABOVE * 100:.0f} %"


def _model_clause(pts: pd.DataFrame, ref_at: dict[int, float], ref: str | None) -> str:
    """One model's line: from which length it falls (and stays) below ``FAILS_BELOW``, and how the reference does there."""
    curve = list(zip(pts["length"], pts["exact"], strict=True))
    below = [L for L, x in curve if x < FAILS_BELOW]
    if not below:
        low = min(curve, key=lambda p: p[1])
        return f"stays at or above {BELOW} at every length measured up to {curve[-1][0]} (lowest {_pct(low[1])} at {low[0]})"
    start = next(i for i in range(len(curve)) if all(x < FAILS_BELOW for _, x in curve[i:]))
    L, x = curve[start]
    if start == 0:
        head = f"below {BELOW} at every length measured, from {L} on ({_pct(x)} at {L})"
    else:
        head = f"falls below {BELOW} from length {L} on ({_pct(curve[start - 1][1])} at {curve[start - 1][0]}, {_pct(x)} at {L})"
        if any(x < FAILS_BELOW for _, x in curve[: start - 1]):
            head += "; below it at shorter lengths too"
    if ref is None:
        return head
    later = [(M, ref_at[M]) for M, _ in curve[start:] if M in ref_at]
    if not later:
        return head + f"; {ref} did not run there"
    if all(r > HOLDS_ABOVE for _, r in later):
        return head + f", while {ref} stays above {ABOVE} there (lowest {_pct(min(r for _, r in later))})"
    M, r = next((M, r) for M, r in later if r <= HOLDS_ABOVE)
    return head + f"; {ref} does not hold above {ABOVE} there either ({_pct(r)} at {M})"


def length_verdicts(points: pd.DataFrame, reference: str | None) -> list[str]:
    """Per scope, one line: how the reference does across the lengths, then each other model's ``_model_clause``."""
    out = []
    for _, g in points.groupby("scope", sort=False):
        ref = reference if reference in set(g["model_label"]) else None
        ref_at: dict[int, float] = {}
        parts = []
        if ref is not None:
            r = g[g["model_label"] == ref]
            ref_at = dict(zip(r["length"], r["exact"], strict=True))
            low = min(ref_at.items(), key=lambda p: p[1])
            holds = all(x > HOLDS_ABOVE for x in ref_at.values())
            parts.append(f"{ref} {'stays above' if holds else 'does not stay above'} {ABOVE} "
                         f"(lowest {_pct(low[1])} at {low[0]})")
        for lab in dict.fromkeys(g["model_label"]):
            if lab != ref:
                parts.append(f"{lab} {_model_clause(g[g['model_label'] == lab], ref_at, ref)}")
        out.append(f"{g['scope_title'].iloc[0]}, test exact match at lengths {', '.join(map(str, sorted(set(g['length']))))}: "
                   + "; ".join(parts) + ".")
    return out
