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
