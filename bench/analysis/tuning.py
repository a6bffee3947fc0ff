"""Tuning curves and rankings by budget, from a tuning session's runs (``s2sbench tune``). No torch.

* **Expected best validation score after n trials** (Dodge et al. 2019, "Show Your Work", §3): with the N
  trial scores sorted, ``v_(1) <= ... <= v_(N)``, the maximum of n draws (with replacement) from their empirical
  distribution has expectation ``sum_i v_(i) * ((i / N)^n - ((i - 1) / N)^n)`` -- each sorted score times the
  probability that it is the largest of the n draws. At n = 1 it is the mean; as n grows it tends to the best.
* **Confidence bands** (Lourie, Cho & He 2024, "Show Your Work with Confidence", NAACL): a simultaneous band on
  the score distribution's CDF (opda's ``EmpiricalDistribution.confidence_bands``, the Learned-Miller-DeStefano
  band with equal-tailed intervals: opda's documentation gives it as almost the size of the highest-density one
  and much faster -- on 8 scores, 0.9 s against 3.8 s here, for every model of a report), turned into a band on
  the expected tuning curve: the upper CDF gives the
  lower curve and the lower CDF the upper one. The expected curve needs the support's bounds: exact match lies
  in [0, 1]. opda's band has exact coverage for a continuous score; exact match takes finitely many values, so
  trials can tie, and then it is conservative rather than exact. Without opda there are curves and no bands.
* **Rankings** of the models of one task at budgets n = 1, n = N / 2 and n = N (by the expected best validation
  score), and by the test score of the block's own recipe and of the tuned one (means over the fresh seeds), with
  ties kept as ties; whether the ranking changes with the budget, and between the recipes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.analysis.stats import summarize

BAND = "ld_equal_tailed"  # opda's method (module docstring)
CONFIDENCE = 0.80  # the band's coverage (the level opda's own examples use; with a handful of trials 95 % spans almost [0, 1])
REACH = 0.99  # "trials to reach 99 % of the best"
TIE = 1e-9  # scores closer than this rank together


def expected_max(scores: Sequence[float], n: int) -> float:
    """E[max of ``n`` draws with replacement from ``scores``] (Dodge et al. 2019, the closed form above)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    v = sorted(float(s) for s in scores)
    N = len(v)
    if N == 0:
        raise ValueError("no scores")
    return sum(x * ((i / N) ** n - ((i - 1) / N) ** n) for i, x in enumerate(v, 1))


def curve(scores: Sequence[float], budget: int | None = None) -> list[float]:
    """The expected tuning curve at n = 1 .. ``budget`` (default: the number of trials)."""
    return [expected_max(scores, n) for n in range(1, (budget or len(scores)) + 1)]


def bands(scores: Sequence[float], budget: int | None = None, confidence: float = CONFIDENCE, low: float = 0.0,
          high: float = 1.0) -> tuple[list[float], list[float]] | None:
    """(lower, upper) confidence band of the expected tuning curve at n = 1 .. budget, from opda; None without it.

    Deterministic: the band's construction draws from a generator seeded here.
    """
    try:
        import numpy as np
        from opda.nonparametric import EmpiricalDistribution
    except ImportError:
        return None
    ys = np.array([float(s) for s in scores])
    ns = np.arange(1, (budget or len(ys)) + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # ties (module docstring): conservative, not exact
        lo_cdf, _, hi_cdf = EmpiricalDistribution.confidence_bands(ys, confidence, a=low, b=high, generator=np.random.default_rng(0),
                                                                   method=BAND, n_jobs=1)
    lower = hi_cdf.average_tuning_curve(ns)  # the upper CDF puts its mass lower: the lower curve
    upper = lo_cdf.average_tuning_curve(ns)
    return [float(x) for x in lower], [float(x) for x in upper]


def trials_to_reach(scores: Sequence[float], fraction: float = REACH, budget: int | None = None) -> int | None:
    """The fewest trials n whose expected best reaches ``fraction`` of the best score seen; None past ``budget``."""
    best = max(scores)
    for n, e in enumerate(curve(scores, budget), 1):
        if e >= fraction * best - TIE:
            return n
    return None


def ranks(values: dict[str, float]) -> dict[str, int]:
    """Competition ranks, best (highest) first; models closer than ``TIE`` share a rank (1, 1, 3)."""
    order = sorted(values, key=lambda m: -values[m])
    out: dict[str, int] = {}
    for i, m in enumerate(order):
        prev = order[i - 1] if i else None
        out[m] = out[prev] if prev is not None and abs(values[prev] - values[m]) <= TIE else i + 1
    return out


def ordering(values: dict[str, float], order: Sequence[str] | None = None) -> str:
    """``attention = transformer > gnmt``: the ranking as text, ties joined by ``=`` (in ``order`` within a tie)."""
    r = ranks(values)
    pos = {m: i for i, m in enumerate(order or sorted(values))}
    groups: dict[int, list[str]] = {}
    for m in sorted(values, key=lambda m: (r[m], pos.get(m, len(pos)))):
        groups.setdefault(r[m], []).append(m)
    return " > ".join(" = ".join(g) for _, g in sorted(groups.items()))


@dataclass
class StudyResult:
    """One model's tuning on one task: its trial scores in trial order, and its test scores at the fresh seeds."""

    task: str
    model: str
    size: str
    study: str
    order: int = 0  # the story's order (``model_meta``), for tables
    trials: dict[int, float] = field(default_factory=dict)  # trial index -> validation score (0 for a failed trial)
    params: dict[int, dict[str, Any]] = field(default_factory=dict)
    space: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] | None = None  # the tuned recipe
    default_test: list[float] = field(default_factory=list)
    tuned_test: list[float] = field(default_factory=list)

    @property
    def scores(self) -> list[float]:
        return [self.trials[i] for i in sorted(self.trials)]


def studies(runs: Iterable[Any]) -> list[StudyResult]:
    """The studies of a tuning session from its stored runs (``RunRecord``s carrying ``metrics["tune"]``)."""
    out: dict[str, StudyResult] = {}
    for r in runs:
        note = (r.metrics or {}).get("tune")
        if not note:
            continue
        st = out.setdefault(note["study"], StudyResult(r.task, r.model, r.size, note["study"],
                                                       int((r.metrics.get("model_meta") or {}).get("order", 0))))
        ok = r.status == "ok"
        if (r.metrics.get("model_meta") or {}).get("order") is not None:
            st.order = int(r.metrics["model_meta"]["order"])
        if note["role"] == "trial":
            st.trials[int(note["trial"])] = float(r.metrics.get("valid_exact_match", 0.0)) if ok else 0.0
            st.params[int(note["trial"])] = note.get("params", {})
            st.space = note.get("space", st.space)
        elif note["role"] in ("default", "tuned"):
            (st.default_test if note["role"] == "default" else st.tuned_test).append(float(r.metrics["test_exact_match"]) if ok else 0.0)
            if note["role"] == "tuned":
                st.best = note.get("params")
    return sorted(out.values(), key=lambda s: (s.task, s.size, s.order, s.model))


def budgets(budget: int) -> list[int]:
    """The budgets a ranking is shown at: 1, half the budget and the whole (distinct, in order)."""
    return sorted({1, max(1, budget // 2), budget})


@dataclass
class Ranking:
    """The models of one task and size ranked at each budget and by recipe, and what changes."""

    task: str
    size: str
    models: list[str]
    budget: int
    at: dict[int, dict[str, float]]  # n -> model -> expected best validation score
    default: dict[str, float]  # model -> mean test score, the block's recipe
    tuned: dict[str, float]  # model -> mean test score, the tuned recipe

    @property
    def changes_with_budget(self) -> bool:
        return len({ordering(v, self.models) for v in self.at.values()}) > 1

    @property
    def changes_with_tuning(self) -> bool | None:
        if not self.default or not self.tuned:
            return None
        return ordering(self.default, self.models) != ordering(self.tuned, self.models)

    def winners(self, values: dict[str, float]) -> list[str]:
        r = ranks(values)
        return [m for m in self.models if r.get(m) == 1]


def rankings(results: Sequence[StudyResult]) -> list[Ranking]:
    """One :class:`Ranking` per task and size, over the models with trials there (each at the smallest common budget)."""
    groups: dict[tuple[str, str], list[StudyResult]] = {}
    for s in results:
        if s.trials:
            groups.setdefault((s.task, s.size), []).append(s)
    out = []
    for (task, size), ss in sorted(groups.items()):
        budget = min(len(s.trials) for s in ss)
        at = {n: {s.model: expected_max(s.scores[:budget], n) for s in ss} for n in budgets(budget)}
        mean = lambda xs: summarize(xs).mean  # noqa: E731
        out.append(Ranking(task, size, [s.model for s in ss], budget, at,
                           {s.model: mean(s.default_test) for s in ss if s.default_test},
                           {s.model: mean(s.tuned_test) for s in ss if s.tuned_test}))
    return out


def ranking_rows(r: Ranking) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): per model, its rank and score at each budget and by recipe."""
    rk = {n: ranks(v) for n, v in r.at.items()}
    rd, rt = ranks(r.default), ranks(r.tuned)
    headers = ["model"] + [f"n = {n}" for n in r.at] + ["default recipe (test)", "tuned (test)"]
    rows = []
    for m in r.models:
        row = [m] + [f"#{rk[n][m]} ({r.at[n][m]:.1%})" for n in r.at]
        row += [f"#{rd[m]} ({r.default[m]:.1%})" if m in r.default else "-", f"#{rt[m]} ({r.tuned[m]:.1%})" if m in r.tuned else "-"]
        rows.append(row)
    return headers, rows


def verdict(r: Ranking) -> str:
    """One sentence: does the ranking change with the budget, and between the recipes; who wins."""
    first, last = r.at[min(r.at)], r.at[max(r.at)]
    budget = (f"the ranking changes with the budget (n = {min(r.at)}: {ordering(first, r.models)}; n = {max(r.at)}: "
              f"{ordering(last, r.models)})" if r.changes_with_budget else
              f"the ranking is the same at every budget ({ordering(last, r.models)})")
    tuned = r.changes_with_tuning
    if tuned is None:
        recipe = "the finals (test, fresh seeds) are not all stored yet"
    else:
        wd, wt = r.winners(r.default), r.winners(r.tuned)
        recipe = (f"tuning {'changes' if tuned else 'does not change'} the test ranking (default recipe: {ordering(r.default, r.models)}; "
                  f"tuned: {ordering(r.tuned, r.models)}), and {'the winner stays' if wd == wt else 'the winner changes'}: "
                  f"{' = '.join(wd)} -> {' = '.join(wt)}")
    return f"{r.task} ({r.size}, {r.budget} trials per model): {budget}; {recipe}."


def space_text(space: dict[str, Any]) -> str:
    """A study's stored search space as one line (``lr log-uniform [0.0001, 0.01], batch_size in {32, 64}``)."""
    parts = []
    for name, p in space.items():
        if p.get("kind") == "choice":
            parts.append(f"{name} in {{{', '.join(map(str, p['choices']))}}}")
        else:
            how = {"log": "log-uniform", "int": "integer", "float": "uniform"}.get(p.get("kind"), "")
            parts.append(f"{name} {how} [{p['low']:g}, {p['high']:g}]")
    return ", ".join(parts)


def summary_rows(results: Sequence[StudyResult]) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): per study, the best validation score, trials to 99 % of it, test scores and the tuned recipe."""
    headers = ["task", "model", "trials", "best valid", f"trials to {REACH:.0%} of best", "default test", "tuned test", "tuned recipe"]
    rows = []
    for s in results:
        sc = s.scores
        n99 = trials_to_reach(sc) if sc else None

        def test(xs: list[float]) -> str:
            if not xs:
                return "-"
            m = summarize(xs)
            return f"{m.mean:.1%}" + (f" ± {m.half_width:.1%}" if not math.isnan(m.half_width) else "") + f" ({m.n})"

        recipe = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in (s.best or {}).items()) or "-"
        reach = "-" if not sc or max(sc) <= 0 else (str(n99) if n99 else f"> {len(sc)}")  # a best of 0: nothing to reach
        rows.append([s.task, s.model, str(len(sc)), f"{max(sc):.1%}" if sc else "-", reach,
                     test(s.default_test), test(s.tuned_test), recipe])
    return headers, rows
