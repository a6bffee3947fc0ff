"""The report as a document: an ordered list of typed sections, which each writer (HTML, Markdown) walks once.

A section says *what* is shown -- a heading, a paragraph, a table whose best cells are flagged, a figure --
never how a format shows it: the writers decide that, the same way for every section of a type. Nothing
here knows pandas, matplotlib or the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Heading:
    text: str
    level: int  # 1: the report's title; 2: a section; 3: a part of one


@dataclass(frozen=True)
class Strong:
    """Words of a paragraph set in bold (the reference model a note names)."""

    text: str


@dataclass(frozen=True)
class Text:
    """A paragraph: plain words and ``Strong`` spans, in order."""

    spans: tuple[str | Strong, ...]
    kind: Literal["plain", "note", "warn"] = "plain"  # note: how to read what follows; warn: a caveat the reader must not miss

    @staticmethod
    def of(text: str, kind: Literal["plain", "note", "warn"] = "plain") -> Text:
        return Text((text,), kind)


@dataclass(frozen=True)
class Cell:
    text: str
    best: bool = False  # the best of its group in its column (bold; bold green on the page)


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]  # each as long as headers
    style: str = ""  # a name the page's stylesheet knows (sweep, conf, fail, env): alignment and wrapping only


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]
    style: str = ""  # as Table.style


@dataclass(frozen=True)
class Figure:
    """A PNG and what a reader needs without it: ``title`` is also the image's alternative text."""

    name: str  # the file's stem: <name>.png beside the Markdown
    title: str
    png: bytes
    caption: str


Section = Heading | Text | Table | Bullets | Figure


@dataclass(frozen=True)
class Report:
    title: str  # the page's title; the first section is usually its level-1 heading
    sections: tuple[Section, ...]

    def figures(self) -> list[Figure]:
        """The figures, in order: their PNGs are written beside the Markdown that links them."""
        return [s for s in self.sections if isinstance(s, Figure)]

