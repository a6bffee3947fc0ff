"""``--fail-on``: how much worse a figure may get before compare calls it a regression.

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
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench.errors import UserError


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
                raise UserError(f"--fail-on: accuracy is an absolute drop in percentage points: write accuracy:-{m['num']}pt, not "
                                f"{item.strip()!r}")
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
