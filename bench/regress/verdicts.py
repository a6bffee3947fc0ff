"""The verdict maths: better / same / worse for one figure, under a threshold (``bench.regress.thresholds``).

A quality mean is judged by its change in points against ``max(threshold, 2 x pooled std over seeds)``, what
reseeding alone produces; a time, a throughput or a memory peak by its new/base ratio (a throughput by its
time-equivalent ratio, the inverse).
"""

from __future__ import annotations

import math


def _pooled_std(a: tuple[float, float, int], b: tuple[float, float, int]) -> float | None:
    """Pooled sample std (pt) over the sides that have at least two seeds; None when neither has."""
    num = den = 0.0
    for _, s, n in (a, b):
        if n >= 2:
            num += (n - 1) * s * s
            den += n - 1
    return math.sqrt(num / den) if den else None


def quality_verdict(base: tuple[float, float, int], new: tuple[float, float, int], threshold: float | None,
                    lower_is_better: bool = False) -> tuple[str, float, float | None]:
    """(mean %, std %, n) of each side -> (verdict, delta pt, band pt).

    A change within ``max(threshold, 2 x pooled std)`` -- what reseeding alone produces -- is "same".
    ``lower_is_better``: an error rate (the catalogue's ``better == "low"``), whose rise is the regression.
    """
    delta = new[0] - base[0]
    if threshold is None:
        return "unchecked", delta, None
    sp = _pooled_std(base, new)
    band = max(threshold, 2 * sp) if sp is not None else threshold
    gain = -delta if lower_is_better else delta
    if gain < -band:
        return "worse", delta, band
    if gain > band:
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
