"""Model registry: ``build(name, vocab_size, size=...)`` and ``names()``.

Each architecture registers a factory and a table of configs by size. Sizes are *equivalent*: at each
size every model's parameter count lies within +-10 % of ``BUDGETS[size]`` (tests check it), so a
difference in the report is a difference of architecture, not of budget. Size ``book`` is the book's own
setting and exists only for the models the book has.

Sizes ``tiny``, ``small`` and ``base`` train on a CPU; ``large`` (20 M) and ``xl`` (100 M) are for a GPU,
where the smaller models measure kernel launches rather than the architecture (docs/design.md, "On a GPU:
measure the architecture, not the launches"). Their widths are multiples of 64 so that matmuls tile onto
tensor cores. ``param_count`` counts a size without
allocating it (the model is built on the meta device), so listing or balancing a suite of ``xl`` runs
costs nothing.

``longest_sequence(name, size)`` says how long a source or target a model can take: ``None`` for the
recurrent models (no limit but time and memory), the position table's length for the Transformer. A
harness checks it before running a sweep point it cannot run. A config declares its limit with a
``longest_sequence() -> int | None`` method; a config without one has no limit.
``host_sync(name, size)`` says why a model's forward pass waits for the host (packing needs the lengths
there), which no CUDA graph can capture; ``None`` for most.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from models.base import Generation, Seq2Seq
from models.options import OptionError, check_options
from models.registry import _REGISTRY, ModelEntry, ModelMeta, register

# Parameter budget per size, for a character vocabulary of about 60 symbols.
BUDGETS: dict[str, int] = {"tiny": 50_000, "small": 400_000, "base": 3_000_000, "large": 20_000_000, "xl": 100_000_000}
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


def param_count(name: str, vocab_size: int = BUDGET_VOCAB, size: str = "small", **overrides: Any) -> int:
    """Parameters of ``build(name, vocab_size, size, **overrides)``, counted without allocating them.

    The model is built under ``torch.device("meta")``: every tensor has a shape and no storage, so a
    100 M-parameter ``xl`` model costs microseconds and no memory to count.
    """
    with torch.device("meta"):
        return count_params(build(name, vocab_size, size, **overrides))


def longest_sequence(name: str, size: str = "small", **overrides: Any) -> int | None:
    """The longest source, and the longest target or ``generate(max_len=...)``, the model supports
    (tokens, BOS and EOS included); ``None``: no limit but time and memory (the recurrent models).

    Read from the config's ``longest_sequence()`` method where it has one. The vocabulary does not
    matter, so none is asked for.
    """
    cfg = config(name, BUDGET_VOCAB, size, **overrides)
    limit = getattr(cfg, "longest_sequence", None)
    return limit() if callable(limit) else None


def host_sync(name: str, size: str = "small", **overrides: Any) -> str | None:
    """Why the model's forward pass reads device values on the host, or ``None`` when it does not.

    A CUDA graph replays device work alone, so a step that must stop for a host read cannot be captured
    (``--capture cudagraph``); ``torch.compile`` splits its graph there instead. Read from the config's
    ``host_sync()`` method where it has one; a config without one never syncs.
    """
    cfg = config(name, BUDGET_VOCAB, size, **overrides)
    why = getattr(cfg, "host_sync", None)
    return why() if callable(why) else None


Factory = Callable[..., Seq2Seq]

__all__ = [
    "BUDGETS", "BUDGET_VOCAB", "Generation", "ModelMeta", "OptionError", "reference", "Seq2Seq", "build", "config", "count_params", "entry",
    "host_sync", "longest_sequence", "names", "param_count", "register", "sizes",
]
