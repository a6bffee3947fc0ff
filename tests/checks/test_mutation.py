"""The mutation check (``python -m bench.checks.mutation``): its list of planted bugs still fits the code (checked
on every test run, so the list cannot rot between the on-demand runs of the whole check), and planting a bug in
a copy of a tree tells a caught bug, with the test that caught it, from one that survives."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.checks import mutation
from bench.checks.mutation import MUTATIONS, ListError, Mutation, baseline, check_list, failing_tests, plant
from tests.conftest import HANG_S


def test_every_planted_bug_applies_exactly_once_to_the_code_as_it_is():
    check_list(MUTATIONS)  # raises if a text is gone, repeated, or a test file is missing
    assert len(MUTATIONS) >= 15
    files = {m.file for m in MUTATIONS}
    for where in ("models/gnmt.py", "models/seq2seq.py", "models/transformer.py", "models/ntm.py", "bench/results/metrics.py",
                  "bench/runner/execute.py", "bench/train/loop.py", "bench/analysis/stats.py", "bench/regress/compare.py",
                  "bench/measure/timing.py", "bench/results/store.py", "bench/results/merge.py"):
        assert where in files, f"no planted bug in {where}"


def _toy(root: Path) -> Path:
    """A tree with one tested function (add) and one untested one (sub)."""
    (root / "bench").mkdir(parents=True)
    (root / "bench" / "__init__.py").write_text("")
    (root / "bench" / "arith.py").write_text("def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_arith.py").write_text("from bench.arith import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    return root


def test_a_list_entry_that_no_longer_fits_is_refused(tmp_path):
    root = _toy(tmp_path / "repo")
    ok = Mutation("ok", "add subtracts", "bench/arith.py", "return a + b", "return a - b", ("tests/test_arith.py",))
    check_list([ok], root)
    for bad, words in [(Mutation("gone", "x", "bench/arith.py", "return a * b", "", ("tests/test_arith.py",)), "0 times"),
                       (Mutation("twice", "x", "bench/arith.py", "return a", "", ("tests/test_arith.py",)), "2 times"),
                       (Mutation("nofile", "x", "bench/nope.py", "a", "b", ("tests/test_arith.py",)), "does not exist"),
                       (Mutation("notest", "x", "bench/arith.py", "return a + b", "return b", ("tests/test_nope.py",)), "does not exist")]:
        with pytest.raises(ListError, match=words):
            check_list([bad], root)
    with pytest.raises(ListError, match="repeat"):
        check_list([ok, ok], root)


def test_a_planted_bug_is_caught_by_the_failing_test_and_an_untested_one_survives(tmp_path):
    root = _toy(tmp_path / "repo")
    caught = Mutation("add-subtracts", "add subtracts", "bench/arith.py", "return a + b", "return a - b", ("tests/test_arith.py",))
    missed = Mutation("sub-adds", "sub adds", "bench/arith.py", "return a - b", "return a + b", ("tests/test_arith.py",))
    work = tmp_path / "work"
    assert baseline([caught, missed], work, timeout=HANG_S, root=root)[0]
    o = plant(caught, work, timeout=HANG_S, root=root)
    assert (o.status, o.caught_by) == ("caught", "tests/test_arith.py::test_add")
    assert plant(missed, work, timeout=HANG_S, root=root).status == "survived"
    assert "return a + b" in (root / "bench" / "arith.py").read_text()  # the tree itself is never changed


def test_failing_tests_are_read_from_pytest_s_summary():
    out = "....F\nFAILED tests/a.py::test_x[p1] - AssertionError: 1 != 2\nERROR tests/b.py - ImportError\n1 failed"
    assert failing_tests(out) == ["tests/a.py::test_x[p1]", "tests/b.py"]


def test_cli_lists_and_refuses_unknown_names(capsys):
    assert mutation.main(["--list", "--only", "gnmt-encoder-residual"]) == 0
    assert "models/gnmt.py" in capsys.readouterr().out
    assert mutation.main(["--only", "no-such-bug"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-bug" in err[0]


def test_the_table_has_one_row_per_planted_bug_in_list_order():
    """Written by the project's one Markdown-table writer; a surviving bug says so, with why."""
    m1, m2 = MUTATIONS[:2]
    t = mutation.table([mutation.Outcome(m1, "tests/x.py::t", 3.2, "caught"),
                        mutation.Outcome(m2, None, 7.9, "survived", "every selected test passed")]).splitlines()
    assert t[:2] == ["| # | planted bug | file | caught by | s |", "|---:|---|---|---|---:|"] and len(t) == 4
    assert t[2] == f"| 1 | {m1.what} | {m1.file} | tests/x.py::t | 3 |"
    assert t[3] == f"| 2 | {m2.what} | {m2.file} | NOT CAUGHT -- every selected test passed | 8 |"
