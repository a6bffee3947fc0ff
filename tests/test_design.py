"""The design document is the project's own (docs/design.md): every pointer into it from the code, the tests and
the other pages names a section it has, in one form -- (docs/design.md, "Section") -- and no pointer is left in
the old form that named a document outside the project."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REPO

DESIGN = Path(REPO, "docs", "design.md")
POINTER = re.compile(r'docs/design\.md, "([^"]+)"')


def _sources() -> list[Path]:
    """Every file that may point into the design, but this one (whose docstring shows the form)."""
    files = [p for top in ("bench", "models", "tests") for p in Path(REPO, top).rglob("*.py")] + sorted(Path(REPO, "docs").glob("*.md"))
    return [p for p in files if p.resolve() != Path(__file__).resolve()]


def _sections() -> set[str]:
    return {line.lstrip("#").strip() for line in DESIGN.read_text(encoding="utf-8").splitlines() if line.startswith("#")}


def test_every_pointer_names_a_section_of_the_design() -> None:
    found: dict[str, set[str]] = {}
    for p in _sources():
        text = " ".join(p.read_text(encoding="utf-8").split())  # a pointer may wrap across lines (and their indent)
        for name in POINTER.findall(text):
            found.setdefault(name, set()).add(str(p.relative_to(REPO)))
    missing = {n: sorted(ps) for n, ps in found.items() if n not in _sections()}
    assert not missing, missing
    assert len(found) >= 6  # the pointers are there to check (the pattern still matches them)


def test_no_pointer_in_the_old_form() -> None:
    old = re.compile(r"\bDESIGN:")
    assert not [str(p.relative_to(REPO)) for p in _sources() if old.search(p.read_text(encoding="utf-8"))]
