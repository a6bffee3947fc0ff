"""The report as a document: typed sections in one order, each writer walking them once, the same content in both."""

from __future__ import annotations

import re

import pytest

from bench.analysis import report
from bench.analysis.report import html_writer, markdown_writer, sections
from bench.analysis.report.document import Bullets, Cell, Figure, Heading, Report, Strong, Table, Text
from bench.results.store import Store
from tests.analysis.test_report import SWEEP, add, add_tp, metrics

PNG = b"\x89PNG\r\n\x1a\nfake"
ONE_OF_EACH = Report("the <title>", (
    Heading("the <title>", 1),
    Text(("ratios to ", Strong("attention"), " & co"), "note"),
    Text.of("careful", "warn"),
    Heading("Results", 2),
    Table(("model", "score"), ((Cell("a|b"), Cell("1.0", best=True)), (Cell("c"), Cell("0.5"))), "sweep"),
    Bullets(("one", "two"), "cross"),
    Figure("curves", "Learning curves", PNG, "What it shows."),
))


def test_each_writer_shows_every_section_type_in_order():
    page = html_writer.render(ONE_OF_EACH)
    body = page[page.index("<body>") + len("<body>"):]
    assert "<title>the &lt;title&gt;</title>" in page
    assert body.split("\n")[1:-1] == [
        "<h1>the &lt;title&gt;</h1>",
        "<p class='note'>ratios to <b>attention</b> &amp; co</p>",
        "<p class='warn'>careful</p>",
        "<h2>Results</h2>",
        "<table class='sweep'><thead><tr><th>model</th><th>score</th></tr></thead><tbody><tr><td>a|b</td><td class='win'>1.0</td></tr>"
        "<tr><td>c</td><td>0.5</td></tr></tbody></table>",
        "<ul class='cross'><li>one</li><li>two</li></ul>",
        "<figure><img alt='Learning curves' src='data:image/png;base64,iVBORw0KGgpmYWtl'><figcaption>What it shows.</figcaption></figure>",
    ]
    assert markdown_writer.render(ONE_OF_EACH) == (
        "# the <title>\n\n"
        "ratios to **attention** & co\n\n"
        "> careful\n\n"
        "## Results\n\n"
        "| model | score |\n|---|---|\n| a\\|b | **1.0** |\n| c | 0.5 |\n\n"
        "- one\n- two\n\n"
        "![Learning curves](curves.png)\n\nWhat it shows.\n"
    )
    assert ONE_OF_EACH.figures() == [ONE_OF_EACH.sections[-1]]


def test_a_writer_refuses_what_it_cannot_show():
    for writer in (html_writer, markdown_writer):
        with pytest.raises(TypeError, match="str"):
            writer.section("not a section")  # type: ignore[arg-type]


@pytest.fixture
def mixed(tmp_path) -> Store:
    """Time-to-quality runs, a length sweep, a lone throughput run and a failed run, in one session."""
    s = Store(str(tmp_path / "m.sqlite"))
    s.add_session("m", "2026-01-01T00:00:00", None, "test", {"device_name": "CPU A", "device_type": "cpu", "torch": "2.13.0"})
    for model, pts in SWEEP.items():
        for L, v in pts.items():
            add_tp(s, "m", model, L, v)
    add_tp(s, "m", "attention", 32, 1500.0, steps=50)
    add(s, "m", "attention", 0, metrics(0.9, 1234.0))
    add(s, "m", "seq2seq", 0, metrics(0.5, 2000.0))
    add(s, "m", "gnmt", 0, None, status="failed")
    return s


def test_the_sections_come_in_one_order_and_both_formats_hold_the_same_headings(mixed, tmp_path):
    doc = report.build(mixed, ["m"])
    headings = [(s.level, s.text) for s in doc.sections if isinstance(s, Heading)]
    assert headings == [
        (1, "s2sbench report — m"), (2, "What can be concluded"), (2, "Results"), (3, "Quality"), (3, "Speed and cost"),
        (2, "Length sweeps"), (3, "copy · size tiny · CPU A · fp32 · eager · batch 8 · 5 timed steps"),
        (3, "From which length transformer trains faster than each recurrent model"), (2, "Length sweep on copy: speed and memory"),
        (2, "Throughput"), (2, "Failed runs"), (2, "Learning curves"), (2, "Speed against accuracy"), (2, "Accuracy by source length"),
        (2, "Attention on date"), (2, "Environment")]
    paths = report.write(mixed, ["m"], str(tmp_path / "r"))
    md = open(paths["md"], encoding="utf-8").read()
    page = open(paths["html"], encoding="utf-8").read()
    assert [(len(h), t) for h, t in re.findall(r"^(#+) (.*)$", md, re.M)] == headings
    assert [(int(n), t.replace("&lt;", "<")) for n, t in re.findall(r"<h(\d)>(.*?)</h\d>", page)] == headings
    assert md.count("| ") and md.count("<table") == 0  # the Markdown has Markdown tables, the page HTML ones
    tables = [s for s in doc.sections if isinstance(s, Table)]
    assert page.count("<table") == len(tables) and md.count("\n|---") == len(tables)


def test_a_new_section_is_one_function_in_the_list_and_both_writers_show_it(mixed, tmp_path, monkeypatch):
    def headline(f) -> list:
        return [Heading("What can be concluded", 2), Text.of(f"{len(f.runs)} runs, reference {f.reference}.")]

    order = list(sections.SECTIONS)
    monkeypatch.setattr(sections, "SECTIONS", tuple(order[:2] + [headline] + order[2:]))  # right after the title and warnings
    paths = report.write(mixed, ["m"], str(tmp_path / "r"))
    md = open(paths["md"], encoding="utf-8").read()
    page = open(paths["html"], encoding="utf-8").read()
    assert md.index("## What can be concluded\n\n13 runs, reference attention.") < md.index("## Results")
    assert page.index("<h2>What can be concluded</h2>\n<p>13 runs, reference attention.</p>") < page.index("<h2>Results</h2>")
