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
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

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


def summary_table(runs: pd.DataFrame, reference: str | None = None) -> pd.DataFrame:
    """One row per task x model x size: medians of speed, mean and 95 % interval over seeds of quality.

    Every value is in the unit people read (the catalogue's ``display``). Quality columns ``<metric>`` hold
    the mean (in %), ``<metric>_ci`` the interval half-width (nan for a single seed), ``<metric>_n`` the
    number of seeds. Failed runs are counted, not averaged.
    """
    ok = runs[runs["status"] == "ok"].copy()
    for c in QUALITY_COLS + SPEED_COLS:
        m = metric(c)
        ok[c] = [math.nan if (v := m.display(x)) is None else v for x in ok[c]]
    rows = []
    keys = ["task", "model", "size"]
    for (task, model, size), g in ok.groupby(keys, sort=False):
        row: dict = {"task": task, "model": model, "size": size, "seeds": len(g)}
        for c in SPEED_COLS:
            v = pd.to_numeric(g[c], errors="coerce")
            if metric(c).all_seeds and v.isna().any():  # e.g. time to target: every seed must reach it
                row[c] = math.nan
            else:
                row[c] = float(v.dropna().median()) if v.notna().any() else math.nan
        ttt = pd.to_numeric(g["time_to_target_s"], errors="coerce")
        row["reached_target"] = f"{int(ttt.notna().sum())}/{len(g)}"
        for c in QUALITY_COLS:
            s = summarize(g[c].dropna().tolist())
            row[c], row[c + "_ci"], row[c + "_n"] = s.mean, s.half_width, s.n
        rows.append(row)
    # A failed run retried successfully on --resume is history, not a failure of the result.
    bad = runs[(runs["status"] != "ok") & ~runs["key"].isin(set(ok["key"]))]
    failed = bad.groupby(keys, sort=False).size()
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["failed"] = [int(failed.get((r.task, r.model, r.size), 0)) for r in table.itertuples()]
    if reference:
        for c in RATIO_COLS:
            ref = table[table["model"] == reference].set_index(["task", "size"])[c]
            table[c + "_vs_ref"] = [r[c] / ref.get((r["task"], r["size"]), math.nan) if (r["task"], r["size"]) in ref.index else math.nan
                                    for _, r in table.iterrows()]
    return table


def winners(table: pd.DataFrame) -> dict[tuple[int, str], bool]:
    """(row index, column) -> True where the row is the best of its task x size group in that column."""
    out = {}
    for _, g in table.groupby(["task", "size"], sort=False):
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


def table_rows(table: pd.DataFrame, columns: tuple[str, ...]) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """Headers and cells (text, is-winner) of one of the report's two tables."""
    win = winners(table)
    cols = [c for c in columns if c in table and not table[c].isna().all()]
    quality = columns == QUALITY_COLS
    headers = ["task", "model", "size", "seeds"] + [metric(c).label for c in cols] + (["target reached", "failed"] if quality else [])
    body = []
    for i in table.index:
        r = [(str(table.at[i, "task"]), False), (str(table.at[i, "model"]), False), (str(table.at[i, "size"]), False), (str(table.at[i, "seeds"]), False)]
        r += [(format_cell(table, i, c), win.get((i, c), False)) for c in cols]
        if quality:
            r += [(str(table.at[i, "reached_target"]), False), (str(table.at[i, "failed"]), False)]
        body.append(r)
    return headers, body


def markdown_table(table: pd.DataFrame, columns: tuple[str, ...]) -> str:
    headers, body = table_rows(table, columns)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in body:
        lines.append("| " + " | ".join(f"**{t}**" if w else t for t, w in r) + " |")
    return "\n".join(lines)


def html_table(table: pd.DataFrame, columns: tuple[str, ...]) -> str:
    headers, body = table_rows(table, columns)
    h = "".join(f"<th>{html.escape(x)}</th>" for x in headers)
    rows = "".join("<tr>" + "".join(f"<td class='{'win' if w else ''}'>{html.escape(t)}</td>" for t, w in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{rows}</tbody></table>"


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


def fig_learning_curves(ep: pd.DataFrame, pal: dict) -> Figure | None:
    if ep.empty:
        return None
    ep = ep.assign(valid_exact_pct=ep["valid_exact_match"] * 100, label=ep["task"] + " · " + ep["size"])
    labels = list(dict.fromkeys(ep["label"]))
    fig, axes = plt.subplots(len(labels), 2, figsize=(11, 3.4 * len(labels)), squeeze=False)
    for row, lab in enumerate(labels):
        d = ep[ep["label"] == lab]
        for col, (x, xl) in enumerate((("epoch", "epoch"), ("wall_cum_s", "wall time incl. evaluation (s)"))):
            ax = axes[row][col]
            sns.lineplot(data=d, x=x, y="valid_exact_pct", hue="model", palette=pal, hue_order=[m for m in pal if m in set(d["model"])],
                         errorbar=("pi", 100) if d["seed"].nunique() > 1 else None, estimator="mean", marker="o", ax=ax, legend=(col == 1))
            ax.set(xlabel=xl, ylabel="validation exact match %", ylim=(-2, 102), title=lab)
            if x == "epoch":
                ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            if col == 1 and ax.get_legend() is not None:
                sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), frameon=False, title="model")
    fig.tight_layout()
    return Figure("learning_curves", "Learning curves", _png(fig),
                  "Validation exact match after each epoch, against epochs and against wall time (training + evaluation). Bands span the seeds.")


def fig_speed_accuracy(table: pd.DataFrame, pal: dict) -> Figure | None:
    t = table.dropna(subset=["train_tokens_per_s", "test_exact_match"])
    if t.empty:
        return None
    labels = list(dict.fromkeys(t["task"] + " · " + t["size"]))
    fig, axes = plt.subplots(1, len(labels), figsize=(5.2 * len(labels), 4), squeeze=False)
    for ax, lab in zip(axes[0], labels):
        d = t[(t["task"] + " · " + t["size"]) == lab]
        front = pareto_front([(-r.train_tokens_per_s, r.test_exact_match) for r in d.itertuples()])
        for r, on in zip(d.itertuples(), front):
            ax.errorbar(r.train_tokens_per_s, r.test_exact_match, yerr=0 if math.isnan(r.test_exact_match_ci) else r.test_exact_match_ci,
                        fmt="o", ms=9 if on else 6, color=pal.get(r.model), mec="black" if on else "none", label=r.model, capsize=3)
        pts = sorted((r.train_tokens_per_s, r.test_exact_match) for r, on in zip(d.itertuples(), front) if on)
        if len(pts) > 1:
            ax.plot(*zip(*pts), ls="--", color="grey", lw=1, zorder=0)
        ax.set(xscale="log", xlabel="training throughput (target tokens/s, log)", ylabel="test exact match %", title=lab, ylim=(-2, 102))
    handles = {h.get_label(): h for ax in axes[0] for h in ax.get_legend_handles_labels()[0]}
    fig.legend(handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False, title="model")
    fig.tight_layout()
    return Figure("speed_accuracy", "Speed against accuracy", _png(fig),
                  "Each model's training throughput against its test exact match (mean over seeds, 95 % interval). Outlined points and the dashed line are the Pareto front: no other model is both faster and more accurate.")


def bin_centres(lengths: pd.Series, bins: int = 8) -> pd.Series:
    """Equal-width bins over a task's lengths (about ``bins`` of them), each length -> its bin's centre,
    so each point of the length plot rests on enough examples to be more than noise."""
    lo, hi = int(lengths.min()), int(lengths.max())
    width = max(1, -(-(hi - lo + 1) // bins))  # ceil
    return lo + (lengths - lo) // width * width + (width - 1) / 2


def fig_accuracy_by_length(runs: pd.DataFrame, pal: dict) -> Figure | None:
    rows = []
    for r in runs[runs["status"] == "ok"].itertuples():
        for L, (c, n) in (r.test_by_length or {}).items():
            rows.append({"task": r.task, "size": r.size, "model": r.model, "seed": r.seed, "length": int(L), "correct": c, "n": n})
    if not rows:
        return None
    d = pd.DataFrame(rows)
    d["length"] = d.groupby("task")["length"].transform(bin_centres)
    d = d.groupby(["task", "size", "model", "length"], as_index=False)[["correct", "n"]].sum()
    d = d[d["n"] >= 10]
    if d.empty:  # every bin under 10 examples (a small test split): no plot rather than an empty figure
        return None
    d["exact_pct"] = d["correct"] / d["n"] * 100
    labels = list(dict.fromkeys(d["task"] + " · " + d["size"]))
    fig, axes = plt.subplots(1, len(labels), figsize=(5.2 * len(labels), 3.8), squeeze=False)
    for ax, lab in zip(axes[0], labels):
        dd = d[(d["task"] + " · " + d["size"]) == lab]
        sns.lineplot(data=dd, x="length", y="exact_pct", hue="model", palette=pal, hue_order=[m for m in pal if m in set(dd["model"])], marker="o", ax=ax, legend=False)
        ax.set(xlabel="source length (characters)", ylabel="test exact match %", title=lab, ylim=(-2, 102))
    handles = [plt.Line2D([], [], color=c, marker="o", label=m) for m, c in pal.items() if m in set(d["model"])]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False, title="model")
    fig.tight_layout()
    return Figure("accuracy_by_length", "Accuracy by source length", _png(fig),
                  "Test exact match by source length (lengths binned, bins with at least 10 test examples). A fixed-length vector (plain seq2seq) loses accuracy as sources grow (book §8.1).")


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
"""


def build(store: Store, sessions: list[str], reference: str | None = None, tasks: list[str] | None = None) -> dict:
    """``reference``: the model speed ratios are relative to (default: the one the registry marks, as stored)."""
    runs = runs_frame(store, sessions)
    if tasks:
        runs = runs[runs["task"].isin(tasks)]
    if runs.empty:
        raise UserError(f"session {', '.join(sessions)} has no runs to report")
    if reference is None:
        reference = default_reference(runs)
    elif reference not in set(runs["model"]):
        raise UserError(f"--reference {reference}: no such model in these sessions (models: {', '.join(model_order(runs))})")
    table = summary_table(runs, reference)
    ep = epochs_frame(store, sessions)
    if tasks and not ep.empty:
        ep = ep[ep["task"].isin(tasks)]
    pal = palette(model_order(runs))
    figs = [f for f in (fig_learning_curves(ep, pal), fig_speed_accuracy(table, pal) if not table.empty else None,
                        fig_accuracy_by_length(runs, pal)) if f is not None]
    figs += fig_heatmaps(store, sessions, pal, tasks=tasks)
    env, warnings = environment(store, sessions)
    ok_keys = set(runs.loc[runs["status"] == "ok", "key"])
    failures = runs[(runs["status"] != "ok") & ~runs["key"].isin(ok_keys)][["task", "model", "size", "seed", "error"]]
    return {"runs": runs, "table": table, "figures": figs, "env": env, "warnings": warnings, "failures": failures, "reference": reference,
            "overlap": overlap_notes(runs)}


def write(store: Store, sessions: list[str], out: str, reference: str | None = None, tasks: list[str] | None = None) -> dict[str, str]:
    r = build(store, sessions, reference, tasks)
    outputs: dict[str, bytes | str] = {}  # written together at the end, all or none (a full disk leaves nothing)
    title = f"s2sbench report — {', '.join(sessions)}"
    ref_note = f"Speed ratios in brackets are relative to <b>{html.escape(reference)}</b> (below 1 is faster for times, above 1 for throughput)." if reference else ""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for w in r["warnings"]:
        parts.append(f"<p class='warn'>⚠ {html.escape(w)}</p>")
    parts.append("<h2>Results</h2>")
    parts.append("<p class='note'>Medians over seeds for speed; mean ± 95 % interval over seeds for quality. "
                 f"Bold green: best of its task and size. {ref_note}</p>")
    if r["table"].empty:
        parts.append("<p>No run finished.</p>")
    else:
        parts.append("<h3>Quality</h3>" + html_table(r["table"], QUALITY_COLS))
        parts += [f"<p class='warn'>Test overlap — {html.escape(n)}</p>" for n in r["overlap"]]
        parts.append("<h3>Speed and cost</h3>" + html_table(r["table"], SPEED_COLS))
    if not r["failures"].empty:
        parts.append("<h2>Failed runs</h2>" + r["failures"].to_html(index=False, escape=True))
    md = [f"# {title}", ""] + [f"> ⚠ {w}" for w in r["warnings"]] + [""]
    if r["table"].empty:
        md += ["No run finished.", ""]
    else:
        md += ["## Quality", "", markdown_table(r["table"], QUALITY_COLS), ""] + [f"> Test overlap — {n}" for n in r["overlap"]]
        md += [""] if r["overlap"] else []
        md += ["## Speed and cost", "", markdown_table(r["table"], SPEED_COLS), ""]
    for f in r["figures"]:
        outputs[f.name + ".png"] = f.png
        b64 = base64.b64encode(f.png).decode()
        parts.append(f"<h2>{html.escape(f.title)}</h2><figure><img alt='{html.escape(f.title)}' src='data:image/png;base64,{b64}'>"
                     f"<figcaption>{html.escape(f.caption)}</figcaption></figure>")
        md += [f"## {f.title}", "", f"![{f.title}]({f.name}.png)", "", f.caption, ""]
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
