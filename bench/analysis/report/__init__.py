"""Store -> frames -> findings -> a typed document of sections -> a self-contained HTML page, Markdown and CSV.

A pure function of the store: the same sessions always give the same report. Colours are fixed per model
across every figure (the story's order, recorded with each run from the registry), so a model is the same
colour in the curve, the speed-accuracy plane and the length plot.

The modules, in the order the data flows through them:

- ``findings``: ``load`` (the one place the store is read: ``bench.results.tidy``'s frames) and ``analyse``
  (the tables, sweeps and notes: ``Findings``);
- ``tables``, ``sweeps``, ``figures``, ``environment``, ``palette``: what ``analyse`` and the sections compute,
  each from frames;
- ``sections``: one small function per section, ``SECTIONS`` their order, ``build`` -> ``Report``;
- ``document``: the section types (``Heading``, ``Text``, ``Table``, ``Bullets``, ``Figure``) and ``Report``;
- ``html_writer``, ``markdown_writer``: each walks the sections once.
"""

from __future__ import annotations

import json
import os

from bench.analysis.report import html_writer, markdown_writer
from bench.analysis.report.document import Bullets, Cell, Figure, Heading, Report, Section, Strong, Table, Text
from bench.analysis.report.findings import Findings, Inputs, analyse, load
from bench.analysis.report.sections import SECTIONS, build, document
from bench.results.files import write_files
from bench.results.store import Store

__all__ = ["SECTIONS", "Bullets", "Cell", "Figure", "Findings", "Heading", "Inputs", "Report", "Section", "Strong", "Table", "Text",
           "analyse", "build", "document", "load", "write"]


def write(store: Store, sessions: list[str], out: str, reference: str | None = None, tasks: list[str] | None = None) -> dict[str, str]:
    """The report of ``sessions`` into the folder ``out``: ``index.html``, ``report.md``, ``runs.csv`` and a PNG per
    figure, written together at the end, all or none (a full disk leaves nothing). -> ``html``/``md``/``csv`` -> path."""
    found = analyse(load(store, sessions, tasks), reference)
    doc = document(found)
    runs = found.runs.assign(epoch_seconds=found.runs["epoch_seconds"].map(json.dumps),
                             test_by_length=found.runs["test_by_length"].map(json.dumps))
    outputs: dict[str, bytes | str] = {f.name + ".png": f.png for f in doc.figures()}
    outputs |= {"index.html": html_writer.render(doc), "report.md": markdown_writer.render(doc), "runs.csv": runs.to_csv(index=False)}
    write_files(out, outputs, "report")
    return {"html": os.path.join(out, "index.html"), "md": os.path.join(out, "report.md"), "csv": os.path.join(out, "runs.csv")}
