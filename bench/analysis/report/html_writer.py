"""The report as one self-contained HTML page: the sections walked once, figures inlined as PNG."""

from __future__ import annotations

import base64
import html

from bench.analysis.report.document import Bullets, Figure, Heading, Report, Section, Strong, Table, Text

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
table.conf td:last-child,table.fail td:last-child,table.fail th:last-child{text-align:left;white-space:normal;min-width:24rem} \
ul.cross{font-size:.9rem}
"""

e = html.escape


def _class(style: str) -> str:
    return f" class='{style}'" if style else ""


def section(s: Section) -> str:
    """One section's HTML."""
    if isinstance(s, Heading):
        return f"<h{s.level}>{e(s.text)}</h{s.level}>"
    if isinstance(s, Text):
        words = "".join(f"<b>{e(x.text)}</b>" if isinstance(x, Strong) else e(x) for x in s.spans)
        return f"<p{_class('' if s.kind == 'plain' else s.kind)}>{words}</p>"
    if isinstance(s, Table):
        head = "".join(f"<th>{e(h)}</th>" for h in s.headers)
        rows = "".join("<tr>" + "".join(f"<td{_class('win' if c.best else '')}>{e(c.text)}</td>" for c in r) + "</tr>" for r in s.rows)
        return f"<table{_class(s.style)}><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    if isinstance(s, Bullets):
        return f"<ul{_class(s.style)}>" + "".join(f"<li>{e(x)}</li>" for x in s.items) + "</ul>"
    if isinstance(s, Figure):
        b64 = base64.b64encode(s.png).decode()
        return (f"<figure><img alt='{e(s.title)}' src='data:image/png;base64,{b64}'>"
                f"<figcaption>{e(s.caption)}</figcaption></figure>")
    raise TypeError(f"no HTML for a section of type {type(s).__name__}")


def render(report: Report) -> str:
    head = f"<!doctype html><html><head><meta charset='utf-8'><title>{e(report.title)}</title><style>{CSS}</style></head><body>"
    return "\n".join([head, *(section(s) for s in report.sections), "</body></html>"])
