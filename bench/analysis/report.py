"""Store -> pandas -> tables + seaborn figures -> a self-contained HTML page, Markdown and CSV.

A pure function of the store: the same sessions always give the same report. Colours are fixed per model
across every figure (the registry's order), so a model is the same colour in the curve, the
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

from bench.analysis.stats import pareto_front, summarize  # noqa: E402
from bench.errors import UserError  # noqa: E402
from bench.results.store import Store  # noqa: E402
from bench.results.tidy import epochs_frame, runs_frame  # noqa: E402

# Column -> (header, better: "high" | "low" | None, format). Order is the table's order.
COLUMNS: dict[str, tuple[str, str | None, str]] = {
    "params": ("params", None, "{:,.0f}"),
    "flops_per_token": ("FLOPs/token", None, "{:,.3g}"),
    "train_tokens_per_s": ("train tok/s", "high", "{:,.0f}"),
    "s_per_epoch": ("s/epoch", "low", "{:.2f}"),
    "time_to_target_s": ("time to target s", "low", "{:.1f}"),
    "decode_latency_b1_ms": ("decode b=1 ms", "low", "{:.1f}"),
    "decode_latency_batch_ms": ("decode batch ms", "low", "{:.1f}"),
    "peak_memory_mib": ("peak MiB", "low", "{:,.0f}"),
    "exact_match": ("exact match %", "high", "{:.1f}"),
    "token_accuracy": ("token acc %", "high", "{:.1f}"),
    "alignment": ("alignment %", "high", "{:.1f}"),
}
_PCT = {"exact_match", "token_accuracy", "alignment"}


def model_order(names: list[str]) -> list[str]:
    try:
        import models

        known = models.names()
    except Exception:  # noqa: BLE001 -- reports must not depend on the model code working
        known = []
    return [m for m in known if m in names] + sorted(m for m in names if m not in known)


def palette(names: list[str]) -> dict[str, tuple]:
    order = model_order(names)
    colours = sns.color_palette("tab10", max(len(order), 1))
    return {m: colours[i % len(colours)] for i, m in enumerate(order)}


def summary_table(runs: pd.DataFrame, reference: str | None = "attention") -> pd.DataFrame:
    """One row per task x model x size: medians of speed, mean and 95 % interval over seeds of quality.

    Quality columns ``<metric>`` hold the mean (in %), ``<metric>_ci`` the interval half-width (nan for a
    single seed), ``<metric>_n`` the number of seeds. Failed runs are counted, not averaged.
    """
    ok = runs[runs["status"] == "ok"].copy()
    ok["s_per_epoch"] = ok["epoch_seconds"].map(lambda xs: float(np.median(xs[1:] or xs)) if xs else math.nan)
    ok["decode_latency_b1_ms"] = ok["decode_latency_b1_s"].astype(float) * 1000
    ok["decode_latency_batch_ms"] = ok["decode_latency_batch_s"].astype(float) * 1000
    ok["peak_memory_mib"] = ok["peak_memory_bytes"].astype(float) / 2**20
    ok["exact_match"] = ok["test_exact_match"].astype(float) * 100
    ok["token_accuracy"] = ok["test_token_accuracy"].astype(float) * 100
    ok["alignment"] = ok["alignment"].astype(float) * 100
    rows = []
    keys = ["task", "model", "size"]
    for (task, model, size), g in ok.groupby(keys, sort=False):
        row: dict = {"task": task, "model": model, "size": size, "seeds": len(g)}
        for c in ("params", "flops_per_token", "train_tokens_per_s", "s_per_epoch", "decode_latency_b1_ms", "decode_latency_batch_ms", "peak_memory_mib"):
            v = pd.to_numeric(g[c], errors="coerce").dropna()
            row[c] = float(v.median()) if len(v) else math.nan
        ttt = pd.to_numeric(g["time_to_target_s"], errors="coerce")
        row["time_to_target_s"] = float(ttt.median()) if ttt.notna().all() and len(ttt) else math.nan  # every seed must reach it
        row["reached_target"] = f"{int(ttt.notna().sum())}/{len(g)}"
        for c in _PCT:
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
        for c in ("train_tokens_per_s", "s_per_epoch", "time_to_target_s", "decode_latency_batch_ms"):
            ref = table[table["model"] == reference].set_index(["task", "size"])[c]
            table[c + "_vs_ref"] = [r[c] / ref.get((r["task"], r["size"]), math.nan) if (r["task"], r["size"]) in ref.index else math.nan
                                    for _, r in table.iterrows()]
    return table


def winners(table: pd.DataFrame) -> dict[tuple[int, str], bool]:
    """(row index, column) -> True where the row is the best of its task x size group in that column."""
    out = {}
    for _, g in table.groupby(["task", "size"], sort=False):
        for c, (_, better, _) in COLUMNS.items():
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
    text = COLUMNS[c][2].format(v)
    if c in _PCT:
        hw = table.at[i, c + "_ci"]
        if not math.isnan(hw):
            text += f" ± {hw:.1f}"
    if c == "time_to_target_s" or (c + "_vs_ref") in table:
        r = table.at[i, c + "_vs_ref"] if (c + "_vs_ref") in table else math.nan
        if not (isinstance(r, float) and math.isnan(r)):
            text += f" ({r:.2f}×)"
    return text


QUALITY_COLS = ("exact_match", "token_accuracy", "alignment")
SPEED_COLS = ("params", "flops_per_token", "train_tokens_per_s", "s_per_epoch", "time_to_target_s", "decode_latency_b1_ms",
              "decode_latency_batch_ms", "peak_memory_mib")


def table_rows(table: pd.DataFrame, columns: tuple[str, ...]) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """Headers and cells (text, is-winner) of one of the report's two tables."""
    win = winners(table)
    cols = [c for c in columns if c in table and not table[c].isna().all()]
    quality = columns == QUALITY_COLS
    headers = ["task", "model", "size", "seeds"] + [COLUMNS[c][0] for c in cols] + (["target reached", "failed"] if quality else [])
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
    t = table.dropna(subset=["train_tokens_per_s", "exact_match"])
    if t.empty:
        return None
    labels = list(dict.fromkeys(t["task"] + " · " + t["size"]))
    fig, axes = plt.subplots(1, len(labels), figsize=(5.2 * len(labels), 4), squeeze=False)
    for ax, lab in zip(axes[0], labels):
        d = t[(t["task"] + " · " + t["size"]) == lab]
        front = pareto_front([(-r.train_tokens_per_s, r.exact_match) for r in d.itertuples()])
        for r, on in zip(d.itertuples(), front):
            ax.errorbar(r.train_tokens_per_s, r.exact_match, yerr=0 if math.isnan(r.exact_match_ci) else r.exact_match_ci,
                        fmt="o", ms=9 if on else 6, color=pal.get(r.model), mec="black" if on else "none", label=r.model, capsize=3)
        pts = sorted((r.train_tokens_per_s, r.exact_match) for r, on in zip(d.itertuples(), front) if on)
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
    warnings = []
    for k, what in (("device_name", "devices"), ("torch", "torch versions"), ("cuda", "CUDA versions"), ("threads", "thread counts")):
        if env[k].astype(str).nunique() > 1:
            warnings.append(f"The sessions compared ran on different {what} ({', '.join(map(str, env[k].unique()))}): speed differences mix machine and model.")
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


def build(store: Store, sessions: list[str], reference: str | None = "attention", tasks: list[str] | None = None) -> dict:
    runs = runs_frame(store, sessions)
    if tasks:
        runs = runs[runs["task"].isin(tasks)]
    if runs.empty:
        raise UserError(f"session {', '.join(sessions)} has no runs to report")
    table = summary_table(runs, reference)
    ep = epochs_frame(store, sessions)
    if tasks and not ep.empty:
        ep = ep[ep["task"].isin(tasks)]
    pal = palette(sorted(set(runs["model"])))
    figs = [f for f in (fig_learning_curves(ep, pal), fig_speed_accuracy(table, pal) if not table.empty else None,
                        fig_accuracy_by_length(runs, pal)) if f is not None]
    figs += fig_heatmaps(store, sessions, pal, tasks=tasks)
    env, warnings = environment(store, sessions)
    ok_keys = set(runs.loc[runs["status"] == "ok", "key"])
    failures = runs[(runs["status"] != "ok") & ~runs["key"].isin(ok_keys)][["task", "model", "size", "seed", "error"]]
    return {"runs": runs, "table": table, "figures": figs, "env": env, "warnings": warnings, "failures": failures, "reference": reference}


def write(store: Store, sessions: list[str], out: str, reference: str | None = "attention", tasks: list[str] | None = None) -> dict[str, str]:
    r = build(store, sessions, reference, tasks)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise UserError(f"{out}: cannot create the report folder ({e})") from None
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
        parts.append("<h3>Speed and cost</h3>" + html_table(r["table"], SPEED_COLS))
    if not r["failures"].empty:
        parts.append("<h2>Failed runs</h2>" + r["failures"].to_html(index=False, escape=True))
    md = [f"# {title}", ""] + [f"> ⚠ {w}" for w in r["warnings"]] + [""]
    if r["table"].empty:
        md += ["No run finished.", ""]
    else:
        md += ["## Quality", "", markdown_table(r["table"], QUALITY_COLS), "", "## Speed and cost", "", markdown_table(r["table"], SPEED_COLS), ""]
    for f in r["figures"]:
        with open(os.path.join(out, f.name + ".png"), "wb") as fh:
            fh.write(f.png)
        b64 = base64.b64encode(f.png).decode()
        parts.append(f"<h2>{html.escape(f.title)}</h2><figure><img alt='{html.escape(f.title)}' src='data:image/png;base64,{b64}'>"
                     f"<figcaption>{html.escape(f.caption)}</figcaption></figure>")
        md += [f"## {f.title}", "", f"![{f.title}]({f.name}.png)", "", f.caption, ""]
    parts.append("<h2>Environment</h2>" + r["env"].to_html(index=False, escape=True, na_rep="–", classes="env", border=0))
    md += ["## Environment", "", markdown_frame(r["env"])]
    parts.append("</body></html>")
    paths = {"html": os.path.join(out, "index.html"), "md": os.path.join(out, "report.md"), "csv": os.path.join(out, "runs.csv")}
    with open(paths["html"], "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    with open(paths["md"], "w", encoding="utf-8") as fh:
        fh.write("\n".join(md) + "\n")
    runs = r["runs"].assign(epoch_seconds=r["runs"]["epoch_seconds"].map(json.dumps), test_by_length=r["runs"]["test_by_length"].map(json.dumps))
    runs.to_csv(paths["csv"], index=False)
    return paths



def markdown_frame(df: pd.DataFrame) -> str:
    cells = df.astype(object).where(df.notna(), "–").astype(str)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.values.tolist()]
    return "\n".join(lines)
