"""Screenshot a report as a reader sees it, with headless Chromium.

    python -m bench.checks.screenshot results/reports/<session>/index.html [--out shot.png] [--width 1300]

Looking at the page, not only at the HTML, is how overlapping labels, cut-off tables and unreadable
heatmaps get caught. Needs a Chromium (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def _browser() -> str:
    browser = find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium found (install Debian's chromium package)")
    return browser


def screenshot(html: str, out: str, width: int = 1300, height: int = 6000) -> str:
    cmd = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={width},{height}",
           f"--screenshot={os.path.abspath(out)}", "file://" + os.path.abspath(html)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return out


def rendered_dom(html: str) -> str:
    """The page's DOM as Chromium built it from ``html`` (``--dump-dom``): what the browser actually loaded, so a
    test can find a table's text in the page it screenshots, not only in the file it was given."""
    cmd = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "file://" + os.path.abspath(html)]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout


PROG = "python -m bench.checks.screenshot"  # the name usage and errors show; `s2sbench check screenshot` passes its own


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    """This check's options: one parser for both doors, ``python -m bench.checks.screenshot`` and ``s2sbench check screenshot``."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("html", help="the report's index.html")
    p.add_argument("--out", help="PNG to write (default: screenshot.png beside the report)")
    p.add_argument("--width", type=int, default=1300, help="window width in pixels (default: 1300)")
    p.add_argument("--height", type=int, default=6000, help="window height in pixels, what the PNG shows (default: 6000)")
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    a = parser(prog).parse_args(argv)
    if not os.path.exists(a.html):
        print(f"screenshot: error: {a.html}: no such report", file=sys.stderr)
        return 2
    out = a.out or os.path.join(os.path.dirname(os.path.abspath(a.html)), "screenshot.png")
    try:
        screenshot(a.html, out, a.width, a.height)
    except (FileNotFoundError, subprocess.SubprocessError) as e:
        print(f"screenshot: error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
