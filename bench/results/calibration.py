"""Reading a stored calibration (``bench.measure.calibrate`` takes it; sessions store it in their env).

Torch-free, so that compare and reports can read a store on a machine without torch.
"""

from __future__ import annotations

from typing import Any

from bench.results.metrics import finite


def _positive(cal: Any, key: str) -> float | None:
    """``cal[key]`` when ``cal`` is a stored calibration and the value a finite positive number, else None."""
    f = finite(cal.get(key)) if isinstance(cal, dict) else None
    return f if f is not None and f > 0 else None


def combined_seconds(cal: Any) -> float | None:
    """The normalising figure of a stored calibration, or None when absent or malformed."""
    return _positive(cal, "combined_s")


def peak_flops(cal: Any, amp: str = "off") -> float | None:
    """Measured matmul FLOP/s of a calibration in the precision ``amp`` (off = fp32), or None.

    Calibrations before per-precision peaks carry only the fp32 ``matmul_gflops``: it serves for ``off``.
    """
    peaks = cal.get("peak_gflops") if isinstance(cal, dict) else None
    g = _positive(peaks, amp) if isinstance(peaks, dict) else None
    if g is None and amp == "off":
        g = _positive(cal, "matmul_gflops")
    return None if g is None else g * 1e9


# Calibration repeats (median of several after warm-up) that spread wider than this -- (max - min) / median --
# were taken while other work took the cores: the session's speed figures are unreliable. On quiet machines
# the committed CPU baselines spread by 3-4 %; a 2-core machine running other jobs gave 57 % and 135 %.
NOISY_SPREAD = 0.5


def spread(cal: Any) -> float | None:
    """The larger (max - min) / median of the calibration's workloads, or None when not recorded."""
    if not isinstance(cal, dict):
        return None
    xs = [v for k in ("matmul_spread", "lstm_spread") if (v := finite(cal.get(k))) is not None]
    return max(xs) if xs else None


def busy(cal: Any) -> str:
    """Why a session's speed figures are unreliable, or "" when nothing says so: the one rule that ``compare``'s
    warning, the report's page and the end of a session all apply. The words follow "the base side's" or
    "session X's"."""
    s = spread(cal)
    if s is None or s <= NOISY_SPREAD:
        return ""
    return f"calibration repeats varied by {s:.0%} (max - min over median): the machine was busy while it ran"
