"""The one Markdown-table writer of the project: reports, compare, the self-checks and the docs all call it.

A GitHub-flavoured table: a header row, an alignment row, one row per body row. Cells are text; a ``|``
inside a cell is escaped so that it cannot split the cell, and a line break becomes a space (a table row
is one line). ``align`` gives each column ``"l"`` (default), ``"r"`` or ``"c"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

_RULE = {"l": "---", "r": "---:", "c": ":---:"}


def cell(text: object) -> str:
    """One cell's text: ``|`` escaped, line breaks folded into spaces."""
    return " ".join(str(text).replace("|", "\\|").split("\n")).strip()


def table(headers: Sequence[object], rows: Iterable[Sequence[object]], align: str | Sequence[str] | None = None) -> str:
    """headers: N labels; rows: rows of N cells each; align: a string or list of N of ``l``/``r``/``c``.

    -> the table's lines joined by newlines (no trailing newline). A row of another length is refused: a
    table whose columns slip is worse than none.
    """
    n = len(headers)
    how = list(align) if align is not None else ["l"] * n
    if len(how) != n or any(a not in _RULE for a in how):
        raise ValueError(f"align must give one of l, r, c for each of the {n} columns, got {align!r}")
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join(_RULE[a] for a in how) + "|"]
    for i, r in enumerate(rows):
        if len(r) != n:
            raise ValueError(f"row {i} has {len(r)} cells for {n} columns")
        lines.append("| " + " | ".join(cell(c) for c in r) + " |")
    return "\n".join(lines)
