"""The book's suites, its figures, and the table that sets s2sbench's runs beside them (``bench.checks.book``)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from bench.checks import book
from bench.results.bookfigures import FIGURES, BookFigure, lookup
from bench.results.store import Store
from bench.spec import suite
from tests.bookcode import BOOK_CODE, BOOK_DATA, needs_book_code, needs_book_data
from tests.factories import run_record

BOOK_SUITES = ("book_ch7", "book_ch8", "book_ablation")


@pytest.fixture(scope="module")
def loaded() -> dict[str, list]:
    return {n: suite.load(n, data_dir="/nonexistent/book")[2] for n in BOOK_SUITES}


def test_book_suites_run_the_books_configuration(loaded) -> None:
    for name, specs in loaded.items():
        assert {s.size for s in specs} == {"book"} and len({s.seed for s in specs}) >= 3, name
        for s in specs:
            assert (s.train.batch_size, s.train.lr, s.train.clip) == (128, 1e-3, 5.0)
            assert s.train.epochs == (10 if s.data.name == "date" else 25)
    for s in loaded["book_ch7"] + loaded["book_ch8"]:
        assert s.data.keep_source_padding and s.data.fixed_length_target, s.label()
        assert s.model_options in ((), (("hidden", 256),)), s.label()
    # ch. 8 runs seq2seq and peeky at its own hidden 256, like attention
    assert {dict(s.model_options).get("hidden", 256) for s in loaded["book_ch8"]} == {256}


def test_the_three_epoch_attention_suite_is_book_ch8s_attention_block_cut_to_the_books_epochs(loaded) -> None:
    short = suite.load("book_ch8_attention", data_dir="/nonexistent/book")[2]
    full = [s for s in loaded["book_ch8"] if s.model == "attention"]
    assert [s.train.epochs for s in short] == [3, 3, 3]
    assert [s.seed for s in short] == [s.seed for s in full]
    # everything else equal: the same runs, fewer epochs (so the first three epochs are the same numbers)
    assert [dataclasses.replace(s, train=dataclasses.replace(s.train, epochs=10), origin=None) for s in short] == \
        [dataclasses.replace(s, origin=None) for s in full]


def test_the_ablation_starts_at_ch7s_run_and_changes_one_thing_at_a_time(loaded) -> None:
    ablation = [s for s in loaded["book_ablation"] if s.seed == 0]
    ch7 = {s.key() for s in loaded["book_ch7"]}
    assert ablation[0].key() in ch7  # the very run of book_ch7: stored once, read by both tables
    base = book.options(ablation[0])
    diffs = [{k for k, v in book.options(s).items() if v != base[k]} for s in ablation]
    assert diffs[0] == set() and all(len(d) == 1 for d in diffs[1:-1])
    assert set().union(*diffs[1:-1]) == diffs[-1] and book.is_default(ablation[-1]) and not book.is_default(ablation[0])
    assert diffs[-1] == {"carry_cell", "init", "one_bias", "keep_source_padding", "fixed_length_target"}


def test_every_figure_is_consistent_and_the_book_rows_have_one(loaded) -> None:
    assert len({(f.task, f.model, f.reverse_source, f.epochs) for f in FIGURES}) == len(FIGURES)
    for f in FIGURES:
        assert 0 <= f.final <= f.best <= 1 and f.epochs >= 1 and f.where.startswith("§")
        assert f.command().startswith("python run_book.py --task")
    for s in loaded["book_ch7"]:  # ch. 7 in full; ch. 8: attention (seq2seq and peeky on dates: not run yet)
        assert lookup(s.data.name, s.model, s.data.reverse_source) is not None, s.label()
    assert lookup("date", "attention", True) is not None


def _trained(valid: list[float]) -> dict:
    """A run's history and metrics when it reached these validation exact matches, epoch by epoch."""
    return {"history": [{"epoch": i + 1, "valid_exact_match": a} for i, a in enumerate(valid)], "metrics": {"test_exact_match": valid[-1]}}


def test_the_table_reads_runs_from_any_session_and_data_folder(tmp_path) -> None:
    _, _, runs_here = suite.load("book_ablation", data_dir=str(tmp_path / "elsewhere"))  # where the runs were made
    _, _, specs = suite.load("book_ablation", data_dir="/some/other/dir")  # where the table is asked for
    store = Store(str(tmp_path / "s.sqlite"))
    groups_seen = []
    for s in runs_here:
        if s.seed == 2 and s.model_options:  # leave some seeds out: the note says so
            continue
        acc = 0.5 + 0.1 * s.seed if not s.model_options else 0.99
        store.add_run(run_record(s, session=f"s{s.seed}", **_trained([0.1] * 24 + [acc])))
        groups_seen.append(s.key())
    store.add_run(run_record(runs_here[0], session="failed-later", **_trained([0.2] * 25)))  # replaced below by a later run
    store.add_run(run_record(runs_here[0], session="again", **_trained([0.1] * 24 + [0.5])))
    text = book.render("book_ablation", book.collect(specs, store.runs()))
    store.close()
    lines = text.splitlines()
    assert lines[2].startswith("| the book's configuration | 60.0 [") and "| 50.0, 60.0, 70.0 |" in lines[2]
    assert lines[3].startswith("| carry_cell=true | 99.0 [") or lines[3].startswith("| carry_cell=true | 99.0 |")
    assert "(s2sbench's default)" in lines[8]
    assert "Not all seeds run yet" in text and "carry_cell=true (2 of 3)" in text


def test_a_figure_for_fewer_epochs_is_compared_at_that_epoch(tmp_path, monkeypatch) -> None:
    fig = BookFigure("date", "attention", True, 256, 3, final=0.999, best=0.999, where="§8.3")
    monkeypatch.setattr(book, "lookup", lambda task, model, rev: fig if model == "attention" else None)
    _, _, specs = suite.load("book_ch8", data_dir=str(tmp_path))
    store = Store(str(tmp_path / "s.sqlite"))
    for s in specs:
        if s.model == "attention":
            store.add_run(run_record(s, **_trained([0.0, 0.5, 0.97, 0.999, 1.0])))  # perfect after epoch 5: stopped there
    groups = book.collect(specs, store.runs())
    store.close()
    g = next(g for g in groups if g.spec.model == "attention")
    assert (g.final, g.best, g.epochs) == ([0.97] * 3, [0.97] * 3, [5] * 3)
    row = next(line for line in book.book_table(groups).splitlines() if "| attention |" in line)
    assert "| 3 of 10 | 99.9 | 99.9 | – | 97.0 [97.0, 97.0] |" in row and row.endswith("| no | – |")
    assert "| not run |" in book.book_table(groups)  # seq2seq and peeky: no runs in this store


def test_cli_errors_are_one_line(tmp_path, capsys) -> None:
    assert book.main(["--suite", "book_ch7", "--data-dir", str(tmp_path), "--store", str(tmp_path / "none.sqlite")]) == 2
    assert "no such store" in capsys.readouterr().err


def test_run_runs_the_suite_through_the_command_line_into_the_store(tmp_path) -> None:
    """``--run``: ``s2sbench run`` in a process of its own (the checks do not import the command line)."""
    path = tmp_path / "tiny.toml"
    path.write_text('[defaults]\nsizes = ["tiny"]\nepochs = 1\ntrain = 40\nvalid = 10\ntest = 10\n'
                    '[[runs]]\ntasks = ["date"]\nmodels = ["attention"]\n', encoding="utf-8")
    store = str(tmp_path / "s.sqlite")
    assert book.run_suite(str(path), str(tmp_path), store, "3") == 0
    s = Store.open_existing(store)
    try:
        runs = s.runs()
    finally:
        s.close()
    assert [(r.model, r.seed, r.status) for r in runs] == [("attention", 3, "ok")]


@pytest.mark.slow
@needs_book_code
@needs_book_data
def test_the_books_first_epoch_is_the_recorded_figure() -> None:
    """The book's code is deterministic (numpy seeded in its loader): its first epoch matches the curve kept."""
    fig = next(f for f in FIGURES if f.curve is not None and f.task == "addition")
    cmd = [sys.executable, os.path.join(BOOK_CODE, "run_book.py"), "--task", fig.task, "--model", fig.model,
           "--epochs", "1", "--hidden", str(fig.hidden), "--data-dir", BOOK_DATA] + (["--reverse"] if fig.reverse_source else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600,
                         env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"))
    first = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")][0]
    # 5,000 test questions: one flipped answer (a float rounding in another BLAS) is 0.0002
    assert abs(first["test_exact_match"] - fig.curve[0]) <= 0.0006


@pytest.mark.slow
@needs_book_code
@needs_book_data
def test_bookseeds_without_a_seed_is_the_books_run_and_with_one_another_draw() -> None:
    fig = next(f for f in FIGURES if f.curve is not None and f.task == "addition")
    base = [sys.executable, "-m", "bench.checks.bookseeds", "--book-code", BOOK_CODE, "--data-dir", BOOK_DATA, "--task", fig.task,
            "--model", fig.model, "--hidden", str(fig.hidden), "--epochs", "1"] + (["--reverse"] if fig.reverse_source else [])
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    runs = [subprocess.run(base + extra, capture_output=True, text=True, check=True, timeout=600, env=env)
            for extra in ([], ["--seed", "1"])]
    own, other = ([json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")][0]["test_exact_match"] for r in runs)
    assert abs(own - fig.curve[0]) <= 0.0006
    assert own != other


def test_bookseeds_refuses_a_folder_without_the_books_code(tmp_path, capsys) -> None:
    from bench.checks import bookseeds

    assert bookseeds.main(["--book-code", str(tmp_path), "--data-dir", str(tmp_path)]) == 2
    assert "not the book's code" in capsys.readouterr().err


def test_the_book_codes_own_spread_is_set_against_s2sbenchs_mean(tmp_path, monkeypatch) -> None:
    fig = BookFigure("addition", "seq2seq", True, 128, 2, final=0.54, best=0.54, where="§7.4.1", reseeded=(0.42, 0.32, 0.32, 0.35))
    monkeypatch.setattr(book, "lookup", lambda task, model, rev: fig if (model, rev) == ("seq2seq", True) else None)
    _, _, specs = suite.load("book_ch7", data_dir=str(tmp_path))
    store = Store(str(tmp_path / "s.sqlite"))
    for s, acc in zip([s for s in specs if s.model == "seq2seq" and s.data.reverse_source], (0.21, 0.38, 0.34)):
        store.add_run(run_record(s, **_trained([0.1, acc])))
    row = next(line for line in book.book_table(book.collect(specs, store.runs())).splitlines()
               if "| reversed |" in line and "seq2seq" in line)
    store.close()
    assert "| 35.2 [27.7, 42.8] (42.0, 32.0, 32.0, 35.0) | 31.0 [8.9, 53.1] |" in row and row.endswith("| no | yes |")
