"""Task registry. A task turns :class:`TaskOptions` into disjoint train/valid/test splits of examples.

Every example carries, where the task defines one, its ground-truth *alignment*: for each target
character, the half-open span of source characters it comes from (``None`` where no single span does,
e.g. the dashes of an ISO date). That turns "does attention follow the human logic" (book §8.3) into a
number, the alignment score, computed in ``bench.train.evaluate``.

Installed packages add tasks through entry points in the group ``s2sbench.tasks`` (``ENTRY_POINTS``), loaded with
the built-ins once per process: the entry point names the module whose ``@register`` makes the task.
"""

from __future__ import annotations

import importlib
import importlib.metadata

from bench.data.tasks.base import (
    _PLUGINS,
    _REGISTRY,
    Example,
    Span,
    TaskData,
    TaskEntry,
    TaskOptions,
    loading,
    register,
    split_overlap,
    unique_split,
)
from bench.errors import UserError

__all__ = ["ENTRY_POINTS", "Example", "Span", "TaskData", "TaskEntry", "TaskOptions", "entry", "loading", "make", "names", "register",
           "split_overlap", "unique_split"]

ENTRY_POINTS = "s2sbench.tasks"  # the entry-point group installed packages register their tasks in


def _load() -> None:
    """Import every module of the family (cached after the first time), whichever was imported first."""
    for mod in ("date", "addition", "algorithmic", "g2p"):
        try:
            importlib.import_module(f"bench.data.tasks.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"bench.data.tasks.{mod}":
                raise
    _load_entry_points()


def _load_entry_points() -> None:
    """Load every installed entry point of ``ENTRY_POINTS`` once per process; a plugin that fails is one line naming
    it (``UserError``), now and at every later lookup, and leaves no task of its own registered."""
    state = _PLUGINS.get(ENTRY_POINTS)
    if isinstance(state, UserError):
        raise UserError(str(state))
    if state is not None:
        return
    _PLUGINS[ENTRY_POINTS] = "loading"
    try:
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINTS), key=lambda e: (e.value, e.name)):
            dist = ep.dist
            plugin, version = (dist.name, dist.version) if dist is not None else (ep.value, "")
            who = f"plugin {plugin} {version}".rstrip()
            with loading(plugin, version):
                try:
                    ep.load()
                except UserError as e:
                    raise UserError(f"{who}: {e}") from None
                except Exception as e:  # noqa: BLE001 -- whatever a plugin's import raises is its failure to load, said in one line
                    why = (str(e).strip().splitlines() or [""])[0]
                    raise UserError(f"{who}: entry point {ep.name} = {ep.value} (group {ep.group}) cannot be loaded: {type(e).__name__}: "
                                    f"{why}") from None
    except UserError as e:
        _PLUGINS[ENTRY_POINTS] = e
        raise
    _PLUGINS[ENTRY_POINTS] = "loaded"


def names() -> list[str]:
    _load()
    return list(_REGISTRY)


def entry(name: str) -> TaskEntry:
    _load()
    if name not in _REGISTRY:
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def make(name: str, opts: TaskOptions) -> TaskData:
    return entry(name).make(opts)


