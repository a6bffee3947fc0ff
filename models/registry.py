"""The registry the architecture modules fill: each registers a class, its config table by size, and metadata.

Kept apart from ``models/__init__`` (which loads every architecture module and answers lookups) so that
the architecture modules import this, not the package that imports them.

A model from outside s2sbench -- an installed package's entry point, or a file given with ``--plugin`` --
registers through the very same ``register``: while its code is imported, ``loading(plugin, version)`` says
where it comes from, so its metadata records it. A name is registered once: a plugin that takes a name
already taken (a built-in's, another plugin's) is refused, and a plugin that fails leaves nothing registered.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from models.base import Seq2Seq
from models.sizing import BUDGET_VOCAB, ByWidth, count_params, fit_widths


class PluginError(Exception):
    """A model plugin that cannot be loaded or registered; the message names the plugin and what went wrong."""


@dataclass(frozen=True)
class ModelMeta:
    """What the harness needs to know about a model without special-casing its name.

    ``cost``: relative time of one training step at an equal parameter budget, in tenths (integers, so
    that shard balancing is exact on every machine), measured on a 2-core CPU at size small, batch 64,
    date-length sequences. ``attention``: ``generate`` returns cross-attention maps (alignment is scored).
    ``reference``: the model speed ratios in a report are relative to by default (the book's answer to the
    fixed-length vector, ch. 8). ``recurrent``: the model steps through the sequence one position after
    another (O(n) sequential operations), as against attention alone (O(1); Vaswani et al. 2017, Table 1):
    a report's length sweep says from which length the parallel model trains faster than each recurrent one.
    ``scan``: recurrent, but trained in parallel over time -- the recurrence is linear in its state, so training
    solves it for every position at once by a parallel scan (O(log n) depth; Feng et al. 2024, Gu & Dao 2023) and
    only decoding steps through time; a sweep's crossover line names such models as scans, not as sequential loops.
    ``search``: where ``s2sbench tune`` should search a narrower range for this model than for the others, the
    parameter and its ``(low, high)`` range or allowed choices, e.g. ``(("lr", (1e-4, 3e-3)),)``; the range the model
    is tuned over is the intersection with the session's (an equal budget over a space that says why it differs).
    ``order`` (the story's order), ``plugin`` and ``plugin_version`` (where a model from outside s2sbench came
    from: the installed distribution and its version, or the ``--plugin`` file and a digest of its bytes) are
    set by the registry.
    """

    cost: int = 20
    attention: bool = False
    reference: bool = False
    recurrent: bool = True
    scan: bool = False
    search: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    order: int = 0
    plugin: str = ""  # "" for the built-in models
    plugin_version: str = ""

    def record(self) -> dict[str, Any]:
        """The metadata as stored with each run, so reports can order and colour models without importing them."""
        rec = {"order": self.order, "attention": self.attention, "reference": self.reference, "cost": self.cost,
               "recurrent": self.recurrent, "scan": self.scan}
        return rec | ({"plugin": self.plugin, "plugin_version": self.plugin_version} if self.plugin else {})


@dataclass(frozen=True)
class ModelEntry:
    name: str
    cls: type[Seq2Seq]
    config_cls: type
    sizes: dict[str, Any]  # size name -> frozen config (without vocab_size)
    summary: str
    meta: ModelMeta = ModelMeta()
    unreachable: dict[str, str] = field(default_factory=dict)  # budgeted size -> why no width of a ByWidth model reaches it

    def describe(self) -> str:
        """Whose the name is, as a message says it: ``the built-in model attention`` or ``model gru of plugin x 1.0``."""
        if not self.meta.plugin:
            return f"the built-in model {self.name}"
        return f"model {self.name} of plugin {self.meta.plugin}" + (f" {self.meta.plugin_version}" if self.meta.plugin_version else "")


_REGISTRY: dict[str, ModelEntry] = {}
# book ch. 7 -> ch. 8 -> GNMT -> Transformer -> NTM -> recurrences that train in parallel (§8.5's other way out)
_STORY = ("seq2seq", "peeky", "attention", "gnmt", "transformer", "ntm", "mingru", "minlstm", "ssm")
_LOADING: list[tuple[str, str]] = []  # the plugin whose code is being imported, innermost last: (name, version)
_PLUGINS: dict[str, Any] = {}  # entry-point group -> "loading", "loaded", or the PluginError it failed with (models._load_entry_points)


@contextmanager
def loading(plugin: str, version: str) -> Iterator[None]:
    """While a plugin's code is imported: what it registers records ``plugin`` and ``version``; and if the import
    fails, what it registered so far is taken out again (a plugin is registered whole or not at all)."""
    before = dict(_REGISTRY)
    _LOADING.append((plugin, version))
    try:
        yield
    except BaseException:
        _REGISTRY.clear()
        _REGISTRY.update(before)
        raise
    finally:
        _LOADING.pop()


def register(name: str, cls: type[Seq2Seq], config_cls: type, sizes: dict[str, Any] | ByWidth, summary: str,
             meta: ModelMeta | None = None) -> None:
    """Register model ``name``: its class, its config class, its configs by size -- a table, or a :class:`ByWidth`
    that the registry sizes to the budgets -- a one-line summary, and its metadata.

    Raises :class:`PluginError` when the name is taken: two models never share a name, whoever came first.
    """
    if name in _REGISTRY:
        raise PluginError(f"model name {name!r} is taken by {_REGISTRY[name].describe()}")
    unreachable: dict[str, str] = {}
    if isinstance(sizes, ByWidth):
        sizes, unreachable = _sized(cls, sizes)
    plugin, version = _LOADING[-1] if _LOADING else ("", "")
    order = _STORY.index(name) if name in _STORY else len(_STORY) + len(_REGISTRY)
    _REGISTRY[name] = ModelEntry(name, cls, config_cls, dict(sizes), summary, replace(meta or ModelMeta(), order=order, plugin=plugin,
                                                                                      plugin_version=version), unreachable)


def _sized(cls: type[Seq2Seq], by: ByWidth) -> tuple[dict[str, Any], dict[str, str]]:
    """A :class:`ByWidth` -> (configs by size, budgeted sizes no width reaches -> why). Counted on the meta device."""

    def count(width: int) -> int:
        with torch.device("meta"):
            return count_params(cls(replace(by.config(width), vocab_size=BUDGET_VOCAB)))

    fits = fit_widths(count, by)
    sizes = {s: by.config(f.width) for s, f in fits.items() if f.why is None}
    return sizes | dict(by.named), {s: f.why for s, f in fits.items() if f.why is not None}


