"""The report as Markdown: the sections walked once, each a block; figures linked as PNG files beside it.
Every table goes through the project's one Markdown-table writer."""

from __future__ import annotations

from bench.analysis.markdown import table as markdown_table
from bench.analysis.report.document import Bullets, Figure, Heading, Report, Section, Strong, Table, Text


def table(t: Table) -> str:
    """A table, its best cells in bold."""
    return markdown_table(t.headers, [[f"**{c.text}**" if c.best else c.text for c in r] for r in t.rows])


def section(s: Section) -> str:
    """One section's Markdown block."""
    if isinstance(s, Heading):
        return "#" * s.level + " " + s.text
    if isinstance(s, Text):
        words = "".join(f"**{x.text}**" if isinstance(x, Strong) else x for x in s.spans)
        return f"> {words}" if s.kind == "warn" else words
    if isinstance(s, Table):
        return table(s)
    if isinstance(s, Bullets):
        return "\n".join(f"- {x}" for x in s.items)
    if isinstance(s, Figure):
        return f"![{s.title}]({s.name}.png)\n\n{s.caption}"
    raise TypeError(f"no Markdown for a section of type {type(s).__name__}")


def render(report: Report) -> str:
    return "\n\n".join(section(s) for s in report.sections) + "\n"
