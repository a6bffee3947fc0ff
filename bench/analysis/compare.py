"""Regression tracking: two sessions, or a session and a committed baseline -> ratios, verdicts, exit code.

Pure functions of stored data: a *side* is a session of a results store (an id, an id prefix or
``latest``) or a baseline JSON file written by ``s2sbench baseline save``; nothing here runs a model.
Each side becomes one group per *configuration* -- task x model x size x config hash -- built from
``bench.results.tidy.runs_frame``: runs that differ in anything but the seed (precision, launch mode, model
options, training settings, data, mode) are never averaged as seeds of one result, so ``attention(score=general)``
is not averaged with ``attention``, nor a bf16 run with a fp32 one. Groups are paired across the sides only when
their configurations are equal (same task, model, size and config hash); a group with no equal configuration on
the other side is not compared, and the output says which fields kept it from being paired
(``bench.analysis.configs``). Per group:

* quality -- ``test_exact_match``, ``test_token_accuracy``, ``alignment``: mean, std and n over seeds;
* speed -- ``train_tokens_per_s``, ``s_per_epoch`` (median of the epoch times after the first, which
  carries the warm-up), ``decode_latency_batch_s``, ``decode_latency_b1_s``, ``time_to_target_s``:
  medians over seeds (time to target only when every seed reached the target);
* memory -- ``peak_memory_bytes``: median over seeds.

**Speed is compared machine-normalised.** Sessions run at different times, on CI runners that differ
and on machines shared with other jobs, so an absolute time mixes the code's speed with the machine's
speed at that moment. Every session times a fixed workload in its own process at its start
(``bench.measure.calibrate``: a matmul and an LSTM step of fixed shapes; stored as ``env["calibration"]``).
Speed metrics are divided by that figure before the ratio is taken -- times become "calibration units",
throughputs "tokens per calibration unit" -- so a machine (or a load) that makes everything 2x slower
cancels out, and what is left is the code. Limits: the calibration is one point in time, so noise that
comes and goes *during* a session is not cancelled (hence the generous default time threshold); its
workload is a proxy (matmul + LSTM), so a machine whose attention kernels or memory bandwidth differ
relative to it is not fully cancelled; and across device *types* (CPU vs GPU) or torch versions nothing
is comparable -- the output warns. A side without a calibration makes the comparison fall back to raw
speeds, and the output says so.

**Verdicts** per task x model x metric: better / same / worse, under thresholds given as
``--fail-on "time:+10%,accuracy:-0.5pt,memory:+20%"``:

* ``time`` (default +25 %): the relative increase of a time (s/epoch, latency, time to target) or, for a
  throughput, of its inverse (tokens/s 100 -> 80 is a time ratio of 1.25). 25 % because CI runners are
  noisy even after normalisation, while the regressions worth a red build (a lost KV cache, a kernel
  falling back to a slow path) cost 1.5x and more. A drop past 1/(1 + t) is "better". Measure before
  trusting it on a given machine: ``python -m bench.checks.sabotage`` runs unchanged and deliberately 2x-slowed
  models side by side and prints, per metric, the worst ratio of the unchanged ones against the mildest
  of the slowed one. Measured on a 2-core VM shared with other jobs (tiny models, one thread): with three
  seeds (speed is a median over seeds, which absorbs a burst of load that hits one run) unchanged models
  stayed within 1.07x and the 2x-slowed one above 1.57x; with one seed, bursts pushed unchanged runs to
  1.3-1.75x now and then (false alarms) and once hid the slowdown; with two threads on two busy cores,
  OpenMP stalls made unchanged runs up to 180x slower. So: one thread per process on shared CPUs, and
  several seeds (or a quiet runner) for a time gate worth trusting.
* ``accuracy`` (default -0.5 pt): an absolute drop in percentage points of a quality mean. On CPU the
  same seed gives the same numbers, so a real change shows at once; where seeds differ, a change smaller
  than the seed-to-seed spread is noise: the band is ``max(threshold, 2 x pooled std over seeds)`` when a
  side has at least two seeds (the pooled sample std of both sides' per-seed values).
* ``memory`` (default +20 %): the relative increase of the peak memory median. On CPU the peak is the
  process's RSS (interpreter and libraries included), which moves by a few percent on its own.

Any category can be switched off (``time:off``) -- e.g. when comparing across machines on purpose.
A group present on one side only is "missing" (in the base, not the new side) or "new": shown, never a
failure; where both sides have the task, model and size but in different configurations, the warnings say
which fields differ (a changed default unpairs every group: re-save the baseline with the change that made it). A run that failed on the new side where the base's same seed was fine is "worse" (a
regression); a failure the base had and the new side fixed is "better". Exit code: 1 when any verdict
is "worse", 0 otherwise; bad input (unknown session, unreadable baseline, bad ``--fail-on``) raises
``UserError`` (exit 2 in the CLI).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import numbers
import os
import re
import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.analysis import configs
from bench.analysis.environment import differences
from bench.errors import UserError
from bench.results import baseline
from bench.results.calibration import combined_seconds
from bench.results.metrics import BY_NAME, of_kind
from bench.results.store import Store
from bench.results.tidy import runs_frame

# The metrics compared, from the one catalogue: quality (mean over seeds), speed and memory (medians).
QUALITY = tuple(m.name for m in of_kind("quality"))
SPEED: dict[str, str] = {m.name: m.better for m in of_kind("speed")}  # "low": a time; "high": a throughput
MEMORY = tuple(m.name for m in of_kind("memory"))
# per-seed values kept in a baseline (the metrics above plus what explains them)
PER_SEED = QUALITY + tuple(SPEED) + MEMORY + ("params", "epochs")
SYMBOLS = {"better": "✅ better", "same": "➖ same", "worse": "❌ worse", "missing": "❔ missing", "new": "🆕 new",
           "unchecked": "· unchecked"}


# --- thresholds ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Thresholds:
    """``None`` switches a category off (its rows are shown as "unchecked")."""

    time: float | None = 0.25  # relative increase of time-like metrics
    accuracy: float | None = 0.5  # absolute drop, percentage points
    memory: float | None = 0.20  # relative increase

    def describe(self) -> str:
        def f(v: float | None, fmt: str) -> str:
            return "off" if v is None else fmt.format(v)

        return (f"time {f(None if self.time is None else self.time * 100, '+{:g}%')}, "
                f"accuracy {f(self.accuracy, '-{:g} pt')}, memory {f(None if self.memory is None else self.memory * 100, '+{:g}%')}")


_FAIL_ON_ITEM = re.compile(r"^\s*(?P<kind>[a-z]+)\s*:\s*(?P<sign>[+-]?)\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>%|pt|pp)?\s*$")


def parse_fail_on(spec: str | None) -> Thresholds:
    """``"time:+10%,accuracy:-0.5pt,memory:+20%"`` -> Thresholds; categories left out keep their default.

    time and memory take a relative increase in % (the sign, if any, must be +); accuracy takes an
    absolute drop in percentage points (``pt`` or ``pp``; the sign, if any, must be -). ``kind:off``
    disables a category.
    """
    t = Thresholds()
    if spec is None:
        return t
    if not spec.strip():
        raise UserError("--fail-on is empty; expected e.g. 'time:+10%,accuracy:-0.5pt,memory:+20%'")
    vals: dict[str, float | None] = {}
    for item in spec.split(","):
        if not item.strip():
            continue
        kind = item.split(":", 1)[0].strip().lower()
        if kind not in ("time", "accuracy", "memory"):
            raise UserError(f"--fail-on: unknown category {kind!r} in {item.strip()!r}; use time, accuracy or memory")
        if kind in vals:
            raise UserError(f"--fail-on: {kind} is given twice")
        if ":" in item and item.split(":", 1)[1].strip().lower() in ("off", "none"):
            vals[kind] = None
            continue
        m = _FAIL_ON_ITEM.match(item.lower())
        if not m:
            raise UserError(f"--fail-on: cannot read {item.strip()!r}; expected e.g. time:+10%, accuracy:-0.5pt, memory:+20% or time:off")
        sign, num, unit = m["sign"], float(m["num"]), m["unit"]
        if kind == "accuracy":
            if unit not in ("pt", "pp"):
                raise UserError(f"--fail-on: accuracy is an absolute drop in percentage points: write accuracy:-{m['num']}pt, not {item.strip()!r}")
            if sign == "+":
                raise UserError(f"--fail-on: accuracy threshold is a drop: write accuracy:-{m['num']}pt")
            vals[kind] = num
        else:
            if unit != "%":
                raise UserError(f"--fail-on: {kind} is a relative increase in percent: write {kind}:+{m['num']}%, not {item.strip()!r}")
            if sign == "-":
                raise UserError(f"--fail-on: {kind} threshold is an increase: write {kind}:+{m['num']}%")
            vals[kind] = num / 100
    if not vals:
        raise UserError("--fail-on is empty; expected e.g. 'time:+10%,accuracy:-0.5pt,memory:+20%'")
    return Thresholds(**{**{"time": t.time, "accuracy": t.accuracy, "memory": t.memory}, **vals})


# --- sides --------------------------------------------------------------------------------------------
@dataclass
class Group:
    """One configuration of a side (task x model x size x config hash): per-seed values of ok runs, and failed
    seeds with their reason."""

    task: str
    model: str  # model name, with its non-default options in parentheses
    size: str
    seeds: dict[int, dict[str, Any]] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    config_hashes: set[str] = field(default_factory=set)
    config: dict[str, Any] | None = None  # the run config less the seed, where recorded (stores; baselines since it is saved)

    @property
    def config_hash(self) -> str | None:
        """The configuration's hash; None when not recorded (an old baseline)."""
        return ",".join(sorted(self.config_hashes)) or None

    @property
    def cell(self) -> tuple[str, str, str]:
        return (self.task, self.model, self.size)

    @property
    def key(self) -> tuple[str, str, str, str | None]:
        return (self.task, self.model, self.size, self.config_hash)

    def values(self, metric: str) -> list[float]:
        out = []
        for s in sorted(self.seeds):
            v = self.seeds[s].get(metric)
            if v is not None and not isinstance(v, (bool, str)) and math.isfinite(float(v)):
                out.append(float(v))
        return out

    def quality(self, metric: str) -> tuple[float, float, int] | None:
        """(mean, sample std, n) in percent over seeds, or None when no seed has the metric."""
        xs = [x * 100 for x in self.values(metric)]
        if not xs:
            return None
        return (statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0, len(xs))

    def median(self, metric: str) -> float | None:
        xs = self.values(metric)
        if metric == "time_to_target_s" and len(xs) < len(self.seeds):
            return None  # some seed never reached the target: no time to target for the group
        return statistics.median(xs) if xs else None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seeds_ok": len(self.seeds), "seeds_failed": len(self.failed)}
        for m in QUALITY:
            q = self.quality(m)
            out[m] = None if q is None else {"mean_pct": round(q[0], 4), "std_pct": round(q[1], 4), "n": q[2]}
        for m in (*SPEED, *MEMORY):
            out[m] = self.median(m)
        return out


@dataclass
class Side:
    label: str  # for people: "session 2024...-ab12" or "baseline cpu-ci (results/baselines/cpu-ci.json)"
    session: str | None
    status: str | None  # the session's status: finished | interrupted | running
    env: dict[str, Any]
    calibration: dict[str, Any] | None
    groups: dict[tuple[str, str, str, str | None], Group]
    info: dict[str, Any] = field(default_factory=dict)  # the session's id, times, suite and command

    @property
    def cal_s(self) -> float | None:
        return combined_seconds(self.calibration)

    def group(self, task: str, model: str, size: str) -> Group:
        """The one configuration of a task x model x size (KeyError when there is none or several)."""
        hits = [g for g in self.groups.values() if g.cell == (task, model, size)]
        if len(hits) != 1:
            raise KeyError(f"{task}/{model}/{size}: {len(hits)} configurations")
        return hits[0]


def _num(v: Any) -> Any:
    if v is None or isinstance(v, (bool, str)):
        return v
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if math.isnan(f):
        return None
    return int(f) if isinstance(v, numbers.Integral) else f


def _config(v: Any) -> dict[str, Any] | None:
    try:
        c = json.loads(v) if isinstance(v, str) else v
    except ValueError:
        return None
    return c if isinstance(c, dict) else None


def groups_from_frame(df: Any) -> dict[tuple[str, str, str, str | None], Group]:
    """``runs_frame`` rows -> one group per configuration. A seed run twice (a failure retried by ``--resume``)
    keeps its last run."""
    groups: dict[tuple[str, str, str, str | None], Group] = {}
    for r in df.to_dict("records"):
        model = configs.model_label(r["model"], r.get("model_options"))
        h = str(r["config_hash"]) if r.get("config_hash") else None
        key = (str(r["task"]), model, str(r["size"]), h)
        g = groups.get(key)
        if g is None:
            g = groups[key] = Group(str(r["task"]), model, str(r["size"]), config_hashes={h} if h else set(), config=_config(r.get("config")))
        seed = int(r["seed"])
        g.seeds.pop(seed, None)
        g.failed.pop(seed, None)
        if r["status"] == "ok":
            g.seeds[seed] = {m: _num(r.get(m)) for m in PER_SEED}
        else:
            g.failed[seed] = str(r.get("error") or "failed")
    return groups


def side_from_store(store_path: str, ref: str) -> Side:
    store = Store.open_read_only(store_path)
    try:
        s = store.session(ref)
        df = runs_frame(store, [s["id"]])
    finally:
        store.close()
    if df.empty:
        raise UserError(f"{store_path}: session {s['id']} has no runs to compare")
    env = dict(s["env"])
    cal = env.pop("calibration", None)
    info = {k: s.get(k) for k in ("id", "started", "finished", "status", "suite", "command")}
    return Side(f"session {s['id']}", s["id"], s["status"], env, cal if isinstance(cal, dict) else None, groups_from_frame(df), info)


def is_baseline_ref(ref: str) -> bool:
    """A side given as a baseline file: a path ending in .json, or any existing file."""
    return ref.lower().endswith(".json") or os.path.isfile(ref)


def load_side(ref: str, store_path: str) -> Side:
    return load_baseline(ref) if is_baseline_ref(ref) else side_from_store(store_path, ref)


# --- baselines ----------------------------------------------------------------------------------------
def baseline_doc(side: Side, name: str) -> dict[str, Any]:
    """A side as a baseline document: environment, calibration, per-seed values and their summary."""
    results = {}
    per_cell: dict[tuple[str, str, str], int] = {}
    for g in side.groups.values():
        per_cell[g.cell] = per_cell.get(g.cell, 0) + 1
    for key in sorted(side.groups, key=lambda k: tuple(str(x) for x in k)):
        g = side.groups[key]
        rkey = "/".join(g.cell) + (f"/{g.config_hash}" if per_cell[g.cell] > 1 else "")
        results[rkey] = {
            "task": g.task,
            "model": g.model,
            "size": g.size,
            "config_hashes": sorted(g.config_hashes),
            **({"config": g.config} if g.config is not None else {}),
            "seeds": {str(s): g.seeds[s] for s in sorted(g.seeds)},
            "failed": {str(s): g.failed[s] for s in sorted(g.failed)},
            "summary": g.summary(),  # for readers; compare recomputes it from the seeds
        }
    return {
        "format": baseline.FORMAT,
        "schema_version": baseline.VERSION,
        "name": name,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "session": side.info or {"id": side.session, "status": side.status},
        "env": side.env,
        "calibration": side.calibration,
        "results": results,
    }


def save_baseline(store_path: str, ref: str, name: str, directory: str = baseline.DEFAULT_DIR, force: bool = False) -> tuple[str, Side]:
    """Write ``directory/NAME.json`` from a stored session. -> (path, the side saved).

    An existing baseline of that name is replaced only with ``force``: a committed baseline is what CI compares
    against, and overwriting it silently moves the gate."""
    n = baseline.name(name)
    path = os.path.join(directory, n + ".json")
    if not force:
        baseline.refuse_existing(path)
    side = side_from_store(store_path, ref)
    baseline.write(path, baseline_doc(side, n))
    return path, side


def load_baseline(path: str) -> Side:
    return side_from_doc(baseline.read(path), path)


def side_from_doc(doc: Any, path: str = "<baseline>") -> Side:
    doc = baseline.check(doc, path)
    results, env, cal = doc["results"], doc.get("env", {}), doc.get("calibration")
    groups: dict[tuple[str, str, str, str | None], Group] = {}
    for k, r in results.items():
        try:
            g = Group(str(r["task"]), str(r["model"]), str(r["size"]))
            g.seeds = {int(s): {m: _num(x) for m, x in dict(vals).items()} for s, vals in dict(r.get("seeds", {})).items()}
            g.failed = {int(s): str(e) for s, e in dict(r.get("failed", {})).items()}
            g.config_hashes = {str(h) for h in r.get("config_hashes", [])}
            g.config = _config(r.get("config"))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise baseline.bad(path, f"result {k!r} is malformed ({type(e).__name__}: {e})") from None
        groups[g.key] = g
    sess = doc.get("session") if isinstance(doc.get("session"), dict) else {}
    name = doc.get("name") or os.path.splitext(os.path.basename(path))[0]
    label = f"baseline {name} ({path}" + (f", session {sess['id']})" if sess.get("id") else ")")
    return Side(label, sess.get("id"), sess.get("status"), env, cal, groups, dict(sess))


# --- comparing ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    task: str
    model: str
    size: str
    metric: str
    kind: str  # quality | speed | memory | runs | group
    verdict: str  # better | same | worse | missing | new | unchecked
    base: float | str | None = None
    new: float | str | None = None
    change: float | None = None  # quality: delta in pt; speed (normalised) and memory: new/base ratio
    band: float | None = None  # quality: the band (pt) a change had to leave to count
    note: str = ""


@dataclass
class Comparison:
    base: Side
    new: Side
    thresholds: Thresholds
    rows: list[Row]
    warnings: list[str]
    notes: list[str]
    unpaired: list[str] = field(default_factory=list)  # why a configuration of one side had no equal on the other

    @property
    def normalised(self) -> bool:
        return self.base.cal_s is not None and self.new.cal_s is not None

    def count(self, verdict: str) -> int:
        return sum(r.verdict == verdict for r in self.rows)

    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == "worse"]

    def exit_code(self) -> int:
        """1 on a regression, and 1 when a configuration could not be paired: a gate that silently skips a
        group whose config changed (a new default, a suite edit) checks nothing there -- re-record the baseline."""
        return 1 if self.regressions() or self.unpaired else 0

    def summary_line(self) -> str:
        reg = self.regressions()
        kinds: dict[str, int] = {}
        for r in reg:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        head = (f"❌ {len(reg)} regression{'s' if len(reg) != 1 else ''} (" + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + ")"
                if reg else "❌ configurations changed: not compared (re-record the baseline if the change is intended)" if self.unpaired
                else "✅ no regressions")
        speed = "speed machine-normalised" if self.normalised else "speed compared RAW (a side has no calibration)"
        unpaired = f", {len(self.unpaired)} unpaired (configurations differ)" if self.unpaired else ""
        return (f"{head}; {self.count('better')} better, {self.count('same')} same, {self.count('missing')} missing, "
                f"{self.count('new')} new{unpaired} -- thresholds {self.thresholds.describe()}; {speed}.")

    def markdown(self, changes_only: bool = False) -> str:
        lines = [f"## s2sbench compare: {self.base.label} → {self.new.label}", ""]
        for w in self.warnings:
            lines.append(f"> ⚠️ {w}")
        if self.warnings:
            lines.append("")
        rows = [r for r in self.rows if not changes_only or r.verdict not in ("same", "unchecked")]
        if rows:
            lines += ["| task | model | size | metric | base | new | ratio / Δ | verdict |", "|---|---|---|---|---:|---:|---:|---|"]
            for r in rows:
                verdict = SYMBOLS.get(r.verdict, r.verdict) + (f" ({r.note})" if r.note else "")
                lines.append(f"| {r.task} | {r.model} | {r.size} | {metric_label(r.metric)} | {_fmt(r.metric, r.base)} | "
                             f"{_fmt(r.metric, r.new)} | {fmt_change(r)} | {verdict} |")
        elif changes_only:
            lines.append("_No changes past the thresholds._")
        lines.append("")
        for n in self.notes:
            lines.append(f"- {n}")
        if self.notes:
            lines.append("")
        lines.append(f"**{self.summary_line()}**")
        return "\n".join(lines) + "\n"


def metric_label(metric: str) -> str:
    return BY_NAME[metric].label if metric in BY_NAME else {"runs": "runs ok", "-": "(all metrics)"}.get(metric, metric)


def _fmt(metric: str, v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if metric in BY_NAME:
        m = BY_NAME[metric]
        return m.format(v if m.kind == "quality" else m.display(v))  # quality values are already in %
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 1000 else f"{v:,.0f}"


def fmt_change(r: Row) -> str:
    if r.change is None:
        return ""
    if r.kind == "quality":
        return f"{r.change:+.1f} pt" + (f" (±{r.band:.1f})" if r.band is not None else "")
    return f"×{r.change:.2f}"


def _pooled_std(a: tuple[float, float, int], b: tuple[float, float, int]) -> float | None:
    """Pooled sample std (pt) over the sides that have at least two seeds; None when neither has."""
    num = den = 0.0
    for _, s, n in (a, b):
        if n >= 2:
            num += (n - 1) * s * s
            den += n - 1
    return math.sqrt(num / den) if den else None


def quality_verdict(base: tuple[float, float, int], new: tuple[float, float, int], threshold: float | None) -> tuple[str, float, float | None]:
    """(mean %, std %, n) of each side -> (verdict, delta pt, band pt).

    A change within ``max(threshold, 2 x pooled std)`` -- what reseeding alone produces -- is "same".
    """
    delta = new[0] - base[0]
    if threshold is None:
        return "unchecked", delta, None
    sp = _pooled_std(base, new)
    band = max(threshold, 2 * sp) if sp is not None else threshold
    if delta < -band:
        return "worse", delta, band
    if delta > band:
        return "better", delta, band
    return "same", delta, band


def ratio_verdict(ratio: float, threshold: float | None, higher_is_better: bool = False) -> str:
    """new/base ratio -> verdict. For a throughput the time-equivalent ratio 1/ratio is judged."""
    if threshold is None:
        return "unchecked"
    cost = 1 / ratio if higher_is_better else ratio
    if cost > 1 + threshold:
        return "worse"
    if cost < 1 / (1 + threshold):
        return "better"
    return "same"


NOISY_CALIBRATION = 0.5  # calibration repeats spread wider than this: the machine was busy
IMPLAUSIBLE_CALIBRATION = 3.0  # the same device model calibrating this many times faster/slower: a measurement gone wrong


def calibration_spread(cal: Any) -> float | None:
    """The larger (max - min) / median of the calibration workloads, or None when not recorded."""
    if not isinstance(cal, dict):
        return None
    xs = [v for k in ("matmul_spread", "lstm_spread") if isinstance(v := cal.get(k), (int, float)) and math.isfinite(v)]
    return max(xs) if xs else None


def _env_warnings(base: Side, new: Side) -> list[str]:
    out = []
    for k, what, (a, b) in differences([base.env, new.env]):
        out.append(f"The two sides ran on different {what} (base {a}, new {b}): speed and memory ratios mix machine and code"
                   + (" even after calibration." if k != "threads" else "."))
    for side, which in ((base, "base"), (new, "new")):
        spread = calibration_spread(side.calibration)
        if spread is not None and spread > NOISY_CALIBRATION:
            out.append(f"The {which} side's calibration repeats varied by {spread:.0%} (max - min over median): the machine was busy "
                       "while it ran, so its speed figures are unreliable.")
        if side.status not in (None, "finished"):
            out.append(f"The {which} side's session is {side.status}: runs it did not get to show as missing/new.")
    return out


def compare(base: Side, new: Side, thresholds: Thresholds | None = None) -> Comparison:
    th = thresholds or Thresholds()
    rows: list[Row] = []
    notes: list[str] = []
    warnings = _env_warnings(base, new)
    cb, cn = base.cal_s, new.cal_s
    if cb is not None and cn is not None:
        r = cn / cb
        if max(r, 1 / r) > IMPLAUSIBLE_CALIBRATION and str(base.env.get("device_name")) == str(new.env.get("device_name")):
            warnings.append(f"The calibrations differ ×{r:.2f} on the same device ({base.env.get('device_name')}): more than machines of one "
                            "model differ, so one was probably taken under heavy load (or thread oversubscription) and every "
                            "normalised speed ratio is off by that factor. Re-run the session, or read the raw base/new columns.")
        notes.append(f"Speed ratios are machine-normalised: (new / new calibration) / (base / base calibration); calibration "
                     f"base {cb * 1000:.1f} ms, new {cn * 1000:.1f} ms (new machine ×{cn / cb:.2f} the base's time). "
                     "Base and new columns show raw values.")
    else:
        missing = "either side" if cb is None and cn is None else f"the {'base' if cb is None else 'new'} side"
        warnings.append(f"No calibration on {missing}: speed is compared RAW (absolute times), so machine speed and load "
                        "differences show up as speed changes.")
    tb, tn = base.env.get("device_type"), new.env.get("device_type")
    memory_comparable = tb is None or tn is None or tb == tn  # CUDA allocator peak vs process RSS: not one quantity
    unpaired: list[str] = []
    cells = list(dict.fromkeys([g.cell for g in base.groups.values()] + [g.cell for g in new.groups.values()]))
    for cell in cells:
        bs = [g for g in base.groups.values() if g.cell == cell]
        ns = [g for g in new.groups.values() if g.cell == cell]
        names = _labels(bs + ns)
        pairs, left_b, left_n = pair_groups(bs, ns)
        for gb, gn, note in pairs:
            if note:
                notes.append(f"{'/'.join(cell)}: {note}")
            rows += _compare_group(gb, gn, th, cb, cn, notes, memory_comparable, name=(cell[0], names[gb.config_hash], cell[2]))
        why = {id(g): r for g, r in unpaired_reasons(left_b, left_n)}
        unpaired += [why[id(g)] for g in left_b + left_n if id(g) in why]
        for g in left_b:
            rows.append(Row(g.task, names[g.config_hash], g.size, "-", "group", "missing",
                            note="no equal configuration in the new side" if left_n else "not in the new side"))
        for g in left_n:
            rows.append(Row(g.task, names[g.config_hash], g.size, "-", "group", "new",
                            note="no equal configuration in the base" if left_b else "not in the base"))
    if unpaired:
        shown = unpaired[:5]
        warnings.append(f"{len(unpaired)} configuration{'s' if len(unpaired) != 1 else ''} could not be paired, so "
                        f"{'they were' if len(unpaired) != 1 else 'it was'} not compared: " + " ".join(shown)
                        + (f" (and {len(unpaired) - len(shown)} more)" if len(unpaired) > len(shown) else ""))
    return Comparison(base, new, th, rows, warnings, notes, unpaired)


def _labels(groups: list[Group]) -> dict[str | None, str]:
    """config hash -> the row's model label: the model, plus in brackets what sets this configuration apart from
    the others of its task, model and size on either side (``attention [bf16]``)."""
    first = groups[0].model if groups else ""
    hashes = list(dict.fromkeys(g.config_hash for g in groups))
    if len(hashes) < 2:
        return {h: first for h in hashes}
    flats = {g.config_hash: configs.flatten(g.config) for g in groups if g.config is not None}
    if len(flats) == len(hashes):
        lab = configs.labels(flats)
    else:  # a side that does not record its configurations (an older baseline): name them by hash
        lab = {h: f"config {h}" if h else "config not recorded" for h in hashes}
    return {h: f"{first} [{lab[h]}]" if lab.get(h) else first for h in hashes}


def pair_groups(bs: list[Group], ns: list[Group]) -> tuple[list[tuple[Group, Group, str]], list[Group], list[Group]]:
    """The groups of one task x model x size on each side -> (pairs, base left over, new left over).

    Only equal configurations pair (same config hash). Where one side does not record its configuration
    (a baseline saved before hashes were kept) and each side has exactly one, they pair, and the note says so.
    """
    left_n = list(ns)
    pairs, left_b = [], []
    for b in bs:
        n = next((n for n in left_n if b.config_hash is not None and n.config_hash == b.config_hash), None)
        if n is None:
            left_b.append(b)
        else:
            left_n.remove(n)
            pairs.append((b, n, ""))
    if len(left_b) == 1 and len(left_n) == 1 and len(bs) == len(ns) == 1 and None in (left_b[0].config_hash, left_n[0].config_hash):
        pairs.append((left_b[0], left_n[0], "a side does not record its configuration: paired by task, model and size only"))
        return pairs, [], []
    return pairs, left_b, left_n


def unpaired_reasons(left_b: list[Group], left_n: list[Group]) -> list[tuple[Group, str]]:
    """For the configurations left without an equal on the other side, where the other side has the same task,
    model and size: which config fields differ from the nearest configuration there (one line per such pair)."""
    out: list[tuple[Group, str]] = []
    if not left_b or not left_n:
        return out
    known = all(g.config is not None for g in left_b + left_n)

    def dist(a: Group, b: Group) -> int:
        return len(configs.differing([configs.flatten(a.config), configs.flatten(b.config)])) if known else 0

    matched: set[int] = set()
    for mine, theirs, is_base in ((left_b, left_n, True), (left_n, left_b, False)):
        for g in mine:
            if id(g) in matched:
                continue
            near = min(theirs, key=lambda t: dist(g, t))
            b, n = (g, near) if is_base else (near, g)
            matched.update((id(b), id(n)))
            head = f"{'/'.join(g.cell)}: base config {b.config_hash or '(not recorded)'} and new config {n.config_hash or '(not recorded)'}"
            if known:
                diff = configs.diff_text(configs.flatten(b.config), configs.flatten(n.config))
                out.append((g, f"{head} differ in {diff or 'nothing recorded (only the hashes differ)'}."))
            else:
                out.append((g, f"{head} differ; which fields is unknown, as a side does not record its configurations (re-save the baseline)."))
    return out


def _compare_group(gb: Group, gn: Group, th: Thresholds, cb: float | None, cn: float | None, notes: list[str],
                   memory_comparable: bool = True, name: tuple[str, str, str] | None = None) -> list[Row]:
    key = name or gb.cell
    label = "/".join(key)
    rows: list[Row] = []
    # runs: a seed that fails now but ran in the base is a regression
    broke = sorted(s for s in gn.failed if s not in gb.failed)
    fixed = sorted(s for s in gb.failed if s not in gn.failed and s in gn.seeds)
    if gb.failed or gn.failed:
        nb, nn = len(gb.seeds) + len(gb.failed), len(gn.seeds) + len(gn.failed)
        if broke:
            verdict, note = "worse", "; ".join(f"seed {s}: {gn.failed[s]}" for s in broke)
        elif fixed:
            verdict, note = "better", f"fixed seed {', '.join(map(str, fixed))}"
        else:
            verdict, note = "same", "still failing: " + "; ".join(f"seed {s}: {gn.failed[s]}" for s in sorted(gn.failed))
        rows.append(Row(*key, "runs", "runs", verdict, f"{len(gb.seeds)}/{nb}", f"{len(gn.seeds)}/{nn}", note=_short(note)))
    pb, pn = gb.values("params"), gn.values("params")
    if pb and pn and pb[0] != pn[0]:
        notes.append(f"{label}: parameter count changed ({pb[0]:,.0f} → {pn[0]:,.0f}).")
    sb, sn = set(gb.seeds), set(gn.seeds)
    if sb and sn and sb != sn:
        notes.append(f"{label}: seeds differ (base {','.join(map(str, sorted(sb)))}; new {','.join(map(str, sorted(sn)))}).")
    if not gb.seeds or not gn.seeds:
        return rows  # nothing ran ok on one side: the runs row says it
    for m in QUALITY:
        qb, qn = gb.quality(m), gn.quality(m)
        if qb is None and qn is None:
            continue
        if qb is None or qn is None:
            rows.append(Row(*key, m, "quality", "missing" if qn is None else "new", None if qb is None else qb[0], None if qn is None else qn[0]))
            continue
        verdict, delta, band = quality_verdict(qb, qn, th.accuracy)
        rows.append(Row(*key, m, "quality", verdict, qb[0], qn[0], delta, band))
    for m, better in SPEED.items():
        vb, vn = gb.median(m), gn.median(m)
        if vb is None and vn is None:
            continue
        if m == "time_to_target_s" and (vb is None or vn is None):
            reached_b, reached_n = vb is not None, vn is not None
            if th.time is None:
                verdict = "unchecked"
            else:
                verdict = "worse" if reached_b and not reached_n else "better" if reached_n else "same"
            rows.append(Row(*key, m, "speed", verdict, vb if reached_b else "not reached", vn if reached_n else "not reached"))
            continue
        if vb is None or vn is None or vb <= 0 or vn <= 0:
            rows.append(Row(*key, m, "speed", "missing" if vn is None else "new", vb, vn))
            continue
        ratio = vn / vb
        if cb is not None and cn is not None:
            ratio = ratio / (cn / cb) if better == "low" else ratio * (cn / cb)
        rows.append(Row(*key, m, "speed", ratio_verdict(ratio, th.time, better == "high"), vb, vn, ratio))
    for m in MEMORY:
        vb, vn = gb.median(m), gn.median(m)
        if vb is None or vn is None or vb <= 0:
            continue
        if not memory_comparable:
            rows.append(Row(*key, m, "memory", "unchecked", vb, vn, vn / vb, note="CUDA peak vs process RSS"))
            continue
        rows.append(Row(*key, m, "memory", ratio_verdict(vn / vb, th.memory), vb, vn, vn / vb))
    return rows


def _short(s: str, n: int = 120) -> str:
    s = s.replace("|", "/").replace("\n", " ")
    return s if len(s) <= n else s[: n - 1] + "…"


def compare_refs(base_ref: str, new_ref: str, store_path: str, fail_on: str | None = None) -> Comparison:
    """The CLI's entry: two refs (session refs in ``store_path`` or baseline files) -> Comparison."""
    th = parse_fail_on(fail_on)
    return compare(load_side(base_ref, store_path), load_side(new_ref, store_path), th)
