"""Task generators and the book-format loader: determinism, known answers, known alignments, splits."""

from __future__ import annotations

import calendar
import datetime as dt
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from bench.data import tasks
from bench.data.tasks import TaskOptions, textfile
from bench.errors import UserError
from tests.conftest import HANG_S

BOOK_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "book")

SMALL = TaskOptions(seed=3, train=300, valid=60, test=60)
GENERATORS = [n for n in tasks.names() if tasks.entry(n).generated]  # datasets (g2p) have their own sizes: tests/data/test_g2p.py


def _all(data: tasks.TaskData) -> list[tasks.Example]:
    return data.train + data.valid + data.test


# --- generators ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_is_deterministic_in_its_seed(name: str) -> None:
    a = tasks.make(name, SMALL)
    b = tasks.make(name, TaskOptions(seed=3, train=300, valid=60, test=60))
    assert (a.train, a.valid, a.test) == (b.train, b.valid, b.test)
    other = tasks.make(name, TaskOptions(seed=4, train=300, valid=60, test=60))
    assert [e.src for e in other.train] != [e.src for e in a.train]


@pytest.mark.parametrize("name", GENERATORS)
def test_splits_have_the_asked_sizes_and_are_disjoint_by_source(name: str) -> None:
    d = tasks.make(name, SMALL)
    assert (len(d.train), len(d.valid), len(d.test)) == (300, 60, 60)
    tr, va, te = ({e.src for e in s} for s in (d.train, d.valid, d.test))
    assert len(tr) == 300 and len(va) == 60 and len(te) == 60  # no duplicate inside a split either
    assert not (tr & va) and not (tr & te) and not (va & te)


def test_unknown_task_is_a_user_error() -> None:
    with pytest.raises(UserError, match="nosuch"):
        tasks.make("nosuch", SMALL)


def _month_texts(m: int) -> set[str]:
    return {calendar.month_name[m].lower(), calendar.month_abbr[m].lower(), str(m), f"{m:02d}"}


def test_date_targets_are_valid_iso_dates() -> None:
    d = tasks.make("date", SMALL)
    for ex in _all(d):
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", ex.tgt), ex
        day = dt.date.fromisoformat(ex.tgt)
        assert dt.date(1970, 1, 1) <= day <= dt.date(2029, 12, 31)


def test_date_alignments_point_at_the_right_source_characters() -> None:
    d = tasks.make("date", SMALL)
    formats_seen = set()
    for ex in _all(d):
        day = dt.date.fromisoformat(ex.tgt)
        assert ex.align is not None and len(ex.align) == len(ex.tgt) == 10
        assert ex.align[4] is None and ex.align[7] is None  # the dashes come from no single span
        for t, span in enumerate(ex.align):
            if span is None:
                continue
            lo, hi = span
            assert 0 <= lo < hi <= len(ex.src), (ex, t)
            piece = ex.src[lo:hi].lower()
            if t < 4:
                # the whole year, or its two digits (then every year digit, the century included, comes from them)
                assert piece in (ex.tgt[:4], ex.tgt[2:4]), (ex, t, piece)
            elif t in (5, 6):
                assert piece in _month_texts(day.month), (ex, t, piece)
            else:
                assert piece in (str(day.day), f"{day.day:02d}"), (ex, t, piece)
        assert ex.align[0] == ex.align[3] and ex.align[5] == ex.align[6] and ex.align[8] == ex.align[9]
        formats_seen.add(re.sub(r"[a-z]+", "a", re.sub(r"\d+", "9", ex.src.lower())))
    assert len(formats_seen) >= 5  # the generator really mixes formats


def test_addition_targets_are_the_sums() -> None:
    d = tasks.make("addition", SMALL)
    for ex in _all(d):
        m = re.fullmatch(r"(\d{1,3})\+(\d{1,3})", ex.src)
        assert m, ex
        a, b = int(m.group(1)), int(m.group(2))
        assert ex.tgt == str(a + b)
        assert m.group(1) == str(a) and m.group(2) == str(b)  # no leading zeros
        assert ex.align is None


# --- the book's text format ------------------------------------------------------------------------

ROWS = [(f"{a}+{b}", str(a + b)) for a, b in [(16, 75), (52, 607), (75, 22), (1, 2), (999, 999), (0, 0), (10, 5), (3, 44),
                                              (100, 1), (64, 64), (7, 700), (8, 1), (12, 34), (56, 78), (90, 12), (345, 6)]]
ROWS += [("september 27, 1994", "1994-09-27"), ("Tue, 27 Sep 1994", "1994-09-27"), ("2/10/93", "1993-02-10")]


def _write_book(path: str, rows: list[tuple[str, str]], newline: str = "\n") -> None:
    w_src = max(len(s) for s, _ in rows) + 1
    w_tgt = max(len(t) for _, t in rows) + 1
    with open(path, "w", encoding="utf-8", newline="") as f:
        for s, t in rows:
            f.write(s.ljust(w_src) + "_" + t.ljust(w_tgt) + newline)


def _book_split(n: int) -> tuple[list[int], list[int]]:
    """The book's dataset/sequence.py: numpy seed 1984, shuffle the indices, the last 10 % are the test set."""
    rs = np.random.RandomState(1984)
    idx = np.arange(n)
    rs.shuffle(idx)
    split_at = n - n // 10
    return idx[:split_at].tolist(), idx[split_at:].tolist()


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_book_loader_round_trips_a_written_file(tmp_path, newline: str) -> None:
    p = tmp_path / "mini.txt"
    _write_book(str(p), ROWS, newline)
    d = textfile.load(str(p))
    got = sorted((e.src, e.tgt) for e in d.train + d.test)
    assert got == sorted(ROWS)  # padding stripped, '_' gone, inner spaces kept
    for e in d.train + d.test:
        assert not e.src.endswith(" ") and not e.tgt.endswith(" ") and "_" not in e.tgt
        assert e.align is None
    assert d.name == "mini" and d.source == "file:mini.txt"


def test_book_loader_uses_the_books_split(tmp_path) -> None:
    p = tmp_path / "mini.txt"
    _write_book(str(p), ROWS)
    d = textfile.load(str(p))
    tr, te = _book_split(len(ROWS))
    assert [(e.src, e.tgt) for e in d.train] == [ROWS[i] for i in tr]
    assert [(e.src, e.tgt) for e in d.test] == [ROWS[i] for i in te]
    assert len(d.test) == len(ROWS) // 10
    assert d.valid == d.test and d.valid_is_test


def test_book_loader_train_size_caps_only_the_training_split(tmp_path) -> None:
    p = tmp_path / "mini.txt"
    _write_book(str(p), ROWS)
    full = textfile.load(str(p))
    capped = textfile.load(str(p), train_size=5)
    assert capped.train == full.train[:5]
    assert capped.test == full.test


@pytest.mark.parametrize(
    "content, words",
    [
        ("16+75  _91  \n52+607 659  \n" + "1+1 _2\n" * 10, [":2:", "_"]),  # line 2 has no '_'
        ("", ["empty"]),
        ("16+75  _91  \n\n52+607 _659 \n" + "".join(f"{i}+1 _{i + 1}\n" for i in range(10)), [":2:", "empty"]),
        ("16+75  _91  \n   \n" + "".join(f"{i}+1 _{i + 1}\n" for i in range(10)), [":2:", "empty"]),
    ],
    ids=["no-underscore", "empty-file", "empty-line", "blank-line"],
)
def test_book_loader_rejects_malformed_files(tmp_path, content: str, words: list[str]) -> None:
    p = tmp_path / "bad.txt"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(UserError) as ei:
        textfile.load(str(p))
    msg = str(ei.value)
    assert "bad.txt" in msg and "\n" not in msg
    for w in words:
        assert w in msg


def test_book_loader_rejects_a_missing_file(tmp_path) -> None:
    with pytest.raises(UserError, match="missing.txt"):
        textfile.load(str(tmp_path / "missing.txt"))


def test_book_loader_rejects_too_few_lines_for_a_test_split(tmp_path) -> None:
    p = tmp_path / "few.txt"
    _write_book(str(p), ROWS[:5])
    with pytest.raises(UserError, match="few.txt"):
        textfile.load(str(p))


@pytest.mark.parametrize("fname", ["date.txt", "addition.txt"])
def test_book_data_file_loads_45000_train_5000_test(fname: str) -> None:
    path = os.path.join(BOOK_DIR, fname)
    if not os.path.exists(path):
        pytest.skip(f"the book's {fname} is not available beside this checkout")
    d = textfile.load(path)
    assert (len(d.train), len(d.test)) == (45_000, 5_000)
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    tr, te = _book_split(len(lines))
    for k in (0, 1, 2, 44_999):  # the book's own order
        q, a = lines[tr[k]].split("_", 1)
        assert (d.train[k].src, d.train[k].tgt) == (q.rstrip(" "), a.rstrip(" "))
    q, a = lines[te[-1]].split("_", 1)
    assert (d.test[-1].src, d.test[-1].tgt) == (q.rstrip(" "), a.rstrip(" "))
    if fname == "date.txt":
        for e in d.test[:200]:
            dt.date.fromisoformat(e.tgt)
    else:
        for e in d.test[:200]:
            a_, b_ = e.src.split("+")
            assert int(e.tgt) == int(a_) + int(b_)


@pytest.mark.parametrize("name", GENERATORS)
def test_generated_splits_have_no_test_question_in_training(name: str) -> None:
    d = tasks.make(name, SMALL)
    assert tasks.split_overlap(d) == {"test_questions": 60, "test_questions_in_train": 0, "test_examples_in_train": 0}


def test_a_files_split_overlap_counts_distinct_questions_and_examples(tmp_path) -> None:
    rows = ROWS + [ROWS[0]] * 6 + [ROWS[1]] * 6  # repeated lines: the shuffle puts copies on both sides
    p = tmp_path / "dup.txt"
    _write_book(str(p), rows)
    d = textfile.load(str(p))
    tr, te = _book_split(len(rows))
    train_q = {rows[i][0] for i in tr}
    test_q = [rows[i][0] for i in te]
    want = {"test_questions": len(set(test_q)), "test_questions_in_train": len(set(test_q) & train_q),
            "test_examples_in_train": sum(q in train_q for q in test_q)}
    assert want["test_questions_in_train"] > 0  # the case this is about
    assert tasks.split_overlap(d) == want
    capped = textfile.load(str(p), train_size=1)  # what the run trained on counts, not the whole file
    assert tasks.split_overlap(capped)["test_questions_in_train"] <= want["test_questions_in_train"]


@pytest.mark.parametrize("fname, want", [("date.txt", (4_907, 1_371, 1_405)), ("addition.txt", (5_000, 0, 0))])
def test_the_books_own_split_repeats_test_questions_in_training(fname: str, want: tuple[int, int, int]) -> None:
    path = os.path.join(BOOK_DIR, fname)
    if not os.path.exists(path):
        pytest.skip(f"the book's {fname} is not available beside this checkout")
    o = tasks.split_overlap(textfile.load(path))
    assert (o["test_questions"], o["test_questions_in_train"], o["test_examples_in_train"]) == want


@pytest.mark.parametrize(
    "first_import, registry, expected",
    [
        ("bench.data.tasks.algorithmic", "bench.data.tasks", ["date", "addition", "copy", "reverse", "sort"]),
        ("models.ntm", "models", ["seq2seq", "peeky", "attention", "gnmt", "transformer", "ntm"]),
    ],
    ids=["tasks", "models"],
)
def test_registry_lists_everything_whatever_was_imported_first(first_import: str, registry: str, expected: list[str]) -> None:
    """Importing one task (or model) module directly must not hide the others from names()/entry()."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (f"import importlib, json; importlib.import_module({first_import!r}); r = importlib.import_module({registry!r}); "
            "print(json.dumps(r.names()))")
    env = {**os.environ, "PYTHONPATH": repo, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert p.returncode == 0, p.stderr
    names = json.loads(p.stdout.strip().splitlines()[-1])
    assert set(expected) <= set(names), names
