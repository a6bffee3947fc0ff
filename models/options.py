"""Model options checked against the model's config dataclass before anything is built or trained.

An option (``--option hidden=0``, ``model_options = { score = "cosine" }``) overrides one field of a model's
frozen config. Left unchecked, a wrong one surfaces as a failed run with an opaque error deep in torch, or --
worse -- is taken for something else (``bidirectional="maybe"`` is a true value in Python). So every
option is checked here, once, against the field it overrides:

* its type is the field's annotation: ``bool`` takes true/false (and the strings "true"/"false", turned into
  booleans), ``int`` an integer, ``float`` a number (an integer is turned into a float), ``str`` a string;
  an optional field (``int | None``) takes what its type takes, or ``None`` (its default: not set);
* its value lies in the field's range, or among its choices, as the config class declares in its
  ``LIMITS`` (a class variable: field -> :class:`Range` or a tuple of allowed strings).

What ties several fields together (a bidirectional encoder needs an even width, heads must divide the
model width) stays with the model's constructor, which raises ``ValueError``; the harness builds the
model once on the meta device to ask it, before any run starts.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Any


class OptionError(ValueError):
    """An option refused: ``key`` names it, ``rule`` says what it must be (``"must be ..., got ..."``)."""

    def __init__(self, key: str, rule: str) -> None:
        super().__init__(f"option {key} {rule}")
        self.key, self.rule = key, rule


@dataclass(frozen=True)
class Range:
    """Numbers from ``low`` up to ``high``, each end inclusive unless ``*_open``; None: unbounded on that side."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, v: float) -> bool:
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        if self.high is not None and (v >= self.high if self.high_open else v > self.high):
            return False
        return True

    def describe(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


POSITIVE = Range(1)  # widths, depths, counts
NONNEGATIVE = Range(0)
DROPOUT = Range(0.0, 1.0, high_open=True)  # p = 1 would zero every activation


def check_options(config_cls: type, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked against ``config_cls``'s fields -> the same options with their values coerced.

    Every key must be a field of the config (``models.config`` says which are not); a value of the wrong
    type or out of its range raises :class:`OptionError`.
    """
    hints = typing.get_type_hints(config_cls)
    limits: dict[str, Any] = getattr(config_cls, "LIMITS", {})
    return {k: _check(k, v, hints[k], limits.get(k)) for k, v in options.items()}


def _optional(kind: Any) -> tuple[Any, bool]:
    """``X | None`` (or ``Optional[X]``) -> (``X``, True); any other annotation -> (it, False)."""
    args = typing.get_args(kind)  # (X, NoneType) for both spellings of a union with None
    if typing.get_origin(kind) is not typing.Literal and len(args) == 2 and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return kind, False


def _check(key: str, v: Any, kind: Any, limit: Any) -> Any:
    kind, optional = _optional(kind)
    if optional and v is None:  # the field's "not set" (its default)
        return None
    if kind is bool:
        if isinstance(v, str) and v.lower() in ("true", "false"):
            return v.lower() == "true"
        if not isinstance(v, bool):
            raise OptionError(key, f"must be true or false, got {v!r}")
        return v
    if kind is str:
        if not isinstance(v, str):
            raise OptionError(key, f"must be a string, got {v!r}")
        if isinstance(limit, tuple) and v not in limit:
            raise OptionError(key, f"must be one of {', '.join(limit)}, got {v!r}")
        return v
    if kind is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise OptionError(key, f"must be an integer{_want(limit)}, got {v!r}")
    elif kind is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise OptionError(key, f"must be a number{_want(limit)}, got {v!r}")
        if not math.isfinite(v):
            raise OptionError(key, f"must be a finite number{_want(limit)}, got {v!r}")
    else:  # a field type this checker does not know: leave it to the constructor
        return v
    if isinstance(limit, Range) and not limit.contains(v):
        raise OptionError(key, f"must be {limit.describe()}, got {v!r}")
    return float(v) if kind is float else v


def _want(limit: Any) -> str:
    return f" {limit.describe()}" if isinstance(limit, Range) else ""
