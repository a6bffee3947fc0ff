"""The registry the architecture modules fill: each registers a class, its config table by size, and metadata.

Kept apart from ``models/__init__`` (which loads every architecture module and answers lookups) so that
the architecture modules import this, not the package that imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from models.base import Seq2Seq


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
    ``search``: where ``s2sbench tune`` should search a narrower range for this model than for the others, the
    parameter and its ``(low, high)`` range or allowed choices, e.g. ``(("lr", (1e-4, 3e-3)),)``; the range the model
    is tuned over is the intersection with the session's (an equal budget over a space that says why it differs).
    ``order`` (the story's order) is set by the registry.
    """

    cost: int = 20
    attention: bool = False
    reference: bool = False
    recurrent: bool = True
    search: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    order: int = 0

    def record(self) -> dict[str, Any]:
        """The metadata as stored with each run, so reports can order and colour models without importing them."""
        return {"order": self.order, "attention": self.attention, "reference": self.reference, "cost": self.cost,
                "recurrent": self.recurrent}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    cls: type[Seq2Seq]
    config_cls: type
    sizes: dict[str, Any]  # size name -> frozen config (without vocab_size)
    summary: str
    meta: ModelMeta = ModelMeta()


_REGISTRY: dict[str, ModelEntry] = {}
_STORY = ("seq2seq", "peeky", "attention", "gnmt", "transformer", "ntm")  # book ch. 7 -> ch. 8 -> GNMT -> Transformer -> NTM


def register(name: str, cls: type[Seq2Seq], config_cls: type, sizes: dict[str, Any], summary: str, meta: ModelMeta | None = None) -> None:
    order = _STORY.index(name) if name in _STORY else len(_STORY) + len(_REGISTRY)
    _REGISTRY[name] = ModelEntry(name, cls, config_cls, sizes, summary, replace(meta or ModelMeta(), order=order))


