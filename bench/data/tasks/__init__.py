"""Task registry. A task turns :class:`TaskOptions` into disjoint train/valid/test splits of examples.

Every example carries, where the task defines one, its ground-truth *alignment*: for each target
character, the half-open span of source characters it comes from (``None`` where no single span does,
e.g. the dashes of an ISO date). That turns "does attention follow the human logic" (book §8.3) into a
number, the alignment score, computed in ``bench.train.evaluate``.
"""

from __future__ import annotations

import importlib

from bench.data.tasks.base import _REGISTRY, Example, Span, TaskData, TaskEntry, TaskOptions, register, split_overlap, unique_split
from bench.errors import UserError

__all__ = ["Example", "Span", "TaskData", "TaskEntry", "TaskOptions", "entry", "make", "names", "register", "split_overlap", "unique_split"]


def _load() -> None:
    """Import every module of the family (cached after the first time), whichever was imported first."""
    for mod in ("date", "addition", "algorithmic", "g2p"):
        try:
            importlib.import_module(f"bench.data.tasks.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"bench.data.tasks.{mod}":
                raise


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


