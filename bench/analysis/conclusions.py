"""What a set of runs lets one conclude -- and what it does not.

Per task (and size, and whatever else sets one comparison apart), the most accurate model and the fastest,
each with its 95 % interval over seeds (Student t, ``bench.analysis.stats``), or "not separable": a leader is
named only when its interval lies wholly on the better side of the runner-up's. With one seed there is no
interval, so nothing is separable, however far apart the two numbers look -- one seed of a 5-epoch run is
one draw of the training's randomness (Dror et al. 2019, "Deep Dominance"; Bouthillier et al. 2021,
"Accounting for Variance in Machine Learning Benchmarks"). On a machine that was busy while the session ran
(its calibration repeats varied widely, ``bench.results.calibration.busy``), speed is not ranked at all.

The same rule decides where a table may mark a value "best" (:func:`separated`), so the session's last lines,
the report's headline and its tables never disagree. Pure functions of the tidy frame; no torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.analysis import configs
from bench.analysis.stats import Summary, summarize
from bench.results.calibration import busy, spread
from bench.results.metrics import metric

ACCURACY = "test_exact_match"  # the book's metric: the whole answer right
SPEED = "train_tokens_per_s"  # steady-state training throughput (the first epoch, warm-up, left out)
RULE = ("A model is named best only when its 95 % interval over seeds (Student t) lies wholly on the better side of the "
        "runner-up's; with one seed there is no interval, so no ranking is separable, and on a busy machine speed is not ranked.")


def separated(best: Summary, other: Summary, better: str) -> bool:
    """``best`` beats ``other`` beyond the seed-to-seed noise: both have two seeds or more, and the intervals do not meet."""
    if best.n < 2 or other.n < 2 or math.isnan(best.half_width) or math.isnan(other.half_width):
        return False
    return best.low > other.high if better == "high" else best.high < other.low


@dataclass(frozen=True)
class Entry:
    label: str  # the model, with its options when it has any
    summary: Summary  # over seeds, in the catalogue's displayed unit (%, tokens/s)


@dataclass(frozen=True)
class Ranking:
    metric: str  # a catalogue name
    entries: tuple[Entry, ...]  # best first
    blocked: str = ""  # why this metric is not ranked at all here (a busy machine), else empty

    @property
    def leader(self) -> Entry | None:
        return self.entries[0] if self.entries else None

    @property
    def separable(self) -> bool:
        if self.blocked or len(self.entries) < 2:
            return False
        return separated(self.entries[0].summary, self.entries[1].summary, metric(self.metric).better or "high")

    def why_not(self) -> str:
        """Why the leader cannot be named ("" when it can, or when there is one model)."""
        if self.blocked:
            return self.blocked
        if len(self.entries) < 2 or self.separable:
            return ""
        a, b = self.entries[0], self.entries[1]
        if a.summary.n < 2 or b.summary.n < 2:
            return "one seed" if max(a.summary.n, b.summary.n) < 2 else "one seed of " + (a.label if a.summary.n < 2 else b.label)
        return "intervals overlap"


@dataclass(frozen=True)
class Headline:
    task: str
    scope: str  # what else sets this comparison apart: "size small", "size small, epochs=5"
    accurate: Ranking
    fastest: Ranking


def rank(values: Mapping[str, Sequence[float]], name: str, blocked: str = "") -> Ranking:
    """label -> per-seed values (stored units) -> the ranking, best first (by mean; ties by label)."""
    m = metric(name)
    sign = -1 if m.better == "high" else 1
    entries = [Entry(label, summarize([d for v in vs if (d := m.display(v)) is not None])) for label, vs in values.items()]
    entries = [e for e in entries if e.summary.n > 0]
    return Ranking(name, tuple(sorted(entries, key=lambda e: (sign * e.summary.mean, e.label))), blocked)


def _per_seed(g: pd.DataFrame, name: str) -> dict[str, list[float]]:
    """label -> one value per seed (a seed run in several sessions is averaged first, so it weighs as one)."""
    out: dict[str, list[float]] = {}
    for label, h in g.groupby("label", sort=False):
        v = pd.to_numeric(h[name], errors="coerce")
        out[str(label)] = [float(x) for x in v.groupby(h["seed"]).mean().dropna()]
    return out


def headlines(runs: pd.DataFrame, envs: Mapping[str, Mapping[str, Any]] | None = None) -> list[Headline]:
    """The tidy runs frame (``bench.results.tidy.runs_frame``) -> one headline per comparison: a task, a size, a
    device, and training settings the models share. ``envs``: session id -> environment, for the busy-machine rule."""
    if runs.empty:
        return []
    ok = runs[(runs["status"] == "ok") & (runs["mode"] != "throughput")].copy() if "mode" in runs else runs[runs["status"] == "ok"].copy()
    if ok.empty:
        return []
    ok["label"] = [configs.model_label(m, o) for m, o in zip(ok["model"], ok["model_options"])]
    flats = [configs.flatten(c) for c in ok["config"]]
    ok["scope_flat"] = [{**configs.without(f, configs.MODEL_FIELDS + ("size",)), configs.DEVICE: d} for f, d in zip(flats, ok["device"])]
    ok["scope_id"] = [configs.digest(f) for f in ok["scope_flat"]]
    noisy = {sid: f"the machine was busy, calibration spread {spread(env.get('calibration')):.0%}"
             for sid, env in (envs or {}).items() if busy(env.get("calibration"))}
    out = []
    for task, by_task in ok.groupby("task", sort=False):
        scopes = {sid: f for sid, f in zip(by_task["scope_id"], by_task["scope_flat"])}
        labels = configs.labels(scopes)
        for (size, sid), g in by_task.groupby(["size", "scope_id"], sort=False):
            busy_why = next((noisy[s] for s in dict.fromkeys(g["session"]) if s in noisy), "")
            scope = ", ".join(x for x in (f"size {size}", labels.get(sid, "")) if x)
            out.append(Headline(str(task), scope, rank(_per_seed(g, ACCURACY), ACCURACY),
                                rank(_per_seed(g, SPEED), SPEED, blocked=busy_why)))
    return out


def value_text(name: str, s: Summary) -> str:
    """``91.6 %``, or with an interval ``91.6 % [89.0, 94.2]``."""
    m = metric(name)
    unit = " %" if m.unit == "%" else " tok/s" if name == SPEED else f" {m.unit}"
    body = m.format(s.mean) + unit
    if s.n >= 2 and not math.isnan(s.half_width):
        body += f" [{m.format(s.low)}, {m.format(s.high)}]"
    return body


def ranking_text(r: Ranking) -> str:
    """One clause: ``gnmt 99.6 % [99.1, 100.0], ahead of attention 91.6 % [...]``, or why it cannot be said."""
    if not r.entries:
        return "no figure"
    a = r.entries[0]
    if len(r.entries) == 1:
        return f"{a.label} {value_text(r.metric, a.summary)} (the only model)"
    b = r.entries[1]
    if r.separable:
        return f"{a.label} {value_text(r.metric, a.summary)}, ahead of {b.label} {value_text(r.metric, b.summary)}"
    return (f"not separable ({r.why_not()}): {a.label} {value_text(r.metric, a.summary)}, "
            f"then {b.label} {value_text(r.metric, b.summary)}")


def lines(hs: Iterable[Headline]) -> list[str]:
    """Each headline as three lines of plain text (the end of a session, the report's Markdown)."""
    out = []
    for h in hs:
        out += [f"{h.task} ({h.scope})", f"  most accurate: {ranking_text(h.accurate)}", f"  fastest (training): {ranking_text(h.fastest)}"]
    return out


def caveats(envs: Mapping[str, Mapping[str, Any]], hs: Sequence[Headline]) -> list[str]:
    """What limits every figure of these sessions (session id -> environment), in the words both the end of a session
    and the report use: a busy machine's speed (the rule ``compare`` warns with), one seed per model, and the suite's own
    note (``note`` in its file, recorded with the session)."""
    out = [f"Session {sid}'s {why}, so its speed figures are unreliable and no model is ranked on speed."
           for sid, env in envs.items() if (why := busy(env.get("calibration")))]
    if any(len(h.accurate.entries) > 1 for h in hs) and all(e.summary.n < 2 for h in hs for e in h.accurate.entries):
        out.append("One seed per model: no ranking can be told from the seed-to-seed noise; run several seeds (--seeds 0,1,2) for "
                   "intervals.")
    notes = {f"Suite {env.get('suite') or ''}: {n}".replace("Suite :", "Suite:") for env in envs.values() if (n := env.get("suite_note"))}
    return out + sorted(notes)


def session_lines(runs: pd.DataFrame, env: Mapping[str, Any], session: str) -> list[str]:
    """What the end of ``s2sbench run`` prints: the headlines, and what limits them (:func:`caveats`)."""
    hs = headlines(runs, {session: env})
    if not hs:
        return []
    out = ["what was found (the report has the tables, the figures and the rule):"]
    out += ["  " + ln for ln in lines(hs)]
    return out + ["  " + c for c in caveats({session: env}, hs)]
