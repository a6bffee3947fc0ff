"""The screenshot check shows the page a reader sees: a real picture of the report -- not blank -- taken of a
page whose tables Chromium actually loaded. Skipped where no Chromium is installed."""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest
from PIL import Image

from bench.analysis import report
from bench.checks import screenshot
from bench.results.store import Store
from tests.analysis.test_report import add, metrics

pytestmark = pytest.mark.skipif(screenshot.find_browser() is None, reason="no Chromium on this machine")


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(str(tmp_path / "r.sqlite"))
    s.add_session("s1", "2026-01-01T00:00:00", "quick", "test", {"device_name": "CPU A", "device_type": "cpu", "torch": "2.13.0",
                                                                 "threads": 2})
    for seed, em in enumerate((0.90, 0.92, 0.97)):
        add(s, "s1", "attention", seed, metrics(em, 1000.0 + seed))
    for seed, em in enumerate((0.50, 0.60, 0.70)):
        add(s, "s1", "seq2seq", seed, metrics(em, 3000.0))
    yield s
    s.close()


def _ink(png: str) -> tuple[float, float]:
    """(standard deviation of the grey levels, share of dark pixels): both 0 for a blank page."""
    a = np.asarray(Image.open(png).convert("L"), dtype=float)
    return float(a.std()), float((a < 128).mean())


def test_screenshot_of_a_report_is_a_picture_of_the_report_not_a_blank_page(store, tmp_path):
    paths = report.write(store, ["s1"], str(tmp_path / "shot"))
    png = screenshot.screenshot(paths["html"], str(tmp_path / "shot.png"), width=1000, height=1500)
    with open(png, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (1000, 1500)
    std, dark = _ink(png)
    assert std > 10 and dark > 0.005, (std, dark)  # text, table rules and figures: measured about 32 and 2 %
    blank = tmp_path / "blank.html"  # the measure tells a blank page apart
    blank.write_text("<!doctype html><html><body></body></html>")
    assert _ink(screenshot.screenshot(str(blank), str(tmp_path / "blank.png"), width=1000, height=1500)) == (0.0, 0.0)


def test_the_page_chromium_loaded_holds_the_summary_table(store, tmp_path):
    """The first table of the page as the browser built it: one row per model with the mean and 95 % interval over seeds."""
    paths = report.write(store, ["s1"], str(tmp_path / "dom"))
    dom = screenshot.rendered_dom(paths["html"])
    table = dom[dom.index("<table"): dom.index("</table>")]
    rows = [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r)] for r in re.findall(r"<tr>(.*?)</tr>", table)]
    rows = [r for r in rows if r]
    assert [r[:5] for r in rows] == [["date", "attention", "small", "3", "93.0 ± 9.0"], ["date", "seq2seq", "small", "3", "60.0 ± 24.8"]]
