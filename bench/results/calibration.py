"""Reading a stored calibration (``bench.measure.calibrate`` takes it; sessions store it in their env).

Torch-free, so that compare and reports can read a store on a machine without torch.
"""

from __future__ import annotations

import math
from typing import Any


def _positive(cal: Any, key: str) -> float | None:
    """``cal[key]`` when ``cal`` is a stored calibration and the value a finite positive number, else None."""
    v = cal.get(key) if isinstance(cal, dict) else None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        return None
    return float(v)


def combined_seconds(cal: Any) -> float | None:
    """The normalising figure of a stored calibration, or None when absent or malformed."""
    return _positive(cal, "combined_s")


def peak_flops(cal: Any) -> float | None:
    """Measured fp32 matmul FLOP/s of a calibration (a practical CPU peak for MFU), or None."""
    g = _positive(cal, "matmul_gflops")
    return None if g is None else g * 1e9
