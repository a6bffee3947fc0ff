"""Length sweeps: the throughput runs of one task and size that differ in the source length only, their table
(Long Range Arena's) and the length from which the parallel model trains faster than each recurrent one."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.analysis import configs
from bench.analysis.report.document import Cell, Table
from bench.analysis.report.palette import default_reference, model_order
from bench.analysis.report.tables import annotate, failure_kind
from bench.results.metrics import metric


def recurrent_models(runs: pd.DataFrame) -> dict[str, bool]:
    """model -> recurrent, as the registry's metadata stored with any of its runs says (absent: unknown)."""
    if "model_recurrent" not in runs:
        return {}
    known = runs.dropna(subset=["model_recurrent"])
    return {str(m): bool(v) for m, v in known.groupby("model")["model_recurrent"].first().items()}


def scan_models(runs: pd.DataFrame) -> dict[str, bool]:
    """model -> trained by a parallel scan (recurrent in decoding only), as stored with its runs (absent: unknown)."""
    if "model_scan" not in runs:
        return {}
    known = runs.dropna(subset=["model_scan"])
    return {str(m): bool(v) for m, v in known.groupby("model")["model_scan"].first().items()}


SCAN_MARK = "(a parallel scan)"  # how a crossover line names a model that trains by a scan
SCAN_NOTE = ("Models marked \"a parallel scan\" are recurrent when decoding only: they train by a parallel scan over time (O(log n) "
             "steps, Feng et al. 2024; Gu & Dao 2023), as attention trains in O(1) steps. A crossover with one of them is a difference "
             "of work per token and of kernels, not of a sequential loop against a parallel one.")


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
    # model_label, length, status (ok | OOM | ...), step_s, steps_per_s, tokens_per_s, peak_bytes, seeds, and the decoding
    # at the decode batch: decode_s_per_token, state_bytes (what it carries between steps; NaN where not recorded)
    points: pd.DataFrame
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


def _median(ok: pd.DataFrame, column: str) -> float:
    """The median of a metric over a point's finished runs; NaN where the runs predate it (or none finished)."""
    return pd.to_numeric(ok[column], errors="coerce").median() if column in ok else math.nan


def _points(g: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (lab, length), p in g.groupby(["model_label", "length"], sort=False):
        ok = p[p["status"] == "ok"]
        row = {"model_label": lab, "model": p["model"].iloc[0], "length": int(length)}
        if ok.empty:
            row.update(status=failure_kind(p["error"].iloc[-1]), error=str(p["error"].iloc[-1]), step_s=math.nan, steps_per_s=math.nan,
                       tokens_per_s=math.nan, peak_bytes=math.nan, seeds=0, decode_s_per_token=math.nan, state_bytes=math.nan)
        else:
            step = pd.to_numeric(ok["step_s"], errors="coerce").median()
            row.update(status="ok", error="", step_s=step, steps_per_s=1 / step if step and step > 0 else math.nan,
                       tokens_per_s=pd.to_numeric(ok["train_tokens_per_s"], errors="coerce").median(),
                       peak_bytes=pd.to_numeric(ok["peak_memory_bytes"], errors="coerce").median(), seeds=int(ok["seed"].nunique()),
                       decode_s_per_token=_median(ok, "decode_s_per_token_batch"), state_bytes=_median(ok, "decode_state_bytes_batch"))
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
        extra = configs.labels({s: configs.without(f, (configs.DEVICE, "train.amp", "train.capture", "train.batch_size",
                                                       "throughput.steps"))
                                for s, f in peers.items()}).get(scope, "")
        sweeps.append(Sweep(task, size, title + (f" · {extra}" if extra else ""), variant, lengths, models_, colour_of, _points(g),
                            reference if reference in labs else None))
    return sweeps, annotate(pd.concat(rest) if rest else tp.iloc[:0], ignore=configs.LENGTH_FIELDS)


def _abs(p: pd.Series) -> str:
    return (f"{p['steps_per_s']:.3g} steps/s · "
            f"{metric('peak_memory_bytes').format(metric('peak_memory_bytes').display(p['peak_bytes']))} MiB")


def sweep_rows(sw: Sweep) -> Table:
    """Long Range Arena's table: rows models, columns lengths, cells steps/s and peak memory as ratios to the
    reference at the same length; the reference's own row holds its absolute figures; a failed point says so.
    A cell is flagged best where its model trains faster than the reference there."""
    headers = ["model"] + [f"length {L}" for L in sw.lengths]
    body = []
    ref = sw.reference
    if ref is not None:
        body.append((Cell(f"{ref} (absolute)"),) + tuple(
            Cell((_abs(p) if p["status"] == "ok" else str(p["status"])) if (p := sw.point(ref, L)) is not None else "–")
            for L in sw.lengths))
    for m in sw.models:
        if m == ref:
            continue
        cells = [Cell(m + (" (absolute)" if ref is None else ""))]
        for L in sw.lengths:
            p, r = sw.point(m, L), sw.point(ref, L) if ref is not None else None
            if p is None:
                cells.append(Cell("–"))
            elif p["status"] != "ok":
                cells.append(Cell(str(p["status"])))
            elif r is None or r["status"] != "ok":
                cells.append(Cell(_abs(p)))
            else:
                cells.append(Cell(f"{p['steps_per_s'] / r['steps_per_s']:.2f}× · {p['peak_bytes'] / r['peak_bytes']:.2f}×",
                                  bool(p["steps_per_s"] > r["steps_per_s"])))
        body.append(tuple(cells))
    return Table(tuple(headers), tuple(body), "sweep")


def _crossing(lo: tuple[int, float], hi: tuple[int, float]) -> float:
    """Where log(ratio) crosses 0 between two lengths, interpolated on log-log axes (as the figure draws it)."""
    (l0, r0), (l1, r1) = lo, hi
    t = -math.log(r0) / (math.log(r1) - math.log(r0))
    return math.exp(math.log(l0) + t * (math.log(l1) - math.log(l0)))


def crossover(sw: Sweep, recurrent: dict[str, bool], scan: dict[str, bool] | None = None) -> str | None:
    """One line: from which length the reference (the Transformer) trains faster than each recurrent model in
    this sweep -- where the tokens/s lines cross -- or that it does not within the lengths measured. A model
    that trains by a parallel scan (``scan``) is named as one: its training is not a loop over time."""
    ref = sw.reference
    if ref is None:
        return None
    others = [m for m in sw.models if m != ref and recurrent.get(sw.colour_of[m], not recurrent)]
    if not others:
        return None
    clauses = []
    for lab in others:
        m = f"{lab} {SCAN_MARK}" if (scan or {}).get(sw.colour_of[lab]) else lab
        ratios = []
        for L in sw.lengths:
            p, r = sw.point(lab, L), sw.point(ref, L)
            if p is not None and r is not None and p["status"] == r["status"] == "ok" and p["tokens_per_s"] > 0:
                ratios.append((L, r["tokens_per_s"] / p["tokens_per_s"]))
        clauses.append(_clause(ref, m, ratios))
    fails = sw.points[(sw.points["model_label"] == ref) & (sw.points["status"] != "ok")]
    tail = f" {ref} failed ({', '.join(f'{s} at {L}' for s, L in zip(fails['status'], fails['length']))})." if not fails.empty else ""
    return f"{sw.title}: in training tokens/s, {ref} is " + "; ".join(clauses) + "." + tail


def _clause(ref: str, m: str, ratios: list[tuple[int, float]]) -> str:
    """How the reference's tokens/s compare with model ``m``'s across the lengths: ratios (length, ref / m)."""
    if not ratios:
        return f"no length where both {ref} and {m} ran"
    span = f"{ratios[0][0]}–{ratios[-1][0]}" if len(ratios) > 1 else str(ratios[0][0])
    start = next((i for i in range(len(ratios)) if all(r > 1 for _, r in ratios[i:])), None)
    if start is None:
        faster = [r > 1 for _, r in ratios]
        if not any(faster):
            return f"slower than {m} at every length measured up to {ratios[-1][0]} ({ratios[-1][1]:.2f}× its tokens/s there)"
        k = faster.index(False)
        if all(faster[:k]) and not any(faster[k:]):  # faster at the short lengths, slower from one length on: one crossing
            near = _crossing(ratios[k - 1], ratios[k])
            return (f"faster than {m} up to length {ratios[k - 1][0]}, slower from length {ratios[k][0]} on (the lines cross near "
                    f"{near:.0f}; {ratios[k - 1][1]:.2f}× at {ratios[k - 1][0]}, {ratios[-1][1]:.2f}× at {ratios[-1][0]})")
        return (f"not faster than {m} from any length on within {span} (the lines cross more than once; "
                f"{ratios[-1][1]:.2f}× at {ratios[-1][0]})")
    if start == 0:
        return (f"faster than {m} at every length measured ({span}; {ratios[0][1]:.2f}× at {ratios[0][0]}, "
                f"{ratios[-1][1]:.2f}× at {ratios[-1][0]})")
    near = _crossing(ratios[start - 1], ratios[start])
    before = [L for L, r in ratios[: start - 1] if r > 1]  # the lines crossed before too: say so, the figure shows it
    return (f"faster than {m} from length {ratios[start][0]} on (the lines cross near {near:.0f}; "
            f"{ratios[start - 1][1]:.2f}× at {ratios[start - 1][0]}, {ratios[-1][1]:.2f}× at {ratios[-1][0]}"
            + (f"; also faster at {', '.join(map(str, before))}" if before else "") + ")")
