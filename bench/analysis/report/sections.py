"""The report's sections, in order: each a small function of the findings, ``SECTIONS`` the order they appear in.

To add a section, write ``def my_section(f: Findings) -> list[Section]`` (return ``[]`` when it has nothing to
show) and put it in ``SECTIONS`` where it belongs; if it needs data the findings lack, add a field to
``Findings`` and compute it in ``analyse`` from the loaded frames. The HTML and Markdown writers show it
with no change of theirs.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.analysis import tuning
from bench.analysis.conclusions import RULE, ranking_text
from bench.analysis.report.document import Bullets, Cell, Figure, Heading, Report, Section, Strong, Table, Text
from bench.analysis.report.figures import (
    fig_accuracy_by_length,
    fig_heatmaps,
    fig_learning_curves,
    fig_length_curves,
    fig_speed_accuracy,
    fig_sweep,
    fig_tuning_curves,
)
from bench.analysis.report.findings import Findings, analyse, load
from bench.analysis.report.fixed_lengths import ABOVE, BELOW
from bench.analysis.report.sweeps import SCAN_MARK, SCAN_NOTE, sweep_rows
from bench.analysis.report.tables import (
    BEST_RULE,
    PACKAGE_NOTE,
    QUALITY_COLS,
    SPEED_COLS,
    frame_table,
    g2p_rows,
    published_rows,
    table_rows,
    throughput_rows,
)
from bench.results.store import Store

DISTINCT = ("Runs that differ in anything but the seed (device, precision, launch mode, options, settings, data) are separate rows, "
            "labelled in brackets by what differs; seeds counts distinct seeds.")


def _figure(fig: Figure | None) -> list[Section]:
    return [Heading(fig.title, 2), fig] if fig is not None else []


def title(f: Findings) -> list[Section]:
    return [Heading(f.title, 1)]


def warnings(f: Findings) -> list[Section]:
    """Where the sessions ran on different machines or versions: first, since it qualifies every speed below."""
    return [Text.of(f"⚠ {w}", "warn") for w in f.warnings]


def conclusions(f: Findings) -> list[Section]:
    """The headline per task, first: what the figures let one conclude, the rule that decides it, and what limits it."""
    if not f.headlines:
        return []
    items = tuple(f"{h.task} ({h.scope}) — most accurate: {ranking_text(h.accurate)}; fastest (training): {ranking_text(h.fastest)}"
                  for h in f.headlines)
    return [Heading("What can be concluded", 2), Bullets(items), Text.of(RULE, "note"), *[Text.of(f"⚠ {c}", "warn") for c in f.caveats]]


def tuned(f: Findings) -> list[Section]:
    """Each tuning session (``s2sbench tune``): its curves with their bands, the ranking at three budgets and by recipe,
    and each model's tuned recipe (``bench.analysis.tuning``). Its trials appear nowhere else; its finals are the runs below."""
    out: list[Section] = []
    for i, t in enumerate(f.tuning):
        st = t.settings
        spaces = []  # per task and size: the widest space of its models (a model without dropout searches the rest)
        for key in dict.fromkeys((s.task, s.size) for s in t.studies):
            widest = max((s.space for s in t.studies if (s.task, s.size) == key), key=len, default={})
            spaces.append(f"{key[0]} · {key[1]}: {tuning.space_text(widest)}")
        budget = min((len(s.trials) for s in t.studies if s.trials), default=0)
        how = (f"Every model got the same budget, {st.get('trials')} trials ({st.get('sampler')} search, seed {st.get('seed')}) over the "
               "search space below, and was selected on validation only (each trial's final validation exact match; a failed trial "
               f"scores 0). Its best recipe and the block's own were then run on {st.get('final_seeds')} fresh seeds and scored on test: "
               "the results below are those finals, the trials are summarised here.")
        caption = (f"Expected best validation exact match after n trials (Dodge et al. 2019: the maximum of n draws from the trials), "
                   f"with {tuning.CONFIDENCE:.0%} confidence bands (opda; Lourie, Cho & He 2024). Budget: {budget} trials per model. "
                   f"Search space — {'; '.join(spaces) or 'not recorded'} (dropout only for the models that have one).")
        out += [Heading("Tuning" + (f" — {t.session}" if len(f.tuning) > 1 else ""), 2), Text.of(how, "note")]
        if t.failed_trials:
            out.append(Text.of(f"{t.failed_trials} trial(s) failed (diverged, out of memory, ...): each scores 0 in the curves.", "warn"))
        fig = fig_tuning_curves(t.studies, f.palette, "tuning_curves" + (f"_{i + 1}" if len(f.tuning) > 1 else ""), caption)
        if fig is not None:
            out += [Heading("Tuning curves", 3), fig]
        for r in tuning.rankings(t.studies):
            headers, rows = tuning.ranking_rows(r)
            out += [Heading(f"Ranking by budget and by recipe — {r.task} · {r.size}", 3),
                    Table(tuple(headers), tuple(tuple(Cell(c, c.startswith("#1 ")) for c in row) for row in rows)),
                    Text.of(tuning.verdict(r))]
        headers, rows = tuning.summary_rows(t.studies)
        out += [Heading("Tuned recipes", 3), Table(tuple(headers), tuple(tuple(Cell(c) for c in row) for row in rows))]
    return out


def results(f: Findings) -> list[Section]:
    """The time-to-quality runs: quality (with each task's test overlap beside it), then speed and cost."""
    if f.table.empty:
        return []
    ref: tuple[str | Strong, ...] = ()
    if f.reference:
        ref = ("Speed ratios in brackets are relative to ", Strong(f.reference),
               " in the same configuration (below 1 is faster for times, above 1 for throughput).")
    how = Text(("Time-to-quality runs. Medians over seeds for speed; mean ± 95 % interval over seeds for quality. "
                f"{DISTINCT} {BEST_RULE}" + (" " if ref else ""), *ref), "note")
    units = [Text.of(f.units, "note")] if f.units else []
    return [Heading("Results", 2), how,
            Heading("Quality", 3), *units, table_rows(f.table, QUALITY_COLS), *[Text.of(f"Test overlap — {n}", "warn") for n in f.overlap],
            *[Text.of(f"Unknown tokens — {n}", "warn") for n in f.unk],
            Heading("Speed and cost", 3), table_rows(f.table, SPEED_COLS)]


def published_g2p(f: Findings) -> list[Section]:
    """CMUdict grapheme-to-phoneme: the papers' table (bench.results.g2pfigures) with s2sbench's rows beside it."""
    ours = g2p_rows(f.table)
    if ours.empty:
        return []
    return [Heading("CMUdict G2P beside the published table", 2),
            Text.of("PER: phoneme edits over the length of each word's closest reference pronunciation, at corpus level; WER: the share "
                    "of test words whose closest pronunciation is not matched exactly (the papers' scoring, Phonetisaurus's "
                    "calculateER.py). Published rows are single models on the standard split (g014b2b: CMUdict 0.7a, 106,837 "
                    "training and 12,000 test words, no stress), as later papers quote them; s2sbench's rows are mean ± 95 % "
                    "interval over seeds.", "note"),
            *([Text.of(PACKAGE_NOTE, "warn")] if (ours["edition"] == "package").any() else []),
            published_rows(ours)]


def figure_notes(f: Findings) -> list[Section]:
    return [Text.of(n, "warn") for n in f.notes]


def length_sweeps(f: Findings) -> list[Section]:
    """Long Range Arena's tables, one per sweep; the crossover lengths; the sweep figure of each task."""
    if not f.sweeps:
        return []
    sref = f.sweep_reference
    how: tuple[str | Strong, ...] = (
        ("Each cell: training steps/s and peak memory as ratios to ", Strong(sref), " at the same length (speed above 1× is faster, "
         f"memory below 1× is smaller; bold green: faster than {sref}); its own row holds its absolute figures. ")
        if sref else ("Each cell: training steps/s and peak memory. ",))
    how += ("OOM: the point ran out of memory; – : not run. Throughput runs: fixed-shape timed steps after warm-up, medians over seeds.",)
    out: list[Section] = [Heading("Length sweeps", 2), Text(how, "note"), *[Text.of(n, "warn") for n in f.sweep_notes]]
    for sw in f.sweeps:
        out += [Heading(sw.title, 3), sweep_rows(sw)]
    if f.crossovers:
        out += [Heading(f"From which length {sref} trains faster than each recurrent model", 3), Bullets(tuple(f.crossovers), "cross")]
        if any(SCAN_MARK in c for c in f.crossovers):
            out.append(Text.of(SCAN_NOTE, "note"))
    for task in dict.fromkeys(sw.task for sw in f.sweeps):
        out += _figure(fig_sweep(task, f.sweeps, f.palette))
    return out


def throughput(f: Findings) -> list[Section]:
    if f.throughput.empty:
        return []
    return [Heading("Throughput", 2),
            Text.of("Throughput runs outside a length sweep: fixed-shape timed steps after warm-up, no evaluation; medians over seeds.",
                    "note"),
            throughput_rows(f.throughput)]


def nothing_finished(f: Findings) -> list[Section]:
    return [Text.of("No run finished.")] if f.table.empty and not f.sweeps and f.throughput.empty else []


def configurations(f: Findings) -> list[Section]:
    if f.configurations.empty:
        return []
    return [Heading("Configurations", 2),
            Text.of("Where a task, model and size ran in more than one configuration (failed runs included): each one, and every field "
                    "on which it differs from the first.", "note"),
            frame_table(f.configurations, "conf")]


def failures(f: Findings) -> list[Section]:
    return [Heading("Failed runs", 2), frame_table(f.failures, "fail")] if not f.failures.empty else []


def learning_curves(f: Findings) -> list[Section]:
    return _figure(fig_learning_curves(f.epochs, f.table, f.palette))


def speed_accuracy(f: Findings) -> list[Section]:
    return _figure(fig_speed_accuracy(f.table, f.palette)) if not f.table.empty else []


def accuracy_by_length(f: Findings) -> list[Section]:
    return _figure(fig_accuracy_by_length(f.lengths, f.table, f.palette))


def exact_by_fixed_length(f: Findings) -> list[Section]:
    """Runs at fixed lengths (the copy-length suites): from which length each model stops getting the answer right."""
    if f.length_curves.empty:
        return []
    sref = f.sweep_reference
    how = (f"Time-to-quality runs trained and tested at one fixed source length each. Per model, the length from which its test "
           f"exact match falls below {BELOW} and stays there" + (f", and whether {sref} holds above {ABOVE} there" if sref else "")
           + " (Jelassi et al. 2024: a fixed-size state stops copying once the string outgrows it).")
    fig = fig_length_curves(f.length_curves, f.palette)
    return [Heading("Exact match against length", 2), Text.of(how, "note"), Bullets(tuple(f.length_verdicts), "cross"),
            *([fig] if fig else [])]


def attention(f: Findings) -> list[Section]:
    return [s for fig in fig_heatmaps(f.samples, f.palette) for s in _figure(fig)]


def environment(f: Findings) -> list[Section]:
    return [Heading("Environment", 2), frame_table(f.env, "env")]


# The report, top to bottom.
SECTIONS: tuple[Callable[[Findings], list[Section]], ...] = (
    title, warnings, conclusions, tuned, results, published_g2p, figure_notes, length_sweeps, throughput, nothing_finished, configurations,
    failures, learning_curves, speed_accuracy, exact_by_fixed_length, accuracy_by_length, attention, environment,
)


def document(f: Findings) -> Report:
    return Report(f.title, tuple(s for section in SECTIONS for s in section(f)))


def build(store: Store, sessions: list[str], reference: str | None = None, tasks: list[str] | None = None) -> Report:
    """The report of ``sessions`` (only ``tasks``' runs, when given); ``reference``: as ``analyse``."""
    return document(analyse(load(store, sessions, tasks), reference))
