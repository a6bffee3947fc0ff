"""The report as HTML: the page's style and its tables."""

from __future__ import annotations

import html

import pandas as pd

from bench.analysis.report.tables import table_rows

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{font-size:1.6rem} h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.8rem;margin:.5rem 0;display:block;overflow-x:auto}
th,td{padding:.25rem .4rem;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th{background:#f4f4f4;position:sticky;top:0} td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}
td.win{font-weight:700;background:#e8f4e8}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.5rem 1rem}
figure{margin:1rem 0} figure img{max-width:100%} figcaption{font-size:.85rem;color:#555}
.note{font-size:.85rem;color:#555} h3{font-size:1rem;margin:1rem 0 .2rem}
table.env td,table.env th{font-size:.75rem}
table.sweep td,table.sweep th{text-align:right} table.sweep td:first-child,table.sweep th:first-child{text-align:left}
table.conf td:last-child,table.fail td:last-child,table.fail th:last-child{text-align:left;white-space:normal;min-width:24rem} ul.cross{font-size:.9rem}
"""


def html_grid(headers: list[str], body: list[list[tuple[str, bool]]], cls: str = "") -> str:
    h = "".join(f"<th>{html.escape(x)}</th>" for x in headers)
    rows = "".join("<tr>" + "".join(f"<td class='{'win' if w else ''}'>{html.escape(t)}</td>" for t, w in r) + "</tr>" for r in body)
    return f"<table class='{cls}'><thead><tr>{h}</tr></thead><tbody>{rows}</tbody></table>"


def html_table(table: pd.DataFrame, columns: tuple[str, ...]) -> str:
    return html_grid(*table_rows(table, columns))
