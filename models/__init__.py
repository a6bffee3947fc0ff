"""Model registry: ``build(name, vocab_size, size=...)`` and ``names()``.

Each architecture registers a factory and a table of configs by size. Sizes are *equivalent*: at each
size every model's parameter count lies within +-10 % of ``BUDGETS[size]`` (tests check it), so a
difference in the report is a difference of architecture, not of budget. Size ``book`` is the book's own
setting and exists only for the models the book has.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from models.base import Generation, Seq2Seq
from models.options import OptionError, check_options
from models.registry import _REGISTRY, ModelEntry, ModelMeta, register

# Parameter budget per size, for a character vocabulary of about 60 symbols.
BUDGETS: dict[str, int] = {"tiny": 50_000, "small": 400_000, "base": 3_000_000}
BUDGET_VOCAB = 60


def _load() -> None:
    """Import every module of the family (cached after the first time), whichever was imported first."""
    # Imported for their registration side effect.
    for mod in ("seq2seq", "attention", "gnmt", "transformer", "ntm"):  # registration order is irrelevant: ``names`` sorts by story
        try:
            importlib.import_module(f"models.{mod}")
        except ModuleNotFoundError as e:  # a model file not written yet
            if e.name != f"models.{mod}":
                raise


def names() -> list[str]:
    """Every registered model, in the story's order."""
    _load()
    return sorted(_REGISTRY, key=lambda n: _REGISTRY[n].meta.order)


def reference() -> str:
    """The model a report's speed ratios are relative to by default."""
    return next(n for n in names() if _REGISTRY[n].meta.reference)


def entry(name: str) -> ModelEntry:
    _load()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def sizes(name: str) -> list[str]:
    return list(entry(name).sizes)


def config(name: str, vocab_size: int, size: str = "small", **overrides: Any) -> Any:
    """The frozen config of ``name`` at ``size``, with ``vocab_size`` and any field overrides applied.

    Overrides (model options) are checked against the config's fields, types and ranges first
    (``models.options``): ``KeyError`` for an unknown one, ``OptionError`` (a ``ValueError``) for a bad value.
    """
    e = entry(name)
    if size not in e.sizes:
        raise KeyError(f"model {name!r} has no size {size!r}; sizes: {', '.join(e.sizes)}")
    base = e.sizes[size]
    fields = {f.name for f in dataclasses.fields(base)}  # not the LIMITS class variable
    unknown = set(overrides) - fields
    if unknown:
        raise KeyError(f"model {name!r} has no option {', '.join(sorted(unknown))}; options: {', '.join(sorted(fields - {'vocab_size'}))}")
    return replace(base, vocab_size=vocab_size, **check_options(type(base), overrides))


def build(name: str, vocab_size: int, size: str = "small", **overrides: Any) -> Seq2Seq:
    return entry(name).cls(config(name, vocab_size, size, **overrides))


def count_params(model: Seq2Seq) -> int:
    return sum(p.numel() for p in model.parameters())


Factory = Callable[..., Seq2Seq]

__all__ = ["BUDGETS", "BUDGET_VOCAB", "Generation", "ModelMeta", "OptionError", "reference", "Seq2Seq", "build", "config", "count_params", "entry", "names", "register", "sizes"]
