"""Store -> pandas -> tables + seaborn figures -> a self-contained HTML page, Markdown and CSV.

A pure function of the store: the same sessions always give the same report. Colours are fixed per model
across every figure (the story's order, recorded with each run from the registry), so a model is the same colour in the curve, the
speed-accuracy plane and the length plot.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import matplotlib.transforms  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from bench.analysis import configs  # noqa: E402
from bench.analysis.environment import differences  # noqa: E402
from bench.analysis.stats import pareto_front, summarize  # noqa: E402
from bench.errors import UserError  # noqa: E402
from bench.results.files import write_files  # noqa: E402
from bench.results.metrics import metric, of_kind  # noqa: E402
from bench.results.store import Store  # noqa: E402
from bench.results.tidy import epochs_frame, runs_frame  # noqa: E402

# The report's two tables, in order; headers, directions and formats come from the catalogue.
QUALITY_COLS = tuple(m.name for m in of_kind("quality"))
SPEED_COLS = ("params", "flops_per_token", "train_tokens_per_s", "s_per_epoch", "time_to_target_s", "decode_latency_b1_s",
              "decode_latency_batch_s", "peak_memory_bytes")
RATIO_COLS = ("train_tokens_per_s", "s_per_epoch", "time_to_target_s", "decode_latency_batch_s")  # shown as ratios to the reference


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


# --- configurations ----------------------------------------------------------------------------------
def annotate(runs: pd.DataFrame, ignore: tuple[str, ...] = ()) -> pd.DataFrame:
    """Each run with what identifies its configuration (``bench.analysis.configs``).

    ``model_label``: the model and its options; ``cfg``: config hash + device (the unit rows, curves and
    points are made of: runs of one cfg differ in the seed only); ``context``: the cfg less the model, which
    the models of one comparison share; ``label``: the model label, plus in brackets what sets this cfg
    apart from the other cfgs of its task, model and size (``attention [bf16]``), ``ignore``'d fields aside.
    """
    a = runs.copy()
    if a.empty:
        for c in ("model_label", "device_label", "cfg", "flat", "context", "label"):
            a[c] = pd.Series(dtype=object)
        return a
    dev_type = a["device_type"] if "device_type" in a else pd.Series([None] * len(a), index=a.index)
    a["model_label"] = [configs.model_label(m, o) for m, o in zip(a["model"], a["model_options"])]
    a["device_label"] = [configs.device_text(d, t) for d, t in zip(a["device"], dev_type)]
    a["cfg"] = [f"{h}@{d}" for h, d in zip(a["config_hash"], a["device"])]
    cfg_json = a["config"] if "config" in a else pd.Series([None] * len(a), index=a.index)
    a["flat"] = [{**configs.flatten(c), configs.DEVICE: d} for c, d in zip(cfg_json, a["device_label"])]
    a["context"] = [configs.digest(configs.without(f, configs.MODEL_FIELDS)) for f in a["flat"]]
    a["label"] = a["model_label"]
    for _, g in a.groupby(["task", "model_label", "size"], sort=False):
        lab = configs.labels({c: configs.without(f, ignore) for c, f in zip(g["cfg"], g["flat"])})
        a.loc[g.index, "label"] = [m + (f" [{lab[c]}]" if lab.get(c) else "") for m, c in zip(g["model_label"], g["cfg"])]
    return a


def _order_rows(table: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Rows grouped by task and size (in order of appearance), then models in the story's order, configs as they came."""
    if table.empty:
        return table
    first = {c: {v: i for i, v in enumerate(dict.fromkeys(table[c]))} for c in ("task", "size")}
    rank = {m: i for i, m in enumerate(order)}
    keys = [(first["task"][r.task], first["size"][r.size], rank.get(r.model, len(rank)), r.model_label, i)
            for i, r in enumerate(table.itertuples())]
    return table.iloc[sorted(range(len(table)), key=lambda i: keys[i])].reset_index(drop=True)


def variants(table: pd.DataFrame, facet: list[str]) -> pd.Series:
    """Per row: what sets its context apart from the other contexts of its facet (empty when only one).

    Lines of one model in one facet are told apart by this (line style), so every model's bf16 run draws
    the same way, and the legend names the variant once."""
    out = pd.Series("", index=table.index, dtype=object)
    for _, g in table.groupby(facet, sort=False):
        ctx = {c: configs.without(f, configs.MODEL_FIELDS) for c, f in zip(g["context"], g["flat"])}
        lab = configs.labels(ctx)
        out[g.index] = [lab.get(c, "") for c in g["context"]]
    return out


def quality_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Time-to-quality runs: throughput runs are never averaged with them (bench.results.metrics.MODES)."""
    return runs[runs["mode"] != "throughput"] if "mode" in runs else runs


def summary_table(runs: pd.DataFrame, reference: str | None = None) -> pd.DataFrame:
    """One row per configuration (task x model x size x config hash x device) of the time-to-quality runs.

    Medians of speed; mean and 95 % interval over seeds of quality. Every value is in the unit people read
    (the catalogue's ``display``). Quality columns ``<metric>`` hold the mean (in %), ``<metric>_ci`` the
    interval half-width (nan for a single seed), ``<metric>_n`` the number of seeds. ``seeds`` counts distinct
    seeds (a seed run in two sessions is averaged first, so it weighs as one); ``runs`` the runs. Runs that
    differ in anything but the seed -- precision, device, launch mode, options, training settings, data --
    are never pooled: they are rows of their own, ``label``led by what differs. Failed runs are counted, not
    averaged. Speed ratios (``<col>_vs_ref``) are to the reference model in the same context (same device,
    precision, settings), never across them.
    """
    runs = annotate(quality_runs(runs))
    ok = runs[runs["status"] == "ok"].copy()
    for c in QUALITY_COLS + SPEED_COLS:
        m = metric(c)
        ok[c] = [math.nan if (v := m.display(x)) is None else v for x in ok[c]]
    rows = []
    keys = ["task", "model_label", "size", "cfg"]
    for _, g in ok.groupby(keys, sort=False):
        r0 = g.iloc[0]
        row: dict = {"task": r0["task"], "model": r0["model"], "model_label": r0["model_label"], "label": r0["label"], "size": r0["size"],
                     "cfg": r0["cfg"], "config_hash": r0["config_hash"], "device": r0["device_label"], "context": r0["context"],
                     "flat": r0["flat"], "seeds": int(g["seed"].nunique()), "runs": len(g)}
        for c in SPEED_COLS:
            v = pd.to_numeric(g[c], errors="coerce")
            if metric(c).all_seeds and v.isna().any():  # e.g. time to target: every seed must reach it
                row[c] = math.nan
            else:
                row[c] = float(v.dropna().median()) if v.notna().any() else math.nan
        ttt = pd.to_numeric(g["time_to_target_s"], errors="coerce")
        row["reached_target"] = f"{int(ttt.notna().sum())}/{len(g)}"
        for c in QUALITY_COLS:
            per_seed = pd.to_numeric(g[c], errors="coerce").groupby(g["seed"]).mean()
            s = summarize(per_seed.dropna().tolist())
            row[c], row[c + "_ci"], row[c + "_n"] = s.mean, s.half_width, s.n
        rows.append(row)
    # A failed run retried successfully on --resume is history, not a failure of the result.
    bad = runs[(runs["status"] != "ok") & ~runs["key"].isin(set(ok["key"]))]
    failed = bad.groupby(keys, sort=False).size()
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = _order_rows(table, model_order(runs))
    table["failed"] = [int(failed.get((r.task, r.model_label, r.size, r.cfg), 0)) for r in table.itertuples()]
    if reference:
        refs = table[table["model_label"] == reference].drop_duplicates(["task", "size", "context"]).set_index(["task", "size", "context"])
        for c in RATIO_COLS:
            table[c + "_vs_ref"] = [r[c] / refs.at[k, c] if (k := (r["task"], r["size"], r["context"])) in refs.index else math.nan
                                    for _, r in table.iterrows()]
    return table


def winners(table: pd.DataFrame) -> dict[tuple[int, str], bool]:
    """(row index, column) -> True where the row is the best of its task x size x device group in that column.

    Per device: a GPU row beating every CPU row on speed says nothing about the models."""
    out = {}
    facet = ["task", "size"] + (["device"] if "device" in table and table["device"].notna().any() else [])
    for _, g in table.groupby(facet, sort=False, dropna=False):
        for c in QUALITY_COLS + SPEED_COLS:
            better = metric(c).better
            if better is None or c not in g or g[c].isna().all() or len(g) < 2:
                continue
            best = g[c].max() if better == "high" else g[c].min()
            for i in g.index[g[c] == best]:
                out[(i, c)] = True
    return out


def format_cell(table: pd.DataFrame, i: int, c: str) -> str:
    v = table.at[i, c]
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    text = metric(c).format(v)
    if c in QUALITY_COLS:
        hw = table.at[i, c + "_ci"]
        if not math.isnan(hw):
            text += f" ± {hw:.1f}"
    if c == "time_to_target_s" or (c + "_vs_ref") in table:
        r = table.at[i, c + "_vs_ref"] if (c + "_vs_ref") in table else math.nan
        if not (isinstance(r, float) and math.isnan(r)):
            text += f" ({r:.2f}×)"
    return text


def seeds_text(table: pd.DataFrame, i: int) -> str:
    """``2``, or ``1 (2 runs)`` when a seed ran in more than one session of the same configuration."""
    n, runs = int(table.at[i, "seeds"]), int(table.at[i, "runs"]) if "runs" in table else int(table.at[i, "seeds"])
    return str(n) if runs == n else f"{n} ({runs} runs)"


def table_rows(table: pd.DataFrame, columns: tuple[str, ...]) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """Headers and cells (text, is-winner) of one of the report's two tables."""
    win = winners(table)
    cols = [c for c in columns if c in table and not table[c].isna().all()]
    quality = columns == QUALITY_COLS
    headers = ["task", "model", "size", "seeds"] + [metric(c).label for c in cols] + (["target reached", "failed"] if quality else [])
    body = []
    for i in table.index:
        name = table.at[i, "label"] if "label" in table else table.at[i, "model"]
        r = [(str(table.at[i, "task"]), False), (str(name), False), (str(table.at[i, "size"]), False), (seeds_text(table, i), False)]
        r += [(format_cell(table, i, c), win.get((i, c), False)) for c in cols]
        if quality:
            r += [(str(table.at[i, "reached_target"]), False), (str(table.at[i, "failed"]), False)]
        body.append(r)
    return headers, body


def markdown_grid(headers: list[str], body: list[list[tuple[str, bool]]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in body:
        lines.append("| " + " | ".join(f"**{t}**" if w else t for t, w in r) + " |")
    return "\n".join(lines)


def html_grid(headers: list[str], body: list[list[tuple[str, bool]]], cls: str = "") -> str:
    h = "".join(f"<th>{html.escape(x)}</th>" for x in headers)
    rows = "".join("<tr>" + "".join(f"<td class='{'win' if w else ''}'>{html.escape(t)}</td>" for t, w in r) + "</tr>" for r in body)
    return f"<table class='{cls}'><thead><tr>{h}</tr></thead><tbody>{rows}</tbody></table>"


def markdown_table(table: pd.DataFrame, columns: tuple[str, ...]) -> str:
    return markdown_grid(*table_rows(table, columns))


def html_table(table: pd.DataFrame, columns: tuple[str, ...]) -> str:
    return html_grid(*table_rows(table, columns))


def configuration_rows(tables: list[pd.DataFrame]) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """Where a task x model x size has more than one configuration: each one, its hash and device, and every
    field on which it differs from the first of its group (the labels name at most three)."""
    body = []
    for t in tables:
        if t.empty:
            continue
        for _, g in t.drop_duplicates("cfg").groupby(["task", "model_label", "size"], sort=False):
            if len(g) < 2:
                continue
            first = g.iloc[0]
            for _, r in g.iterrows():
                what = "(the first)" if r["cfg"] == first["cfg"] else configs.diff_text(first["flat"], r["flat"], limit=99)
                body.append([(str(r["task"]), False), (str(r["label"]), False), (str(r["size"]), False), (str(r["config_hash"]), False),
                             (str(r["device_label"] if "device_label" in r else r["device"]), False), (what, False)])
    return ["task", "row", "size", "config hash", "device", "differs from the first by"], body


# --- throughput runs and length sweeps ---------------------------------------------------------------
THROUGHPUT_COLS = ("step_s", "train_tokens_per_s", "peak_memory_bytes", "mfu", "decode_s_per_token_b1", "decode_s_per_token_batch",
                   "params", "flops_per_token")


def failure_kind(error: object) -> str:
    """A failed point as a table cell shows it: ``OOM``, ``over budget``, ``diverged`` or ``failed``."""
    e = str(error or "").lower()
    if e.startswith("out of memory") or "out of memory" in e:
        return "OOM"
    if "budget" in e:
        return "over budget"
    if e.startswith("diverged"):
        return "diverged"
    return "failed"


def recurrent_models(runs: pd.DataFrame) -> dict[str, bool]:
    """model -> recurrent, as the registry's metadata stored with any of its runs says (absent: unknown)."""
    if "model_recurrent" not in runs:
        return {}
    known = runs.dropna(subset=["model_recurrent"])
    return {str(m): bool(v) for m, v in known.groupby("model")["model_recurrent"].first().items()}


def sweep_reference(runs: pd.DataFrame, explicit: str | None) -> str | None:
    """The model a sweep's ratios are to: the one asked for, else the model recorded as not recurrent (the
    Transformer, as in Long Range Arena's table), else the report's default reference."""
    if explicit:
        return explicit
    parallel = [m for m in model_order(runs) if recurrent_models(runs).get(m) is False]
    return parallel[0] if parallel else default_reference(runs)


@dataclass
class Sweep:
    """One length sweep: the throughput runs of one task and size that differ in the source length only."""

    task: str
    size: str
    title: str  # task · size · device · precision · launch mode · batch
    variant: str  # what sets it apart from the other sweeps of its task and size (figure line style)
    lengths: list[int]
    models: list[str]  # model labels, story order
    colour_of: dict[str, str]  # model label -> model (for colours)
    points: pd.DataFrame  # model_label, length, status (ok | OOM | ...), step_s, steps_per_s, tokens_per_s, peak_bytes, seeds
    reference: str | None

    def point(self, model: str, length: int) -> pd.Series | None:
        p = self.points[(self.points["model_label"] == model) & (self.points["length"] == length)]
        return None if p.empty else p.iloc[0]


def _scope_title(task: str, size: str, flat: dict[str, Any]) -> str:
    parts = [task, f"size {size}", configs.describe(configs.DEVICE, flat.get(configs.DEVICE)),
             configs.describe("train.amp", flat.get("train.amp")), configs.describe("train.capture", flat.get("train.capture"))]
    if flat.get("train.batch_size") is not None:
        parts.append(f"batch {flat['train.batch_size']}")
    if flat.get("throughput.steps") is not None:
        parts.append(f"{flat['throughput.steps']} timed steps")
    return " · ".join(parts)


def _points(g: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (lab, length), p in g.groupby(["model_label", "length"], sort=False):
        ok = p[p["status"] == "ok"]
        row = {"model_label": lab, "model": p["model"].iloc[0], "length": int(length)}
        if ok.empty:
            row.update(status=failure_kind(p["error"].iloc[-1]), error=str(p["error"].iloc[-1]), step_s=math.nan, steps_per_s=math.nan,
                       tokens_per_s=math.nan, peak_bytes=math.nan, seeds=0)
        else:
            step = pd.to_numeric(ok["step_s"], errors="coerce").median()
            row.update(status="ok", error="", step_s=step, steps_per_s=1 / step if step and step > 0 else math.nan,
                       tokens_per_s=pd.to_numeric(ok["train_tokens_per_s"], errors="coerce").median(),
                       peak_bytes=pd.to_numeric(ok["peak_memory_bytes"], errors="coerce").median(), seeds=int(ok["seed"].nunique()))
        rows.append(row)
    return pd.DataFrame(rows)


def throughput_split(runs: pd.DataFrame, reference: str | None) -> tuple[list[Sweep], pd.DataFrame]:
    """Throughput runs -> (the length sweeps, the other throughput runs annotated for the plain table).

    A sweep is every throughput run of one task, size and context (device, precision, launch mode, batch,
    steps ...) that differ only in their fixed source length, when there are at least two lengths.
    """
    tp = runs[runs["mode"] == "throughput"] if "mode" in runs else runs.iloc[:0]
    if tp.empty:
        return [], annotate(tp)
    a = annotate(tp, ignore=configs.LENGTH_FIELDS)
    a["scope"] = [configs.digest(configs.without(f, configs.MODEL_FIELDS + configs.LENGTH_FIELDS)) for f in a["flat"]]
    order = model_order(runs)
    sweeps, rest = [], []
    scopes = [(s, g) for s, g in a.groupby("scope", sort=False)]
    swept = {s for s, g in scopes if g["length"].dropna().nunique() >= 2}
    scope_flat = {s: configs.without(g["flat"].iloc[0], configs.MODEL_FIELDS + configs.LENGTH_FIELDS) for s, g in scopes if s in swept}
    for scope, g in scopes:
        if scope not in swept:
            rest.append(tp.loc[g.index])
            continue
        lengths = sorted({int(x) for x in g["length"].dropna()})
        g = g.dropna(subset=["length"])
        task, size = str(g["task"].iloc[0]), str(g["size"].iloc[0])
        peers = {s: f for s, f in scope_flat.items() if f.get("size") == scope_flat[scope].get("size")
                 and f.get("data.task") == scope_flat[scope].get("data.task")}
        variant = configs.labels(peers).get(scope, "")
        labs = list(dict.fromkeys(g["model_label"]))
        rank = {m: i for i, m in enumerate(order)}
        models_ = sorted(labs, key=lambda lab: (rank.get(g.loc[g["model_label"] == lab, "model"].iloc[0], len(rank)), lab))
        colour_of = {lab: str(g.loc[g["model_label"] == lab, "model"].iloc[0]) for lab in labs}
        title = _scope_title(task, size, scope_flat[scope])
        extra = configs.labels({s: configs.without(f, (configs.DEVICE, "train.amp", "train.capture", "train.batch_size", "throughput.steps"))
                                for s, f in peers.items()}).get(scope, "")
        sweeps.append(Sweep(task, size, title + (f" · {extra}" if extra else ""), variant, lengths, models_, colour_of, _points(g),
                            reference if reference in labs else None))
    return sweeps, annotate(pd.concat(rest) if rest else tp.iloc[:0], ignore=configs.LENGTH_FIELDS)


def _abs(p: pd.Series) -> str:
    return f"{p['steps_per_s']:.3g} steps/s · {metric('peak_memory_bytes').format(metric('peak_memory_bytes').display(p['peak_bytes']))} MiB"


def sweep_rows(sw: Sweep) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """Long Range Arena's table: rows models, columns lengths, cells steps/s and peak memory as ratios to the
    reference at the same length; the reference's own row holds its absolute figures; a failed point says so."""
    headers = ["model"] + [f"length {L}" for L in sw.lengths]
    body = []
    ref = sw.reference
    if ref is not None:
        body.append([(f"{ref} (absolute)", False)] + [
            ((_abs(p) if p["status"] == "ok" else str(p["status"])) if (p := sw.point(ref, L)) is not None else "–", False) for L in sw.lengths])
    for m in sw.models:
        if m == ref:
            continue
        cells = [(m + (" (absolute)" if ref is None else ""), False)]
        for L in sw.lengths:
            p, r = sw.point(m, L), sw.point(ref, L) if ref is not None else None
            if p is None:
                cells.append(("–", False))
            elif p["status"] != "ok":
                cells.append((str(p["status"]), False))
            elif r is None or r["status"] != "ok":
                cells.append((_abs(p), False))
            else:
                cells.append((f"{p['steps_per_s'] / r['steps_per_s']:.2f}× · {p['peak_bytes'] / r['peak_bytes']:.2f}×",
                              p["steps_per_s"] > r["steps_per_s"]))
        body.append(cells)
    return headers, body


def _crossing(lo: tuple[int, float], hi: tuple[int, float]) -> float:
    """Where log(ratio) crosses 0 between two lengths, interpolated on log-log axes (as the figure draws it)."""
    (l0, r0), (l1, r1) = lo, hi
    t = -math.log(r0) / (math.log(r1) - math.log(r0))
    return math.exp(math.log(l0) + t * (math.log(l1) - math.log(l0)))


def crossover(sw: Sweep, recurrent: dict[str, bool]) -> str | None:
    """One line: from which length the reference (the Transformer) trains faster than each recurrent model in
    this sweep -- where the tokens/s lines cross -- or that it does not within the lengths measured."""
    ref = sw.reference
    if ref is None:
        return None
    others = [m for m in sw.models if m != ref and recurrent.get(sw.colour_of[m], not recurrent)]
    if not others:
        return None
    clauses = []
    for m in others:
        ratios = []
        for L in sw.lengths:
            p, r = sw.point(m, L), sw.point(ref, L)
            if p is not None and r is not None and p["status"] == r["status"] == "ok" and p["tokens_per_s"] > 0:
                ratios.append((L, r["tokens_per_s"] / p["tokens_per_s"]))
        if not ratios:
            clauses.append(f"no length where both {ref} and {m} ran")
            continue
        span = f"{ratios[0][0]}–{ratios[-1][0]}" if len(ratios) > 1 else str(ratios[0][0])
        start = next((i for i in range(len(ratios)) if all(r > 1 for _, r in ratios[i:])), None)
        if start is None:
            clauses.append(f"slower than {m} at every length measured up to {ratios[-1][0]} ({ratios[-1][1]:.2f}× its tokens/s there)"
                           if all(r <= 1 for _, r in ratios) else
                           f"not faster than {m} from any length on within {span} (the lines cross more than once; {ratios[-1][1]:.2f}× at {ratios[-1][0]})")
        elif start == 0:
            clauses.append(f"faster than {m} at every length measured ({span}; {ratios[0][1]:.2f}× at {ratios[0][0]}, {ratios[-1][1]:.2f}× at {ratios[-1][0]})")
        else:
            near = _crossing(ratios[start - 1], ratios[start])
            before = [L for L, r in ratios[: start - 1] if r > 1]  # the lines crossed before too: say so, the figure shows it
            clauses.append(f"faster than {m} from length {ratios[start][0]} on (the lines cross near {near:.0f}; "
                           f"{ratios[start - 1][1]:.2f}× at {ratios[start - 1][0]}, {ratios[-1][1]:.2f}× at {ratios[-1][0]}"
                           + (f"; also faster at {', '.join(map(str, before))}" if before else "") + ")")
    fails = sw.points[(sw.points["model_label"] == ref) & (sw.points["status"] != "ok")]
    tail = f" {ref} failed ({', '.join(f'{s} at {L}' for s, L in zip(fails['status'], fails['length']))})." if not fails.empty else ""
    return f"{sw.title}: in training tokens/s, {ref} is " + "; ".join(clauses) + "." + tail


def throughput_table(tp: pd.DataFrame) -> pd.DataFrame:
    """The throughput runs outside any sweep: one row per configuration, medians over seeds, failures as rows."""
    rows = []
    if tp.empty:
        return pd.DataFrame()
    for _, g in tp.groupby(["task", "model_label", "size", "cfg"], sort=False):
        ok = g[g["status"] == "ok"]
        r0 = g.iloc[0]
        row: dict[str, Any] = {"task": r0["task"], "model": r0["model"], "model_label": r0["model_label"], "label": r0["label"],
                               "size": r0["size"], "cfg": r0["cfg"], "config_hash": r0["config_hash"], "device": r0["device_label"],
                               "device_label": r0["device_label"], "flat": r0["flat"], "seeds": int(ok["seed"].nunique()), "runs": len(ok),
                               "status": "ok" if len(ok) else failure_kind(g["error"].iloc[-1])}
        src, tgt = pd.to_numeric(ok["src_len"], errors="coerce").median(), pd.to_numeric(ok["tgt_len"], errors="coerce").median()
        row["shape"] = (f"{src:.0f} → {tgt:.0f}" if pd.notna(src) and pd.notna(tgt) else
                        f"{int(r0['length'])}" if pd.notna(r0["length"]) else "–")
        bs = pd.to_numeric(ok["batch_size"], errors="coerce").median() if len(ok) else r0["flat"].get("train.batch_size")
        row["batch"] = "–" if bs is None or pd.isna(bs) else f"{bs:.0f}"
        for c in THROUGHPUT_COLS:
            v = [x for x in (metric(c).display(y) for y in ok[c]) if x is not None]
            row[c] = float(np.median(v)) if v else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def throughput_rows(table: pd.DataFrame) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    cols = [c for c in THROUGHPUT_COLS if c in table and not table[c].isna().all()]
    headers = ["task", "model", "size", "source → target", "batch", "seeds"] + [metric(c).label for c in cols]
    body = []
    for i in table.index:
        r = table.loc[i]
        cells = [(str(r["task"]), False), (str(r["label"]), False), (str(r["size"]), False), (r["shape"], False), (r["batch"], False),
                 (str(r["seeds"]), False)]
        if r["status"] != "ok":
            cells += [(str(r["status"]), False)] + [("–", False)] * (len(cols) - 1)
        else:
            cells += [(metric(c).format(r[c]), False) for c in cols]
        body.append(cells)
    return headers, body


def overlap_notes(runs: pd.DataFrame) -> list[str]:
    """One line per task whose test questions also appear in the training split it was trained on -- a file's own
    split, such as the book's date.txt -- from the overlap stored with each run: exact match there is partly
    recall. Generated tasks are disjoint and get no line."""
    cols = ["task", "data_source", "test_questions", "test_questions_in_train", "test_examples_in_train"]
    if any(c not in runs for c in cols):
        return []
    seen = pd.to_numeric(runs["test_questions_in_train"], errors="coerce")
    d = runs.loc[(runs["status"] == "ok") & (seen > 0), cols].drop_duplicates()
    out = []
    for r in d.itertuples(index=False):
        q, n, ex = int(r.test_questions), int(r.test_questions_in_train), int(r.test_examples_in_train)
        src = f" ({r.data_source})" if isinstance(r.data_source, str) else ""
        out.append(f"{r.task}{src}: {n:,} of its {q:,} distinct test questions ({n / q:.1%}) also appear in its training split "
                   f"({ex:,} test examples); exact match on them is partly recall, not generalisation.")
    return out


# --- figures -----------------------------------------------------------------------------------------
@dataclass
class Figure:
    name: str
    title: str
    png: bytes
    caption: str


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DASHES: tuple[tuple[float, ...], ...] = ((), (5, 2), (1.5, 1.5), (6, 1.5, 1.5, 1.5), (3, 3))


def dashes(variants: pd.Series) -> dict[str, tuple[float, ...]]:
    """variant -> its line's dash pattern (solid first), the same in every panel of a figure."""
    levels = list(dict.fromkeys(v for v in variants if v))
    out: dict[str, tuple[float, ...]] = {"": ()} if "" in set(variants) else {}
    out.update({v: DASHES[(i + len(out)) % len(DASHES)] for i, v in enumerate(levels)})
    return out


def _lines(d: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``d`` (with ``cfg``) joined to their configuration's line: model label, variant, model."""
    info = table.drop_duplicates(["model", "cfg"]).set_index(["model", "cfg"])[["model_label", "variant"]]
    d = d.join(info, on=["model", "cfg"], how="inner")
    return d


def _facet(d: pd.DataFrame) -> pd.Series:
    return d["task"].astype(str) + " · " + d["size"].astype(str)


def plain_log_ticks(axis: Any) -> None:
    """Ticks of a log axis at 1, 2 and 5 of each decade, written as plain numbers (2,000 rather than 2×10³)."""
    axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:.2g}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def curve_frame(ep: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The points of the learning curves: each epoch row with its configuration's line (model label, variant)
    and panel (``label``); a line is one configuration, its band the seeds."""
    if ep.empty or table.empty or "valid_exact_match" not in ep:
        return pd.DataFrame()
    ep = ep.assign(cfg=ep["config_hash"].astype(str) + "@" + ep["device"].astype(str), valid_exact_pct=ep["valid_exact_match"] * 100)
    ep = _lines(ep, table)
    return ep.assign(label=_facet(ep)) if not ep.empty else ep


def fig_learning_curves(ep: pd.DataFrame, table: pd.DataFrame, pal: dict) -> Figure | None:
    """Validation accuracy per epoch, one line per configuration (band over its seeds): runs of different
    configurations are never joined into one line."""
    ep = curve_frame(ep, table)
    if ep.empty:
        return None
    colours = model_palette(table, pal)
    labels = list(dict.fromkeys(ep["label"]))
    fig, axes = plt.subplots(len(labels), 2, figsize=(11, 3.4 * len(labels)), squeeze=False)
    dash_map = dashes(table["variant"])
    for row, lab in enumerate(labels):
        d = ep[ep["label"] == lab].drop(columns=["model"]).rename(columns={"model_label": "model", "variant": "configuration"})
        several = d.groupby("cfg")["seed"].nunique().max() > 1
        style = "configuration" if d["configuration"].nunique() > 1 else None
        for col, (x, xl) in enumerate((("epoch", "epoch"), ("wall_cum_s", "wall time incl. evaluation (s)"))):
            ax = axes[row][col]
            sns.lineplot(data=d, x=x, y="valid_exact_pct", hue="model", palette=colours, hue_order=[m for m in colours if m in set(d["model"])],
                         style=style, style_order=[v for v in dash_map if v in set(d["configuration"])] if style else None,
                         dashes={v: dash_map[v] for v in set(d["configuration"])} if style else True, errorbar=("pi", 100) if several else None, estimator="mean", marker="o", ax=ax, legend=(col == 1))
            ax.set(xlabel=xl, ylabel="validation exact match %", ylim=(-2, 102), title=lab)
            if x == "epoch":
                ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
                lo, hi = d["epoch"].min(), d["epoch"].max()
                ax.set_xlim(lo - max(0.5, (hi - lo) * 0.05), hi + max(0.5, (hi - lo) * 0.05))  # one epoch: not a 0.1-wide axis
            if col == 1 and ax.get_legend() is not None:
                sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), frameon=False, title=None if style else "model")
    fig.tight_layout()
    return Figure("learning_curves", "Learning curves", _png(fig),
                  "Validation exact match after each epoch, against epochs and against wall time (training + evaluation). One line per "
                  "configuration; line styles tell configurations of one model apart. Bands span the seeds.")


def fig_speed_accuracy(table: pd.DataFrame, pal: dict) -> Figure | None:
    """Throughput against test accuracy, one point per configuration; one panel per task, size (and device,
    when the report holds several: speeds of different machines are not one axis)."""
    t = table.dropna(subset=["train_tokens_per_s", "test_exact_match"])
    if t.empty:
        return None
    t = t.assign(facet=_facet(t))
    multi = t.groupby("facet")["device"].nunique(dropna=False)
    t["facet"] = [f + (f" · {d}" if multi[f] > 1 else "") for f, d in zip(t["facet"], t["device"])]
    labels = list(dict.fromkeys(t["facet"]))
    colours = model_palette(t, pal)
    fig, axes = plt.subplots(1, len(labels), figsize=(5.2 * len(labels), 4), squeeze=False)
    for ax, lab in zip(axes[0], labels):
        d = t[t["facet"] == lab]
        marker = {v: MARKERS[i % len(MARKERS)] for i, v in enumerate(dict.fromkeys(d["variant"]))}
        front = pareto_front([(-r.train_tokens_per_s, r.test_exact_match) for r in d.itertuples()])
        for r, on in zip(d.itertuples(), front):
            ax.errorbar(r.train_tokens_per_s, r.test_exact_match, yerr=0 if math.isnan(r.test_exact_match_ci) else r.test_exact_match_ci,
                        fmt=marker[r.variant], ms=9 if on else 6, color=colours.get(r.model_label), mec="black" if on else "none",
                        label=r.label, capsize=3)
        pts = sorted((r.train_tokens_per_s, r.test_exact_match) for r, on in zip(d.itertuples(), front) if on)
        if len(pts) > 1:
            ax.plot(*zip(*pts), ls="--", color="grey", lw=1, zorder=0)
        ax.set(xscale="log", xlabel="training throughput (target tokens/s, log)", ylabel="test exact match %", title=lab, ylim=(-2, 102))
        plain_log_ticks(ax.xaxis)
    handles = {h.get_label(): h for ax in axes[0] for h in ax.get_legend_handles_labels()[0]}
    fig.legend(handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False, title="model")
    fig.tight_layout()
    return Figure("speed_accuracy", "Speed against accuracy", _png(fig),
                  "Each configuration's training throughput against its test exact match (mean over seeds, 95 % interval). Outlined points "
                  "and the dashed line are the Pareto front: no other configuration is both faster and more accurate.")


def bin_centres(lengths: pd.Series, bins: int = 8) -> pd.Series:
    """Equal-width bins over a task's lengths (about ``bins`` of them), each length -> its bin's centre,
    so each point of the length plot rests on enough examples to be more than noise."""
    lo, hi = int(lengths.min()), int(lengths.max())
    width = max(1, -(-(hi - lo + 1) // bins))  # ceil
    return lo + (lengths - lo) // width * width + (width - 1) / 2


MIN_PER_BIN = 10  # test examples a point of the length plot rests on, at least


def fig_accuracy_by_length(runs: pd.DataFrame, table: pd.DataFrame, pal: dict, notes: list[str] | None = None) -> Figure | None:
    """Test accuracy by source length, one line per configuration.

    A small test set (a few hundred lines of a book-format file) gets fewer, wider bins -- about one per
    ``MIN_PER_BIN`` examples of its smallest run -- and a bin still under that many examples is left out;
    where nothing is left, there is no figure and ``notes`` says why."""
    rows = []
    for r in runs[runs["status"] == "ok"].itertuples():
        for L, (c, n) in (r.test_by_length or {}).items():
            rows.append({"task": r.task, "size": r.size, "model": r.model, "cfg": f"{r.config_hash}@{r.device}", "seed": r.seed, "length": int(L),
                         "correct": c, "n": n})
    if not rows or table.empty:
        return None
    d = _lines(pd.DataFrame(rows), table)
    if d.empty:
        return None
    per_run = d.groupby(["task", "cfg", "seed"])["n"].sum().groupby("task").min()
    binned = pd.Series(0.0, index=d.index)
    for task, g in d.groupby("task"):
        bins = int(max(1, min(8, per_run[task] // MIN_PER_BIN)))
        binned[g.index] = bin_centres(g["length"], bins)
    d["length"] = binned
    d = d.groupby(["task", "size", "cfg", "model_label", "variant", "length"], as_index=False)[["correct", "n"]].sum()
    dropped = d[d["n"] < MIN_PER_BIN]
    d = d[d["n"] >= MIN_PER_BIN]
    if d.empty:
        if notes is not None:
            notes.append(f"Accuracy by source length: left out, no length bin holds {MIN_PER_BIN} test examples "
                         f"(the largest holds {int(dropped['n'].max())}); the test set is too small to say more than the overall exact match.")
        return None
    d["exact_pct"] = d["correct"] / d["n"] * 100
    d["label"] = _facet(d)
    labels = list(dict.fromkeys(d["label"]))
    colours = model_palette(table, pal)
    fig, axes = plt.subplots(1, len(labels), figsize=(5.2 * len(labels), 3.8), squeeze=False)
    dash_map = dashes(table["variant"])
    for ax, lab in zip(axes[0], labels):
        dd = d[d["label"] == lab]
        style = "variant" if dd["variant"].nunique() > 1 else None
        sns.lineplot(data=dd, x="length", y="exact_pct", hue="model_label", palette=colours, style=style,
                     dashes={v: dash_map[v] for v in set(dd["variant"])} if style else True,
                     hue_order=[m for m in colours if m in set(dd["model_label"])], marker="o", ax=ax, legend=False)
        ax.set(xlabel="source length (characters)", ylabel="test exact match %", title=lab, ylim=(-2, 102))
    handles = [plt.Line2D([], [], color=c, marker="o", label=m) for m, c in colours.items() if m in set(d["model_label"])]
    for v, dash in ((v, dash) for v, dash in dash_map.items() if v):
        handles.append(plt.Line2D([], [], color="black", label=v, **({"dashes": dash} if dash else {"ls": "-"})))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False, title="model")
    fig.tight_layout()
    few = f" {len(dropped)} bin(s) under {MIN_PER_BIN} examples left out." if len(dropped) else ""
    return Figure("accuracy_by_length", "Accuracy by source length", _png(fig),
                  f"Test exact match by source length (lengths binned, bins with at least {MIN_PER_BIN} test examples).{few} A fixed-length "
                  "vector (plain seq2seq) loses accuracy as sources grow (book §8.1).")


def fig_sweep(task: str, sweeps: list[Sweep], pal: dict) -> Figure | None:
    """Long Range Arena's picture of a length sweep: training tokens/s (top) and peak memory (bottom) against
    source length, log-log, one line per model, one column per size (and configuration); a failed point is
    an ✕ on the lower edge at its length, labelled with why."""
    sws = [s for s in sweeps if s.task == task]
    if not sws:
        return None
    cols = list(dict.fromkeys((s.size, s.variant) for s in sws))
    fig, axes = plt.subplots(2, len(cols), figsize=(4.6 * len(cols) + 1.5, 7.2), squeeze=False)
    handles: dict[str, Any] = {}
    for j, (size, variant) in enumerate(cols):
        for sw in (s for s in sws if (s.size, s.variant) == (size, variant)):
            for i, (y, ylab) in enumerate((("tokens_per_s", "training tokens/s (log)"), ("peak_bytes", "peak memory MiB (log)"))):
                ax = axes[i][j]
                for m in sw.models:
                    p = sw.points[sw.points["model_label"] == m].sort_values("length")
                    ok = p[p["status"] == "ok"]
                    colour = pal.get(sw.colour_of[m], (0.4, 0.4, 0.4))
                    vals = ok[y] / (2**20 if y == "peak_bytes" else 1)
                    (line,) = ax.plot(ok["length"], vals, marker="o", color=colour, label=m)
                    handles.setdefault(m, line)
                    for _, f in p[p["status"] != "ok"].iterrows():
                        tr = matplotlib.transforms.blended_transform_factory(ax.transData, ax.transAxes)
                        ax.plot([f["length"]], [0.04], marker="X", ms=10, color=colour, mec="black", transform=tr, clip_on=False)
                        ax.annotate(f["status"], (f["length"], 0.04), xycoords=tr, xytext=(0, 9), textcoords="offset points",
                                    ha="center", fontsize=7, color="black")
                        handles.setdefault("✕ failed point", plt.Line2D([], [], ls="", marker="X", ms=9, color="grey", mec="black"))
                ax.set(xscale="log", yscale="log", xlabel="source length (log)", ylabel=ylab,
                       title=f"{task} · size {size}" + (f" · {variant}" if variant else "") if i == 0 else "")
                ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(sw.lengths))
                ax.xaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([str(L) for L in sw.lengths]))
                ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
                plain_log_ticks(ax.yaxis)
                ax.grid(True, which="major", alpha=0.3)
                lo, hi = min(sw.lengths), max(sw.lengths)
                ax.set_xlim(lo / 1.25, hi * 1.25)
    fig.legend(list(handles.values()), list(handles.keys()), loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False, title="model")
    fig.tight_layout()
    return Figure(f"sweep_{task}", f"Length sweep on {task}: speed and memory", _png(fig),
                  "Training tokens/s (top) and peak memory (bottom) against source length, both axes logarithmic, one line per model, "
                  "one column per size and configuration. Fixed-shape timed steps after warm-up (throughput runs). An ✕ on the lower "
                  "edge is a point that failed (OOM: out of memory). On a CPU the memory is the process's peak RSS.")


def fig_heatmaps(store: Store, sessions: list[str], pal: dict, per_task: int = 2, tasks: list[str] | None = None) -> list[Figure]:
    """Attention heatmaps of the same test inputs across models (book §8.3)."""
    by_task: dict[str, list] = {}
    for sid in sessions:
        for r in store.runs(sid):
            if r.status == "ok" and r.samples and (not tasks or r.task in tasks):
                by_task.setdefault(r.task, []).append(r)
    figs = []
    for task, runs in by_task.items():
        seen: dict[str, object] = {}
        for r in runs:  # one run per model (the first seed) so the same inputs line up
            seen.setdefault(r.model, r)
        order = [m for m in pal if m in seen] + [m for m in seen if m not in pal]
        n_inputs = min(per_task, min(len(seen[m].samples) for m in order))
        if n_inputs == 0:
            continue
        fig, axes = plt.subplots(n_inputs, len(order), figsize=(3.3 * len(order), 3.3 * n_inputs), squeeze=False)
        for col, m in enumerate(order):
            for row in range(n_inputs):
                s = seen[m].samples[row]
                att = np.array(s["attention"], dtype=float)
                ax = axes[row][col]
                src = ["␣" if ch == " " else ch for ch in s["src"]]
                pred = ["␣" if ch == " " else ch for ch in s["pred"]][: att.shape[0]]
                pred = [p if p != "<eos>" else "⏎" for p in pred]
                sns.heatmap(att, ax=ax, cmap="Greys", vmin=0, vmax=1, cbar=False, square=False, xticklabels=src, yticklabels=pred, linewidths=0)
                ax.tick_params(axis="both", labelsize=7, length=0)
                ax.set_xticklabels(ax.get_xticklabels(), rotation=0)
                ax.set_yticklabels(ax.get_yticklabels(), rotation=0)
                ok = "".join(p for p in s["pred"] if not p.startswith("<")) == s["target"]
                ax.set_title(f"{m}{'' if ok else ' ✗'}", fontsize=10, color=pal.get(m, "black"))
                if col == 0:
                    ax.set_ylabel("output", fontsize=8)
                ax.set_xlabel("source" + (" (reversed, as the model reads it)" if s.get("reversed_source") else ""), fontsize=8)
        fig.tight_layout()
        figs.append(Figure(f"attention_{task}", f"Attention on {task}", _png(fig),
                           f"Where each output character looks in the source, for the same {task} test inputs across models (darker = more weight; ✗ = wrong answer)."))
    return figs


# --- environment -------------------------------------------------------------------------------------
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


# --- writing -----------------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{font-size:1.6rem} h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.8rem;margin:.5rem 0;display:block;overflow-x:auto}
th,td{padding:.25rem .4rem;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th{background:#f4f4f4;position:sticky;top:0} td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}
td.win{font-weight:700;background:#e8f4e8}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.5rem 1rem}
figure{margin:1rem 0} figure img{max-width:100%} figcaption{font-size:.85rem;color:#555}
.note{font-size:.85rem;color:#555} h3{font-size:1rem;margin:1rem 0 .2rem}
table.env td,table.env th{font-size:.75rem}
table.sweep td,table.sweep th{text-align:right} table.sweep td:first-child,table.sweep th:first-child{text-align:left}
table.conf td:last-child,table.fail td:last-child,table.fail th:last-child{text-align:left;white-space:normal;min-width:24rem} ul.cross{font-size:.9rem}
"""


def build(store: Store, sessions: list[str], reference: str | None = None, tasks: list[str] | None = None) -> dict:
    """``reference``: the model speed ratios are relative to (default: the one the registry marks, as stored;
    for length sweeps, the model recorded as not recurrent -- the Transformer, as Long Range Arena's table)."""
    runs = runs_frame(store, sessions)
    if tasks:
        runs = runs[runs["task"].isin(tasks)]
    if runs.empty:
        raise UserError(f"session {', '.join(sessions)} has no runs to report")
    explicit = reference
    if reference is None:
        reference = default_reference(runs)
    elif reference not in set(runs["model"]):
        raise UserError(f"--reference {reference}: no such model in these sessions (models: {', '.join(model_order(runs))})")
    notes: list[str] = []
    table = summary_table(runs, reference)
    if not table.empty:
        table["variant"] = variants(table, ["task", "size"])
    ep = epochs_frame(store, sessions)
    if tasks and not ep.empty:
        ep = ep[ep["task"].isin(tasks)]
    pal = palette(model_order(runs))
    qruns = quality_runs(runs)
    figs = [f for f in (fig_learning_curves(ep, table, pal), fig_speed_accuracy(table, pal) if not table.empty else None,
                        fig_accuracy_by_length(qruns, table, pal, notes)) if f is not None]
    figs += fig_heatmaps(store, sessions, pal, tasks=tasks)
    sref = sweep_reference(runs, explicit)
    sweeps, single = throughput_split(runs, sref)
    recurrent = recurrent_models(runs)
    crossovers: list[str] = []
    sweep_notes: list[str] = []
    if sweeps and explicit is None and recurrent.get(str(sref)) is not False:
        sweep_notes.append(f"Length sweeps: these runs do not record which model is parallel over time (they were stored before the registry "
                     f"recorded whether a model is recurrent), so the sweep ratios are to {sref} and no crossover length is derived; "
                     "--reference MODEL picks the model to compare against.")
    else:
        crossovers = [c for sw in sweeps if (c := crossover(sw, recurrent)) is not None]
    sweep_figs = [f for t in dict.fromkeys(sw.task for sw in sweeps) if (f := fig_sweep(t, sweeps, pal)) is not None]
    tput = throughput_table(single)
    env, warnings = environment(store, sessions)
    ok_keys = set(runs.loc[runs["status"] == "ok", "key"])
    failed = annotate(runs)  # labelled like the rows, so 'attention [bf16]' says which configuration failed
    failures = (failed[(failed["status"] != "ok") & ~failed["key"].isin(ok_keys)][["task", "label", "size", "seed", "mode", "device", "error"]]
                .rename(columns={"label": "model"}))
    conf = configuration_rows([annotate(qruns), tput])
    return {"runs": runs, "table": table, "figures": figs, "env": env, "warnings": warnings, "failures": failures, "reference": reference,
            "sweeps": sweeps, "sweep_reference": sref, "crossovers": crossovers, "sweep_figures": sweep_figs, "throughput": tput,
            "configurations": conf, "notes": notes, "sweep_notes": sweep_notes, "overlap": overlap_notes(runs)}


def _figure_parts(f: Figure, outputs: dict[str, bytes | str]) -> tuple[str, list[str]]:
    """A figure's HTML (inlined PNG) and Markdown; its PNG joins the files written together at the end."""
    outputs[f.name + ".png"] = f.png
    b64 = base64.b64encode(f.png).decode()
    return (f"<h2>{html.escape(f.title)}</h2><figure><img alt='{html.escape(f.title)}' src='data:image/png;base64,{b64}'>"
            f"<figcaption>{html.escape(f.caption)}</figcaption></figure>", [f"## {f.title}", "", f"![{f.title}]({f.name}.png)", "", f.caption, ""])


def write(store: Store, sessions: list[str], out: str, reference: str | None = None, tasks: list[str] | None = None) -> dict[str, str]:
    r = build(store, sessions, reference, tasks)
    outputs: dict[str, bytes | str] = {}  # written together at the end, all or none (a full disk leaves nothing)
    title = f"s2sbench report — {', '.join(sessions)}"
    reference = r["reference"]
    ref_note = f"Speed ratios in brackets are relative to <b>{html.escape(reference)}</b> in the same configuration (below 1 is faster for times, above 1 for throughput)." if reference else ""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for w in r["warnings"]:
        parts.append(f"<p class='warn'>⚠ {html.escape(w)}</p>")
    md = [f"# {title}", ""] + [f"> ⚠ {w}" for w in r["warnings"]] + [""]
    distinct = ("Runs that differ in anything but the seed (device, precision, launch mode, options, settings, data) are separate rows, "
                "labelled in brackets by what differs; seeds counts distinct seeds.")
    if not r["table"].empty:
        parts.append("<h2>Results</h2>")
        parts.append("<p class='note'>Time-to-quality runs. Medians over seeds for speed; mean ± 95 % interval over seeds for quality. "
                     f"{html.escape(distinct)} Bold green: best of its task, size and device. {ref_note}</p>")
        parts.append("<h3>Quality</h3>" + html_table(r["table"], QUALITY_COLS))
        parts += [f"<p class='warn'>Test overlap — {html.escape(n)}</p>" for n in r["overlap"]]
        parts.append("<h3>Speed and cost</h3>" + html_table(r["table"], SPEED_COLS))
        md += ["## Quality", "", distinct, "", markdown_table(r["table"], QUALITY_COLS), ""] + [f"> Test overlap — {n}" for n in r["overlap"]]
        md += ([""] if r["overlap"] else []) + ["## Speed and cost", "", markdown_table(r["table"], SPEED_COLS), ""]
    for n in r["notes"]:
        parts.append(f"<p class='warn'>{html.escape(n)}</p>")
        md += [f"> {n}", ""]
    if r["sweeps"]:
        sref = r["sweep_reference"]
        how = (f"Each cell: training steps/s and peak memory as ratios to <b>{html.escape(sref)}</b> at the same length (speed above 1× is "
               f"faster, memory below 1× is smaller; bold green: faster than {html.escape(sref)}); its own row holds its absolute figures. "
               if sref else "Each cell: training steps/s and peak memory. ")
        how += "OOM: the point ran out of memory; – : not run. Throughput runs: fixed-shape timed steps after warm-up, medians over seeds."
        parts.append("<h2>Length sweeps</h2><p class='note'>" + how + "</p>")
        md += ["## Length sweeps", "", re.sub(r"</?b>", "", html.unescape(how)), ""]
        for n in r["sweep_notes"]:
            parts.append(f"<p class='warn'>{html.escape(n)}</p>")
            md += [f"> {n}", ""]
        for sw in r["sweeps"]:
            headers, body = sweep_rows(sw)
            parts.append(f"<h3>{html.escape(sw.title)}</h3>" + html_grid(headers, body, "sweep"))
            md += [f"### {sw.title}", "", markdown_grid(headers, body), ""]
        if r["crossovers"]:
            head = f"From which length {sref} trains faster than each recurrent model"
            parts.append(f"<h3>{html.escape(head)}</h3><ul class='cross'>" + "".join(f"<li>{html.escape(c)}</li>" for c in r["crossovers"]) + "</ul>")
            md += [f"### {head}", ""] + [f"- {c}" for c in r["crossovers"]] + [""]
        for f in r["sweep_figures"]:
            h, m = _figure_parts(f, outputs)
            parts.append(h)
            md += m
    if not r["throughput"].empty:
        headers, body = throughput_rows(r["throughput"])
        note = "Throughput runs outside a length sweep: fixed-shape timed steps after warm-up, no evaluation; medians over seeds."
        parts.append(f"<h2>Throughput</h2><p class='note'>{note}</p>" + html_grid(headers, body))
        md += ["## Throughput", "", note, "", markdown_grid(headers, body), ""]
    if r["table"].empty and not r["sweeps"] and r["throughput"].empty:
        parts.append("<p>No run finished.</p>")
        md += ["No run finished.", ""]
    headers, body = r["configurations"]
    if body:
        parts.append("<h2>Configurations</h2><p class='note'>Where a task, model and size ran in more than one configuration (failed "
                     "runs included): each one, and every field on which it differs from the first.</p>" + html_grid(headers, body, "conf"))
        md += ["## Configurations", "", markdown_grid(headers, body), ""]
    if not r["failures"].empty:
        parts.append("<h2>Failed runs</h2>" + r["failures"].to_html(index=False, escape=True, na_rep="–", border=0, classes="fail"))
        md += ["## Failed runs", "", markdown_frame(r["failures"]), ""]
    for f in r["figures"]:
        h, m = _figure_parts(f, outputs)
        parts.append(h)
        md += m
    parts.append("<h2>Environment</h2>" + r["env"].to_html(index=False, escape=True, na_rep="–", classes="env", border=0))
    md += ["## Environment", "", markdown_frame(r["env"])]
    parts.append("</body></html>")
    paths = {"html": os.path.join(out, "index.html"), "md": os.path.join(out, "report.md"), "csv": os.path.join(out, "runs.csv")}
    outputs["index.html"] = "\n".join(parts)
    outputs["report.md"] = "\n".join(md) + "\n"
    runs = r["runs"].assign(epoch_seconds=r["runs"]["epoch_seconds"].map(json.dumps), test_by_length=r["runs"]["test_by_length"].map(json.dumps))
    outputs["runs.csv"] = runs.to_csv(index=False)
    write_files(out, outputs, "report")
    return paths


def markdown_frame(df: pd.DataFrame) -> str:
    cells = df.astype(object).where(df.notna(), "–").astype(str)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.values.tolist()]
    return "\n".join(lines)
