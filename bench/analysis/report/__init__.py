"""Store -> pandas -> tables + seaborn figures -> a self-contained HTML page, Markdown and CSV.

A pure function of the store: the same sessions always give the same report. Colours are fixed per model
across every figure (the story's order, recorded with each run from the registry), so a model is the same colour in the curve, the
speed-accuracy plane and the length plot.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re

from bench.analysis.report.environment import ENV_KEYS, environment
from bench.analysis.report.figures import (
    DASHES,
    MARKERS,
    MIN_PER_BIN,
    Figure,
    _facet,
    _lines,
    _png,
    bin_centres,
    curve_frame,
    dashes,
    fig_accuracy_by_length,
    fig_heatmaps,
    fig_learning_curves,
    fig_speed_accuracy,
    fig_sweep,
    length_frame,
    length_note,
    plain_log_ticks,
)
from bench.analysis.report.html_writer import CSS, html_grid, html_table
from bench.analysis.report.markdown_writer import markdown_frame, markdown_grid, markdown_table
from bench.analysis.report.palette import default_reference, model_order, model_palette, palette
from bench.analysis.report.sweeps import (
    Sweep,
    _abs,
    _crossing,
    _points,
    _scope_title,
    crossover,
    recurrent_models,
    sweep_reference,
    sweep_rows,
    throughput_split,
)
from bench.analysis.report.tables import (
    QUALITY_COLS,
    RATIO_COLS,
    SPEED_COLS,
    THROUGHPUT_COLS,
    _order_rows,
    annotate,
    configuration_rows,
    failure_kind,
    format_cell,
    overlap_notes,
    quality_runs,
    seeds_text,
    summary_table,
    table_rows,
    throughput_rows,
    throughput_table,
    variants,
    winners,
)
from bench.errors import UserError
from bench.results.files import write_files
from bench.results.store import Store
from bench.results.tidy import epochs_frame, runs_frame, samples_frame

__all__ = ["CSS", "DASHES", "ENV_KEYS", "MARKERS", "MIN_PER_BIN", "QUALITY_COLS", "RATIO_COLS", "SPEED_COLS", "THROUGHPUT_COLS", "Figure", "Sweep",
           "_abs", "_crossing", "_facet", "_lines", "_order_rows", "_png", "_points", "_scope_title", "annotate", "bin_centres", "build",
           "configuration_rows", "crossover", "curve_frame", "dashes", "default_reference", "environment", "epochs_frame", "failure_kind",
           "fig_accuracy_by_length", "fig_heatmaps", "fig_learning_curves", "fig_speed_accuracy", "fig_sweep", "format_cell", "length_frame", "length_note", "html_grid",
           "html_table", "markdown_frame", "markdown_grid", "markdown_table", "model_order", "model_palette", "overlap_notes", "palette",
           "plain_log_ticks", "quality_runs", "recurrent_models", "runs_frame", "seeds_text", "summary_table", "sweep_reference", "sweep_rows",
           "table_rows", "throughput_rows", "throughput_split", "throughput_table", "variants", "winners", "write"]


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
    table = summary_table(runs, reference)
    if not table.empty:
        table["variant"] = variants(table, ["task", "size"])
    ep = epochs_frame(store, sessions)
    if tasks and not ep.empty:
        ep = ep[ep["task"].isin(tasks)]
    pal = palette(model_order(runs))
    qruns = quality_runs(runs)
    lengths = length_frame(qruns, table)
    notes = [n for n in (length_note(lengths),) if n is not None]
    figs = [f for f in (fig_learning_curves(ep, table, pal), fig_speed_accuracy(table, pal) if not table.empty else None,
                        fig_accuracy_by_length(lengths, table, pal)) if f is not None]
    samples = samples_frame(store, sessions)
    if tasks:
        samples = samples[samples["task"].isin(tasks)]
    figs += fig_heatmaps(samples, pal)
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
    info = {s["id"]: s for s in store.sessions()}
    env, warnings = environment([info[sid] for sid in sessions])
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
