"""The two sides of a comparison: a stored session or a baseline file, as groups of per-seed values.

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
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.analysis import configs
from bench.errors import UserError
from bench.results import baseline
from bench.results.calibration import combined_seconds
from bench.results.metrics import finite, finite_as_stored, of_kind
from bench.results.store import Store
from bench.results.tidy import config_of, runs_frame

# The metrics compared, from the one catalogue: quality (mean over seeds), speed and memory (medians).
QUALITY = tuple(m.name for m in of_kind("quality"))
SPEED: dict[str, str] = {m.name: m.better for m in of_kind("speed")}  # "low": a time; "high": a throughput
MEMORY = tuple(m.name for m in of_kind("memory"))
# per-seed values kept in a baseline (the metrics above plus what explains them)
PER_SEED = QUALITY + tuple(SPEED) + MEMORY + ("params", "epochs")


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
        return [f for s in sorted(self.seeds) if (f := finite(self.seeds[s].get(metric))) is not None]

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
            g = groups[key] = Group(str(r["task"]), model, str(r["size"]), config_hashes={h} if h else set(),
                                    config=config_of(r.get("config")))
        seed = int(r["seed"])
        g.seeds.pop(seed, None)
        g.failed.pop(seed, None)
        if r["status"] == "ok":
            g.seeds[seed] = {m: finite_as_stored(r.get(m)) for m in PER_SEED}
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


# --- baselines: the file is bench.results.baseline's; here a side becomes one, and one a side -----------------
def as_baseline(side: Side, name: str) -> baseline.Baseline:
    """A side as a baseline: its groups' per-seed values, with their summary for readers of the file."""
    entries = tuple(baseline.Entry(task=g.task, model=g.model, size=g.size, config_hashes=tuple(sorted(g.config_hashes)),
                                   config=g.config, seeds=g.seeds, failed=g.failed, summary=g.summary())
                    for g in side.groups.values())
    return baseline.Baseline(name, side.info or {"id": side.session, "status": side.status}, side.env, side.calibration, entries)


def side_from_baseline(b: baseline.Baseline, path: str = "<baseline>") -> Side:
    groups: dict[tuple[str, str, str, str | None], Group] = {}
    for e in b.entries:
        g = Group(e.task, e.model, e.size, seeds=dict(e.seeds), failed=dict(e.failed), config_hashes=set(e.config_hashes), config=e.config)
        groups[g.key] = g
    sid = b.session.get("id")
    label = f"baseline {b.name} ({path}" + (f", session {sid})" if sid else ")")
    return Side(label, sid, b.session.get("status"), b.env, b.calibration, groups, dict(b.session))


def save_baseline(store_path: str, ref: str, name: str, directory: str = baseline.DEFAULT_DIR, force: bool = False) -> tuple[str, Side]:
    """Write ``directory/NAME.json`` from a stored session. -> (path, the side saved).

    An existing baseline of that name is replaced only with ``force``: a committed baseline is what CI compares
    against, and overwriting it silently moves the gate."""
    n = baseline.name(name)
    if not force:
        baseline.refuse_existing(os.path.join(directory, n + ".json"))
    side = side_from_store(store_path, ref)
    return baseline.save(as_baseline(side, n), directory), side


def load_baseline(path: str) -> Side:
    return side_from_baseline(baseline.load(path), path)
