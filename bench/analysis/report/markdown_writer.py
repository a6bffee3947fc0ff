"""The report as Markdown: its tables, each through the project's one Markdown-table writer."""

from __future__ import annotations

import pandas as pd

from bench.analysis.markdown import table as markdown_rows
from bench.analysis.report.tables import table_rows


def markdown_grid(headers: list[str], body: list[list[tuple[str, bool]]]) -> str:
    return markdown_rows(headers, [[f"**{t}**" if w else t for t, w in r] for r in body])


def markdown_table(table: pd.DataFrame, columns: tuple[str, ...]) -> str:
    return markdown_grid(*table_rows(table, columns))


def markdown_frame(df: pd.DataFrame) -> str:
    cells = df.astype(object).where(df.notna(), "–").astype(str)
    return markdown_rows([str(c) for c in df.columns], cells.values.tolist())
