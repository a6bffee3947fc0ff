"""The report as Markdown: its tables."""

from __future__ import annotations

import pandas as pd

from bench.analysis.report.tables import table_rows


def markdown_grid(headers: list[str], body: list[list[tuple[str, bool]]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in body:
        lines.append("| " + " | ".join(f"**{t}**" if w else t for t, w in r) + " |")
    return "\n".join(lines)


def markdown_table(table: pd.DataFrame, columns: tuple[str, ...]) -> str:
    return markdown_grid(*table_rows(table, columns))


def markdown_frame(df: pd.DataFrame) -> str:
    cells = df.astype(object).where(df.notna(), "–").astype(str)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.values.tolist()]
    return "\n".join(lines)
