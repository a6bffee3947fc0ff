"""The documentation site: the reference pages say what the code says (they are generated from the parsers, the suite
reader and the metric catalogue), every page is in the site's navigation, and the README stays a front page."""

from __future__ import annotations

import re
from pathlib import Path

from bench.cli import reference
from tests.conftest import REPO

DOCS = Path(REPO, "docs")
README_MAX_LINES = 200  # a front page: what it is, the models, the quick start, one result, the map, links


def test_the_committed_reference_pages_are_what_the_code_says() -> None:
    stale = reference.stale()
    assert not stale, f"docs/reference/{', '.join(stale)} differ from the code: run `{reference.COMMAND}` and commit the pages"


def test_the_reference_names_every_flag_suite_key_and_metric() -> None:
    from bench.cli import build_parser
    from bench.results.metrics import CATALOGUE
    from bench.spec import suite

    pages = reference.pages()
    flags = {o for p in (build_parser(),) for _, _, sub in reference._walk(p) for a in sub._actions for o in a.option_strings}
    assert flags and all(f"`{f}" in pages["cli.md"] for f in flags - {"-h", "--help"})
    assert all(f"| `{k}` |" in pages["suites.md"] for k in suite._ALLOWED | suite._TOP | suite._TUNE)
    assert all(f"| `{m.name}` |" in pages["metrics.md"] for m in CATALOGUE)


def test_rendering_does_not_depend_on_the_terminal_width(monkeypatch) -> None:
    before = reference.cli_page()
    monkeypatch.setenv("COLUMNS", "40")
    assert reference.cli_page() == before


def test_every_page_is_in_the_navigation() -> None:
    nav = set(re.findall(r":\s*([\w./-]+\.md)\s*$", Path(REPO, "mkdocs.yml").read_text(encoding="utf-8"), re.M))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert pages == nav, f"in docs/ but not in mkdocs.yml's nav: {sorted(pages - nav)}; in the nav but missing: {sorted(nav - pages)}"


def test_the_readme_is_a_front_page_whose_links_resolve() -> None:
    text = Path(REPO, "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert links and all(Path(REPO, link).exists() for link in links if not link.startswith("http")), links
