"""Regression tracking: two sessions, or a session and a committed baseline -> ratios, verdicts, exit code.

The sides are ``bench.regress.sides``, the thresholds ``bench.regress.thresholds``, the verdict maths
``bench.regress.verdicts`` and which groups are compared ``bench.regress.pairing``; here one comparison is
assembled from them, with its warnings, notes and Markdown rendering.

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

A group present on one side only is "missing" (in the base, not the new side) or "new": shown, not a
failure by itself; where both sides have the task, model and size but in different configurations, the group
is "unpaired" and the warnings say which fields differ (a changed default unpairs every group: re-save the
baseline with the change that made it). A run that failed on the new side where the base's same seed was fine
is "worse" (a regression); a failure the base had and the new side fixed is "better". Exit code
(``Comparison.exit_code``): 1 when any verdict is "worse", when a configuration is unpaired, or when nothing
was compared at all (a gate that compares nothing must not pass); 0 otherwise; bad input (unknown session,
unreadable baseline, bad ``--fail-on``) raises ``UserError`` (exit 2 in the CLI).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.analysis.environment import differences
from bench.analysis.markdown import table
from bench.regress.pairing import model_labels, pair_groups, unpaired_reasons
from bench.regress.sides import MEMORY, QUALITY, SPEED, Group, Side, load_side
from bench.regress.thresholds import Thresholds, parse_fail_on
from bench.regress.verdicts import quality_verdict, ratio_verdict
from bench.results.calibration import busy
from bench.results.metrics import BY_NAME

COLUMNS = ("task", "model", "size", "metric", "base", "new", "ratio / Δ", "verdict")
SYMBOLS = {"better": "✅ better", "same": "➖ same", "worse": "❌ worse", "missing": "❔ missing", "new": "🆕 new",
           "unchecked": "· unchecked"}


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

    def compared(self) -> int:
        """How many groups were compared: those whose configuration has an equal on the other side."""
        return len({(r.task, r.model, r.size) for r in self.rows if r.verdict not in ("missing", "new")})

    def exit_code(self) -> int:
        """1 on a regression; 1 when a configuration could not be paired: a gate that silently skips a group whose
        config changed (a new default, a suite edit) checks nothing there -- re-record the baseline; and 1 when nothing
        paired at all (other models, another suite): a gate that compares nothing must not pass."""
        return 1 if self.regressions() or self.unpaired or not self.compared() else 0

    def summary_line(self) -> str:
        reg = self.regressions()
        kinds: dict[str, int] = {}
        for r in reg:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        head = (f"❌ {len(reg)} regression{'s' if len(reg) != 1 else ''} (" + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + ")"
                if reg else "❌ configurations changed: not compared (re-record the baseline if the change is intended)" if self.unpaired
                else "❌ nothing compared: no configuration of one side is on the other (another suite, other models?)"
                if not self.compared()
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
            cells = ([r.task, r.model, r.size, metric_label(r.metric), cell_text(r.metric, r.base), cell_text(r.metric, r.new),
                      fmt_change(r), SYMBOLS.get(r.verdict, r.verdict) + (f" ({r.note})" if r.note else "")] for r in rows)
            lines.append(table(COLUMNS, cells, align="llllrrrl"))
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


def cell_text(metric: str, v: Any) -> str:
    """A base or new cell for people. The figures in it were read with ``bench.results.metrics.finite`` when the
    side was loaded; what is text here is compare's own ("not reached", "2/3" runs ok), shown as it is."""
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


IMPLAUSIBLE_CALIBRATION = 3.0  # the same device model calibrating this many times faster/slower: a measurement gone wrong


def _env_warnings(base: Side, new: Side) -> list[str]:
    out = []
    for k, what, (a, b) in differences([base.env, new.env]):
        out.append(f"The two sides ran on different {what} (base {a}, new {b}): speed and memory ratios mix machine and code"
                   + (" even after calibration." if k != "threads" else "."))
    for side, which in ((base, "base"), (new, "new")):
        why = busy(side.calibration)  # the rule the report and the end of a session apply too
        if why:
            out.append(f"The {which} side's {why}, so its speed figures are unreliable.")
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
            warnings.append(f"The calibrations differ ×{r:.2f} on the same device ({base.env.get('device_name')}): more than machines of "
                            "one model differ, so one was probably taken under heavy load (or thread oversubscription) and every "
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
        names = model_labels(bs + ns)
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
            rows.append(Row(*key, m, "quality", "missing" if qn is None else "new", None if qb is None else qb[0],
                            None if qn is None else qn[0]))
            continue
        verdict, delta, band = quality_verdict(qb, qn, th.accuracy, BY_NAME[m].better == "low")
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
    """One line of at most ``n`` characters (a ``|`` is the table writer's to escape)."""
    s = s.replace("\n", " ")
    return s if len(s) <= n else s[: n - 1] + "…"


def compare_refs(base_ref: str, new_ref: str, store_path: str, fail_on: str | None = None) -> Comparison:
    """The CLI's entry: two refs (session refs in ``store_path`` or baseline files) -> Comparison."""
    th = parse_fail_on(fail_on)
    return compare(load_side(base_ref, store_path), load_side(new_ref, store_path), th)
