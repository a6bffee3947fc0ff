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
there), which no CUDA graph can capture; ``None`` for most. ``attention_maps(name, size, **options)`` says
whether ``generate`` returns attention maps in that configuration, ``unmet_requirement(name, device_type,
size, **options)`` what it needs that a device lacks (a CUDA-only kernel, an optional package).

Models from outside s2sbench register the same way: every installed package's entry points in the group
``s2sbench.models`` (``ENTRY_POINTS``) are loaded with the built-ins, once per process, so a plugin's model is in
``names()`` wherever it is installed. Such a model may give its sizes as a function of one width
(``models.sizing.ByWidth``) instead of a table; ``unreachable(name)`` says which budgets no width reaches.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from models.base import Generation, Seq2Seq, state_bytes
from models.options import OptionError, check_options
from models.registry import _PLUGINS, _REGISTRY, ModelEntry, ModelMeta, PluginError, loading, register
from models.sizing import BUDGET_VOCAB, BUDGETS, ByWidth, count_params

ENTRY_POINTS = "s2sbench.models"  # the entry-point group installed packages register their models in


def _load() -> None:
    """Import every module of the family (cached after the first time), whichever was imported first."""
    # Imported for their registration side effect.
    # registration order is irrelevant: ``names`` sorts by story
    for mod in ("seq2seq", "attention", "gnmt", "transformer", "ntm", "minrnn", "ssm"):
        try:
            importlib.import_module(f"models.{mod}")
        except ModuleNotFoundError as e:  # a model file not written yet
            if e.name != f"models.{mod}":
                raise
    _load_entry_points()


def _load_entry_points() -> None:
    """Load every installed entry point of ``ENTRY_POINTS`` (in the order of their targets), once per process.

    A plugin that fails raises :class:`PluginError` naming the distribution, its version, the entry point and what
    went wrong -- now and at every later lookup, so a broken plugin is never silently missing. A plugin that asks
    the registry for names while it loads gets those registered so far (the group is marked as loading first).
    """
    state = _PLUGINS.get(ENTRY_POINTS)
    if isinstance(state, PluginError):
        raise PluginError(str(state))
    if state is not None:
        return
    _PLUGINS[ENTRY_POINTS] = "loading"
    try:
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINTS), key=lambda e: (e.value, e.name)):
            _entry_point(ep)
    except PluginError as e:
        _PLUGINS[ENTRY_POINTS] = e
        raise
    _PLUGINS[ENTRY_POINTS] = "loaded"


def _entry_point(ep: importlib.metadata.EntryPoint) -> None:
    dist = ep.dist
    plugin, version = (dist.name, dist.version) if dist is not None else (ep.value, "")
    who = f"plugin {plugin} {version}".rstrip()
    with loading(plugin, version):
        try:
            ep.load()
        except PluginError as e:
            raise PluginError(f"{who}: {e}") from None
        except Exception as e:  # noqa: BLE001 -- whatever a plugin's import raises is its failure to load, said in one line
            why = (str(e).strip().splitlines() or [""])[0]
            raise PluginError(f"{who}: entry point {ep.name} = {ep.value} (group {ep.group}) cannot be loaded: {type(e).__name__}: "
                              f"{why}") from None


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


def unreachable(name: str) -> dict[str, str]:
    """The budgeted sizes a model sized by width (``ByWidth``) cannot reach within +-10 %, each with why; {} for a table."""
    return dict(entry(name).unreachable)


def config(name: str, vocab_size: int, size: str = "small", **overrides: Any) -> Any:
    """The frozen config of ``name`` at ``size``, with ``vocab_size`` and any field overrides applied.

    Overrides (model options) are checked against the config's fields, types and ranges first
    (``models.options``): ``KeyError`` for an unknown one, ``OptionError`` (a ``ValueError``) for a bad value.
    """
    e = entry(name)
    if size in e.unreachable:
        raise KeyError(f"model {name!r} cannot reach size {size!r}: {e.unreachable[size]}")
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


def attention_maps(name: str, size: str = "small", **overrides: Any) -> bool:
    """Whether ``generate`` returns cross-attention maps (and alignment can be scored) for this configuration.

    Read from the config's ``attention_maps()`` method where it has one -- an option can give a model
    cross-attention or take it away (the parallel recurrences' ``form``) -- else the registry's ``attention`` flag.
    """
    cfg = config(name, BUDGET_VOCAB, size, **overrides)
    maps = getattr(cfg, "attention_maps", None)
    return bool(maps()) if callable(maps) else entry(name).meta.attention


def unmet_requirement(name: str, device_type: str, size: str = "small", **overrides: Any) -> str | None:
    """What this configuration needs that a device of ``device_type`` (``cpu``, ``cuda``) on this machine lacks
    -- an optional package, CUDA -- in one sentence, or ``None`` when it can run there.

    Read from the config's ``unmet_requirement(device_type)`` method where it has one (the SSM's ``kernel=mamba``);
    a config without one runs anywhere. The harness asks before any run starts.
    """
    cfg = config(name, BUDGET_VOCAB, size, **overrides)
    need = getattr(cfg, "unmet_requirement", None)
    return need(device_type) if callable(need) else None


def meta_record(name: str, size: str = "small", **overrides: Any) -> dict[str, Any]:
    """The metadata stored with a run of this configuration: the registry's (``ModelMeta.record``), with
    ``attention`` as this configuration has it (``attention_maps``)."""
    return {**entry(name).meta.record(), "attention": attention_maps(name, size, **overrides)}


Factory = Callable[..., Seq2Seq]

__all__ = [
    "BUDGETS", "BUDGET_VOCAB", "ByWidth", "ENTRY_POINTS", "Generation", "ModelMeta", "OptionError", "PluginError", "reference", "Seq2Seq",
    "attention_maps", "build", "config", "count_params", "entry", "host_sync", "longest_sequence", "meta_record", "names", "param_count",
    "register", "sizes", "state_bytes", "unmet_requirement", "unreachable",
]
