"""The report's models in the story's order, and their colours: a model is the same colour in every figure."""

from __future__ import annotations

import pandas as pd
import seaborn as sns


def model_order(runs: pd.DataFrame) -> list[str]:
    """Models in the story's order as the runs recorded it (registry metadata stored with each run), then by name."""
    order = runs.groupby("model")["model_order"].min() if "model_order" in runs else pd.Series(dtype=float)
    return sorted(set(runs["model"]), key=lambda m: (pd.isna(order.get(m)), order.get(m) if pd.notna(order.get(m)) else 0, m))


def default_reference(runs: pd.DataFrame) -> str | None:
    """The model the registry marks as the reference, as recorded with the runs; None when no run says."""
    refs = runs.loc[runs["model_is_reference"].astype(bool), "model"] if "model_is_reference" in runs else []
    return str(refs.iloc[0]) if len(refs) else None


def palette(order: list[str]) -> dict[str, tuple]:
    colours = sns.color_palette("tab10", max(len(order), 1))
    return {m: colours[i % len(colours)] for i, m in enumerate(order)}


def model_palette(rows: pd.DataFrame, pal: dict[str, tuple]) -> dict[str, tuple]:
    """model label -> colour: a model's own colour; its variants with other options in lighter shades of it."""
    out: dict[str, tuple] = {}
    for model, labs in rows.groupby("model", sort=False)["model_label"]:
        base = pal.get(model, (0.4, 0.4, 0.4))
        for i, lab in enumerate(dict.fromkeys(sorted(labs, key=lambda x: (x != model, x)))):
            f = min(0.6, 0.3 * i)
            out[lab] = tuple(c + (1 - c) * f for c in base[:3])
    return out
