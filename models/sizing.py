"""The parameter budgets every model's sizes are held to, how a model's parameters are counted, and the search
that sizes a model given as a function of one width (:class:`ByWidth`) to those budgets."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

# Parameter budget per size, for a character vocabulary of about 60 symbols.
BUDGETS: dict[str, int] = {"tiny": 50_000, "small": 400_000, "base": 3_000_000, "large": 20_000_000, "xl": 100_000_000}
BUDGET_VOCAB = 60


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


TOLERANCE = 0.10  # every budgeted size lies within +-10 % of its budget: a difference in a report is architecture, not size


@dataclass(frozen=True)
class ByWidth:
    """A model's sizes as a function of one width, instead of a table written by hand.

    The registry searches, for every budget of ``BUDGETS``, the width whose config has a parameter count within
    ``TOLERANCE`` of it (counted at ``BUDGET_VOCAB`` on the meta device, as every size is), and says which budgets no
    width in ``[low, high]`` reaches. Parameters must not shrink as the width grows (the search bisects), which holds
    for any width that sizes layers.
    """

    config: Callable[[int], Any]  # width -> the frozen config at that width (its vocab_size is set by the registry)
    low: int = 8  # the narrowest width searched
    high: int = 8192  # the widest width searched
    step: int = 8  # widths searched are multiples of this: 8 keeps matmuls on tensor-core tiles, 1 fits budgets closest
    named: Mapping[str, Any] = field(default_factory=dict)  # sizes given as they are beside the searched ones (a paper's own setting)

    def __post_init__(self) -> None:
        if not callable(self.config):
            raise TypeError("ByWidth.config must be a function of the width")
        if self.step < 1 or self.low < 1 or self.high < self.low or _first(self) > self.high:
            raise ValueError(f"ByWidth needs 1 <= low <= high and a multiple of step between them; got low={self.low}, high={self.high}, "
                             f"step={self.step}")


@dataclass(frozen=True)
class Fit:
    """One budget's outcome: the width chosen and its parameter count, or ``why`` no width reaches the budget."""

    width: int
    params: int
    why: str | None = None


def _first(by: ByWidth) -> int:
    return -(-by.low // by.step) * by.step


def fit_widths(count: Callable[[int], int], by: ByWidth, budgets: Mapping[str, int] = BUDGETS,
               tolerance: float = TOLERANCE) -> dict[str, Fit]:
    """For each budget, the width of ``by``'s grid (multiples of ``step`` in ``[low, high]``) whose ``count(width)`` is
    closest to it -- by bisection, each count asked once -- and, where even that one is off by more than
    ``tolerance``, why: the widest is too small, the narrowest too large, or two neighbouring widths straddle it."""
    first, n = _first(by), (by.high - _first(by)) // by.step + 1
    seen: dict[int, int] = {}

    def at(i: int) -> int:
        if i not in seen:
            seen[i] = count(first + i * by.step)
        return seen[i]

    out: dict[str, Fit] = {}
    for size, budget in budgets.items():
        lo, hi = 0, n - 1
        if at(hi) < budget:
            best = [hi]
        elif at(lo) >= budget:
            best = [lo]
        else:  # at(lo) < budget <= at(hi): the first width at or over the budget, and the one below it
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if at(mid) < budget else (lo, mid)
            best = [lo, hi]
        i = min(best, key=lambda j: (abs(at(j) - budget), j))
        w, p = first + i * by.step, at(i)
        why = None
        pct = f"{tolerance * 100:g} %"
        if abs(p - budget) > tolerance * budget:
            if p < budget and i == n - 1:
                why = f"the widest width searched ({w}) gives {p:,} parameters, more than {pct} under the budget of {budget:,}"
            elif p > budget and i == 0:
                why = f"the narrowest width searched ({w}) gives {p:,} parameters, more than {pct} over the budget of {budget:,}"
            else:
                a, b = best[0], best[-1]
                why = (f"no width is within {pct} of the budget of {budget:,}: width {first + a * by.step} gives {at(a):,} parameters, "
                       f"width {first + b * by.step} {at(b):,}")
        out[size] = Fit(w, p, why)
    return out
