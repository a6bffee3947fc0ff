"""What a report says, before it is laid out: the store read once into frames (``load``), and the tables,
sweeps and notes every section is built from (``analyse``).

``load`` is the only place the report reads the store; everything after it is a pure function of frames,
so the same sessions always give the same report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.analysis import conclusions, tuning
from bench.analysis.conclusions import Headline
from bench.analysis.report.environment import environment
from bench.analysis.report.figures import length_frame, length_note
from bench.analysis.report.fixed_lengths import length_curves, length_verdicts
from bench.analysis.report.palette import default_reference, model_order, palette
from bench.analysis.report.sweeps import Sweep, crossover, recurrent_models, scan_models, sweep_reference, throughput_split
from bench.analysis.report.tables import (
    annotate,
    configuration_frame,
    overlap_notes,
    quality_runs,
    summary_table,
    throughput_table,
    unit_note,
    unk_notes,
    variants,
)
from bench.errors import UserError
from bench.results.calibration import busy
from bench.results.store import Store
from bench.results.tidy import epochs_frame, runs_frame, samples_frame


@dataclass(frozen=True)
class Tuning:
    """One tuning session (``s2sbench tune``): its settings as stored, and each model's trials and finals."""

    session: str
    settings: dict[str, Any]  # the session's env["tune"]: trials, sampler, seed, final_seeds, space
    studies: list[tuning.StudyResult]
    failed_trials: int


@dataclass(frozen=True)
class Inputs:
    """The store's content for one report, as frames (``bench.results.tidy``), restricted to the tasks asked for."""

    sessions: list[dict[str, Any]]  # the stored session records (id, started, status, env), in the order asked
    runs: pd.DataFrame  # runs_frame: one row per run
    epochs: pd.DataFrame  # epochs_frame: one row per run and epoch (the learning curves)
    samples: pd.DataFrame  # samples_frame: the decoded test examples of finished runs (the attention heatmaps)
    tuning: list[Tuning] = field(default_factory=list)  # the tuning sessions; their trials are not in the frames above


def load(store: Store, sessions: list[str], tasks: list[str] | None = None) -> Inputs:
    """Read what a report of ``sessions`` needs; ``tasks``: only these tasks' runs (None: every task).

    A tuning session's trials are summarised by its tuning curves (``Tuning``), not listed as runs: the frames
    hold its finals (each model's default and tuned recipe at the fresh seeds).
    """
    info = {s["id"]: s for s in store.sessions()}

    def only(df: pd.DataFrame) -> pd.DataFrame:
        return df[df["task"].isin(tasks)] if tasks and not df.empty else df

    tunings, trials = [], set()
    for sid in sessions:
        if "tune" not in info[sid]["env"]:
            continue
        recs = [r for r in store.runs(sid) if not tasks or r.task in tasks]
        trial = [r for r in recs if ((r.metrics or {}).get("tune") or {}).get("role") == "trial"]
        trials |= {(sid, r.key) for r in trial} | {(sid, r.id) for r in trial} | {(sid, r.config_hash, r.seed) for r in trial}
        tunings.append(Tuning(sid, info[sid]["env"]["tune"], tuning.studies(recs), sum(r.status != "ok" for r in trial)))
    runs, epochs, samples = only(runs_frame(store, sessions)), only(epochs_frame(store, sessions)), only(samples_frame(store, sessions))
    keep = [(s, k) not in trials for s, k in zip(runs["session"], runs["key"])]
    if trials and any(keep):  # (a session of trials alone, its finals still to run, keeps them: a report needs runs)
        runs = runs[keep]
        if not epochs.empty:
            epochs = epochs[[(s, h, int(e)) not in trials for s, h, e in zip(epochs["session"], epochs["config_hash"], epochs["seed"])]]
        if not samples.empty:
            samples = samples[[(s, r) not in trials for s, r in zip(samples["session"], samples["run"])]]
    return Inputs([info[sid] for sid in sessions], runs, epochs, samples, tunings)


@dataclass(frozen=True)
class Findings:
    """Everything the report's sections are built from: frames and lines, no layout."""

    sessions: list[str]  # ids, in the order asked
    runs: pd.DataFrame  # every run reported (runs.csv)
    epochs: pd.DataFrame
    samples: pd.DataFrame
    palette: dict[str, tuple]  # model -> colour, in the story's order
    reference: str | None  # the model speed ratios are to (None: no ratios)
    table: pd.DataFrame  # summary_table of the time-to-quality runs, one row per configuration, with its line style (variant)
    overlap: list[str]  # per task whose test questions also appear in its training split, one line
    unk: list[str]  # per task whose test split held tokens its training split never had (read as <unk>), one line
    units: str | None  # where the rows' error rates count different units (phones, characters): which is which
    lengths: pd.DataFrame  # length_frame: the points of the accuracy-by-length plot
    notes: list[str]  # caveats about the figures (a length plot left out, and why)
    sweeps: list[Sweep]  # the length sweeps
    sweep_reference: str | None  # the model a sweep's ratios are to
    sweep_notes: list[str]  # caveats about the sweeps
    crossovers: list[str]  # per sweep: from which length the reference trains faster than each recurrent model
    length_curves: pd.DataFrame  # fixed_lengths.length_curves: exact match at fixed lengths, one line per model
    length_verdicts: list[str]  # per scope of length_curves: from which length each model falls below half
    throughput: pd.DataFrame  # throughput_table: throughput runs outside a sweep
    configurations: pd.DataFrame  # configuration_frame: where a task, model and size ran in several configurations
    failures: pd.DataFrame  # failed runs not retried successfully: task, model, size, seed, mode, device, error
    env: pd.DataFrame  # one row per session: device, versions, commit
    warnings: list[str]  # where the sessions' environments differ
    headlines: list[Headline]  # per comparison: the most accurate and the fastest model, or why they cannot be named
    caveats: list[str]  # what limits every figure: a busy machine's speed, one seed, a suite's own note
    tuning: list[Tuning] = field(default_factory=list)  # the tuning sessions' curves and rankings (bench.analysis.tuning)

    @property
    def title(self) -> str:
        return f"s2sbench report — {', '.join(self.sessions)}"


def analyse(inputs: Inputs, reference: str | None = None) -> Findings:
    """``reference``: the model speed ratios are relative to (default: the one the registry marks, as stored;
    for length sweeps, the model recorded as not recurrent -- the Transformer, as Long Range Arena's table)."""
    runs = inputs.runs
    ids = [s["id"] for s in inputs.sessions]
    if runs.empty:
        raise UserError(f"session {', '.join(ids)} has no runs to report")
    explicit = reference
    if reference is None:
        reference = default_reference(runs)
    elif reference not in set(runs["model"]):
        raise UserError(f"--reference {reference}: no such model in these sessions (models: {', '.join(model_order(runs))})")
    table = summary_table(runs, reference)
    if not table.empty:
        table["variant"] = variants(table, ["task", "size"])
    qruns = quality_runs(runs)
    lengths = length_frame(qruns, table)
    sref = sweep_reference(runs, explicit)
    sweeps, single = throughput_split(runs, sref)
    recurrent = recurrent_models(runs)
    crossovers: list[str] = []
    sweep_notes: list[str] = []
    if sweeps and explicit is None and recurrent.get(str(sref)) is not False:
        sweep_notes.append("Length sweeps: these runs do not record which model is parallel over time (they were stored before the "
                           f"registry recorded whether a model is recurrent), so the sweep ratios are to {sref} and no crossover length "
                           "is derived; --reference MODEL picks the model to compare against.")
    else:
        crossovers = [c for sw in sweeps if (c := crossover(sw, recurrent, scan_models(runs))) is not None]
    curves = length_curves(runs)
    tput = throughput_table(single)
    env, warnings = environment(inputs.sessions)
    envs = {s["id"]: s["env"] for s in inputs.sessions}
    busy_sessions = {sid: why for sid, e in envs.items() if (why := busy(e.get("calibration")))}
    if not table.empty:  # speed measured while other work took the cores wins no "best" (tables.winners)
        table["speed_unreliable"] = [any(sid in busy_sessions for sid in ss) for ss in table["sessions"]]
    headlines = conclusions.headlines(runs, envs)
    ok_keys = set(runs.loc[runs["status"] == "ok", "key"])
    failed = annotate(runs)  # labelled like the rows, so 'attention [bf16]' says which configuration failed
    failed = failed[(failed["status"] != "ok") & ~failed["key"].isin(ok_keys)]
    failures = failed[["task", "label", "size", "seed", "mode", "device", "error"]].rename(columns={"label": "model"})
    return Findings(
        sessions=ids, runs=runs, epochs=inputs.epochs, samples=inputs.samples, palette=palette(model_order(runs)), reference=reference,
        table=table, overlap=overlap_notes(runs), unk=unk_notes(runs), units=unit_note(table), lengths=lengths,
        notes=[n for n in (length_note(lengths),) if n is not None],
        sweeps=sweeps, sweep_reference=sref, sweep_notes=sweep_notes, crossovers=crossovers, length_curves=curves,
        length_verdicts=length_verdicts(curves, sref), throughput=tput,
        configurations=configuration_frame([annotate(qruns), tput]), failures=failures, env=env, warnings=warnings,
        headlines=headlines, caveats=conclusions.caveats(envs, headlines), tuning=inputs.tuning)

