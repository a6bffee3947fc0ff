"""The report's figures (seaborn), each drawn from frames into a PNG with its title and caption (``document.Figure``)."""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import matplotlib.transforms  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from bench.analysis import tuning  # noqa: E402
from bench.analysis.report.document import Figure  # noqa: E402
from bench.analysis.report.palette import model_palette  # noqa: E402
from bench.analysis.report.sweeps import Sweep  # noqa: E402
from bench.analysis.stats import pareto_front  # noqa: E402


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
        for col, (x, xl) in enumerate((("epoch", "epoch"), ("wall_cum_s", "wall time incl. evaluation (s, log)"))):
            ax = axes[row][col]
            sns.lineplot(data=d, x=x, y="valid_exact_pct", hue="model", palette=colours,
                         hue_order=[m for m in colours if m in set(d["model"])],
                         style=style, style_order=[v for v in dash_map if v in set(d["configuration"])] if style else None,
                         dashes={v: dash_map[v] for v in set(d["configuration"])} if style else True,
                         errorbar=("pi", 100) if several else None, estimator="mean", marker="o", ax=ax, legend=(col == 1))
            ax.set(xlabel=xl, ylabel="validation exact match %", ylim=(-2, 102), title=lab)
            if x == "wall_cum_s" and (d[x] > 0).all():  # log: one slow model must not squeeze the others into a sliver
                ax.set_xscale("log")
                plain_log_ticks(ax.xaxis)
            if x == "epoch":
                ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
                lo, hi = d["epoch"].min(), d["epoch"].max()
                ax.set_xlim(lo - max(0.5, (hi - lo) * 0.05), hi + max(0.5, (hi - lo) * 0.05))  # one epoch: not a 0.1-wide axis
            if col == 1 and ax.get_legend() is not None:
                sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), frameon=False, title=None if style else "model")
    fig.tight_layout()
    return Figure("learning_curves", "Learning curves", _png(fig),
                  "Validation exact match after each epoch, against epochs and against wall time (training + evaluation, on a log axis, "
                  "so that a slow model does not squeeze the others). One line per "
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


def length_frame(runs: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The points of the length plot: test examples (``correct``, ``n``) per configuration's line and source-length bin.

    A small test set (a few hundred lines of a book-format file) gets fewer, wider bins -- about one per
    ``MIN_PER_BIN`` examples of its smallest run. Bins still under that many examples are kept here: the figure
    leaves them out and says how many (``length_note`` says when nothing is left). Empty when no run scored by length."""
    rows = []
    for r in runs[runs["status"] == "ok"].itertuples():
        for L, (c, n) in (r.test_by_length or {}).items():
            rows.append({"task": r.task, "size": r.size, "model": r.model, "cfg": f"{r.config_hash}@{r.device}", "seed": r.seed,
                         "length": int(L), "correct": c, "n": n})
    if not rows or table.empty:
        return pd.DataFrame()
    d = _lines(pd.DataFrame(rows), table)
    if d.empty:
        return d
    per_run = d.groupby(["task", "cfg", "seed"])["n"].sum().groupby("task").min()
    binned = pd.Series(0.0, index=d.index)
    for task, g in d.groupby("task"):
        bins = int(max(1, min(8, per_run[task] // MIN_PER_BIN)))
        binned[g.index] = bin_centres(g["length"], bins)
    d["length"] = binned
    return d.groupby(["task", "size", "cfg", "model_label", "variant", "length"], as_index=False)[["correct", "n"]].sum()


def length_note(d: pd.DataFrame) -> str | None:
    """Why the length plot is left out when every bin of ``length_frame`` holds too few test examples; else None."""
    if d.empty or (d["n"] >= MIN_PER_BIN).any():
        return None
    return (f"Accuracy by source length: left out, no length bin holds {MIN_PER_BIN} test examples "
            f"(the largest holds {int(d['n'].max())}); the test set is too small to say more than the overall exact match.")


def fig_accuracy_by_length(d: pd.DataFrame, table: pd.DataFrame, pal: dict) -> Figure | None:
    """Test accuracy by source length, one line per configuration. ``d``: ``length_frame``; a bin under
    ``MIN_PER_BIN`` test examples is left out, and the caption says how many."""
    if d.empty:
        return None
    dropped = d[d["n"] < MIN_PER_BIN]
    d = d[d["n"] >= MIN_PER_BIN].copy()
    if d.empty:
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
                  f"Test exact match by source length (lengths binned, bins with at least {MIN_PER_BIN} test examples).{few} "
                  f"From the shortest sources to the longest — {' '.join(length_trends(d, list(colours)))} The book (§8.1) expects a "
                  "fixed-length vector (plain seq2seq) to lose accuracy as sources grow; the lines say whether it does here.")


FLAT_PT = 5.0  # a line whose ends differ by less (percentage points) is read as flat: bins of tens of examples move that much


def length_trends(d: pd.DataFrame, order: list[str] | None = None) -> list[str]:
    """What each line of the length plot does, read from its points (``label``, ``model_label``, ``variant``, ``length``,
    ``exact_pct``; ``order``: the models' order): one sentence per panel, e.g.
    ``date · small: seq2seq rises from 5 % to 27 %; attention stays
    within 5 points (90–93 %).`` -- the caption says what the data show, not what the book leads one to expect."""
    out = []
    for lab, panel in d.groupby("label", sort=False):
        parts = []
        rank = {m: i for i, m in enumerate(order or [])}
        lines = sorted(panel.groupby(["model_label", "variant"], sort=False), key=lambda kv: rank.get(kv[0][0], len(rank)))
        for (model, variant), line in lines:
            pts = line.sort_values("length")["exact_pct"].tolist()
            if len(pts) < 2:
                continue
            a, b = pts[0], pts[-1]
            name = f"{model} [{variant}]" if variant else str(model)
            if b - a >= FLAT_PT:
                parts.append(f"{name} rises from {a:.0f} % to {b:.0f} %")
            elif a - b >= FLAT_PT:
                parts.append(f"{name} falls from {a:.0f} % to {b:.0f} %")
            elif max(pts) - min(pts) < FLAT_PT:
                parts.append(f"{name} stays within {FLAT_PT:.0f} points ({min(pts):.0f}–{max(pts):.0f} %)")
            else:
                parts.append(f"{name} ends near where it starts ({a:.0f} % and {b:.0f} %; {min(pts):.0f}–{max(pts):.0f} % between)")
        if parts:
            out.append(f"{lab}: {'; '.join(parts)}.")
    return out


def fig_length_curves(points: pd.DataFrame, pal: dict) -> Figure | None:
    """Test exact match against the fixed source length, one line per model (and options), one panel per scope
    (``fixed_lengths.length_curves``): Jelassi et al. 2024's copying figure for every model of the session."""
    if points.empty:
        return None
    scopes = list(dict.fromkeys(points["scope"]))
    colours = model_palette(points, pal)
    fig, axes = plt.subplots(1, len(scopes), figsize=(5.6 * len(scopes), 4), squeeze=False)
    for ax, scope in zip(axes[0], scopes):
        d = points[points["scope"] == scope]
        for lab in [m for m in colours if m in set(d["model_label"])]:
            p = d[d["model_label"] == lab].sort_values("length")
            ax.plot(p["length"], p["exact"] * 100, marker="o", color=colours[lab], label=lab, ls="-" if lab in set(d["model"]) else "--")
        for y, what in ((90, "90 %"), (50, "50 %")):
            ax.axhline(y, color="grey", lw=0.8, ls=":", zorder=0)
            ax.annotate(what, (1.0, y), xycoords=("axes fraction", "data"), xytext=(2, 0), textcoords="offset points", va="center",
                        fontsize=7, color="grey")
        lengths = sorted(set(d["length"]))
        ax.set(xscale="log", xlabel="source length (characters, log)", ylabel="test exact match %", ylim=(-2, 102),
               title=str(d["scope_title"].iloc[0]))
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(lengths))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([str(L) for L in lengths]))
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlim(min(lengths) / 1.25, max(lengths) * 1.25)
    handles = {h.get_label(): h for ax in axes[0] for h in ax.get_legend_handles_labels()[0]}
    fig.legend(handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False, title="model")
    fig.tight_layout()
    return Figure("exact_by_fixed_length", "Exact match against length", _png(fig),
                  "Test exact match of runs trained and tested at one fixed source length each (the same training budget at every "
                  "length), one line per model; dashed: a model with non-default options (a recurrence's cross form). Dotted: 50 % "
                  "and 90 %. Jelassi et al. 2024 draw this for copying: attention keeps every position, a fixed-size state runs out.")


# The rows of a sweep's figure: (points column, axis label, divisor). The decoding rows are drawn where recorded.
SWEEP_ROWS = (("tokens_per_s", "training tokens/s (log)", 1), ("peak_bytes", "peak memory MiB (log)", 2**20))
DECODE_ROWS = (("decode_s_per_token", "decode ms/token, large batch (log)", 1e-3),
               ("state_bytes", "decode state KiB, large batch (log)", 2**10))


def fig_sweep(task: str, sweeps: list[Sweep], pal: dict) -> Figure | None:
    """Long Range Arena's picture of a length sweep: training tokens/s (top) and peak memory against source
    length, log-log, one line per model, one column per size (and configuration); where the runs recorded them,
    the decoding below: time per token and the state decoding carries between steps (a recurrent state stays
    flat in the length, a KV cache grows with it). A failed point is an ✕ on the lower edge at its length,
    labelled with why."""
    sws = [s for s in sweeps if s.task == task]
    if not sws:
        return None
    cols = list(dict.fromkeys((s.size, s.variant) for s in sws))
    rows = SWEEP_ROWS + tuple(r for r in DECODE_ROWS if any(r[0] in s.points and s.points[r[0]].notna().any() for s in sws))
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(4.6 * len(cols) + 1.5, 3.6 * len(rows)), squeeze=False)
    handles: dict[str, Any] = {}
    for j, (size, variant) in enumerate(cols):
        for sw in (s for s in sws if (s.size, s.variant) == (size, variant)):
            for i, (y, ylab, unit) in enumerate(rows):
                ax = axes[i][j]
                for m in sw.models:
                    p = sw.points[sw.points["model_label"] == m].sort_values("length")
                    ok = p[p["status"] == "ok"].dropna(subset=[y])
                    colour = pal.get(sw.colour_of[m], (0.4, 0.4, 0.4))
                    vals = ok[y] / unit
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
    decode = (" Below: greedy decoding of L + 1 tokens at the large batch, its time per token and the bytes it carries from step "
              "to step (a recurrent state, or a KV cache and the encoder memory)." if len(rows) > len(SWEEP_ROWS) else "")
    return Figure(f"sweep_{task}", f"Length sweep on {task}: speed and memory", _png(fig),
                  "Training tokens/s (top) and peak memory against source length, both axes logarithmic, one line per model, "
                  "one column per size and configuration. Fixed-shape timed steps after warm-up (throughput runs). An ✕ on the lower "
                  f"edge is a point that failed (OOM: out of memory). On a CPU the memory is the process's peak RSS.{decode}")


def right_answer(s: pd.Series) -> bool:
    """Whether a sample's decoded tokens are one of its right answers: token for token against each reference where the
    run stored them (phones, words: tokens are not characters), else its characters against the target."""
    tokens = [p for p in s["pred"] if not p.startswith("<")]
    refs = s.get("references")
    if isinstance(refs, list) and refs:
        return any(tokens == list(r) for r in refs)
    return "".join(tokens) == s["target"]


def fig_heatmaps(samples: pd.DataFrame, pal: dict, per_task: int = 2) -> list[Figure]:
    """Attention heatmaps of the same test inputs across models (book §8.3). ``samples``: the stored test examples
    (``bench.results.tidy.samples_frame``); per task, each model's first run (the first seed) so the same inputs line up."""
    figs = []
    for task, runs in samples.groupby("task", sort=False):
        first = runs.drop_duplicates("model")
        seen = {m: runs[runs["run"] == r] for m, r in zip(first["model"], first["run"])}  # model -> its first run's examples
        order = [m for m in pal if m in seen] + [m for m in seen if m not in pal]
        n_inputs = min(per_task, min(len(seen[m]) for m in order))
        if n_inputs == 0:
            continue
        fig, axes = plt.subplots(n_inputs, len(order), figsize=(3.3 * len(order), 3.3 * n_inputs), squeeze=False)
        for col, m in enumerate(order):
            for row in range(n_inputs):
                s = seen[m].iloc[row]
                att = np.array(s["attention"], dtype=float)
                ax = axes[row][col]
                src = ["␣" if ch == " " else ch for ch in s["src"]]
                pred = ["␣" if ch == " " else ch for ch in s["pred"]][: att.shape[0]]
                pred = [p if p != "<eos>" else "⏎" for p in pred]
                sns.heatmap(att, ax=ax, cmap="Greys", vmin=0, vmax=1, cbar=False, square=False, xticklabels=src, yticklabels=pred,
                            linewidths=0)
                ax.tick_params(axis="both", labelsize=7, length=0)
                ax.set_xticklabels(ax.get_xticklabels(), rotation=0)
                ax.set_yticklabels(ax.get_yticklabels(), rotation=0)
                ok = right_answer(s)
                ax.set_title(f"{m}{'' if ok else ' ✗'}", fontsize=10, color=pal.get(m, "black"))
                if col == 0:
                    ax.set_ylabel("output", fontsize=8)
                ax.set_xlabel("source" + (" (reversed, as the model reads it)" if s["reversed_source"] else ""), fontsize=8)
        fig.tight_layout()
        figs.append(Figure(f"attention_{task}", f"Attention on {task}", _png(fig),
                           f"Where each output token looks in the source, for the same {task} test inputs across models (darker = more "
                           "weight; ✗ = wrong answer)."))
    return figs


def fig_tuning_curves(studies: list[tuning.StudyResult], pal: dict, name: str, caption: str) -> Figure | None:
    """Expected best validation score after n trials, one line per model and a panel per task and size, each with
    its confidence band (``bench.analysis.tuning``; none without opda)."""
    studies = [s for s in studies if s.trials]
    if not studies:
        return None
    panels = list(dict.fromkeys((s.task, s.size) for s in studies))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    for ax, (task, size) in zip(axes[0], panels):
        here = [s for s in studies if (s.task, s.size) == (task, size)]
        budget = min(len(s.trials) for s in here)
        ns = np.arange(1, budget + 1)
        for s in here:
            colour = pal.get(s.model, (0.4, 0.4, 0.4))
            ax.plot(ns, [100 * v for v in tuning.curve(s.scores[:budget])], marker="o", ms=3, color=colour, label=s.model)
            band = tuning.bands(s.scores[:budget])
            if band is not None:  # light, with thin edges: the bands of a few trials are wide and overlap
                lo, hi = [100 * v for v in band[0]], [100 * v for v in band[1]]
                ax.fill_between(ns, lo, hi, color=colour, alpha=0.06, lw=0)
                for edge in (lo, hi):
                    ax.plot(ns, edge, color=colour, lw=0.7, ls=(0, (3, 2)), alpha=0.7)
        ax.set(xlabel="trials n", ylabel="expected best validation exact match %", title=f"{task} · {size}", ylim=(-2, 102),
               xlim=(0.8, budget + 0.2))
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    handles = {h.get_label(): h for ax in axes[0] for h in ax.get_legend_handles_labels()[0]}
    order = sorted(handles, key=lambda m: list(pal).index(m) if m in pal else len(pal))
    fig.legend([handles[m] for m in order], order, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False, title="model")
    fig.tight_layout()
    return Figure(name, "Tuning curves", _png(fig), caption)
