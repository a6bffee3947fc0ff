"""Every test example's output, stored with its run: the run_predictions table in the version-1 schema, carried by
merge, read by ``export --predictions`` (CSV, JSON lines) -- and a store without the table still read and written."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3

import pytest

from bench.results import outputs
from bench.results.merge import merge
from bench.results.store import RunRecord, Store
from tests.conftest import run_cli
from tests.factories import run_record

PREDS = [["ABADI", ["AH B AE D IY", "AA B AA D IY"], "AH B AE D IY", 0], ["ZOO", ["Z UW"], "Z OW", 1]]


def _record(sid: str, key: str, predictions=None, finished: str = "2024-01-01T00:01:00+00:00") -> RunRecord:
    return run_record(session=sid, key=key, task="g2p", model=key.split("/")[1], finished=finished,
                      metrics={"test_exact_match": 0.5, "test_ter": 1 / 7}, predictions=predictions)


def _store(path: str, sid: str = "s1", preds=PREDS) -> Store:
    st = Store(path)
    st.add_session(sid, "2024-01-01T00:00:00+00:00", None, "c", {})
    st.add_run(_record(sid, "g2p/attention/tiny/0/abc", preds))
    st.add_run(_record(sid, "g2p/seq2seq/tiny/0/abc"))  # a run without outputs (an older run, a failed one)
    return st


def test_predictions_round_trip_apart_from_the_run(tmp_path) -> None:
    st = _store(str(tmp_path / "s.sqlite"))
    with_, without = st.runs("s1")
    assert [p.row() for p in st.predictions(with_.id)] == PREDS
    assert st.predictions(without.id) is None
    assert outputs.KEY not in with_.metrics and with_.predictions is None  # read on demand, never with every run
    st.close()


def test_a_store_without_the_table_is_still_read_and_written(tmp_path) -> None:
    path = str(tmp_path / "old.sqlite")
    _store(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute("DROP TABLE run_predictions")  # as a store written before the table existed
    db.close()
    ro = Store.open_read_only(path)
    assert ro.predictions(ro.runs()[0].id) is None  # read only: no table, no outputs, no error
    ro.close()
    st = Store(path)  # opened for writing: the table is added, the store stays version 1
    rid = st.add_run(_record("s1", "g2p/gnmt/tiny/0/abc", PREDS))
    assert st.predictions(rid) is not None and st.schema_version() == 1
    st.close()


def test_merge_carries_each_runs_outputs(tmp_path) -> None:
    a, b = str(tmp_path / "a.sqlite"), str(tmp_path / "b.sqlite")
    _store(a, "s1").close()
    _store(b, "s2", preds=[["X", ["Y"], "Y", 0]]).close()
    out = str(tmp_path / "m.sqlite")
    merge(out, [a, b])
    st = Store.open_read_only(out)
    got = {r.session: st.predictions(r.id) for r in st.runs() if r.model == "attention"}
    assert [p.row() for p in got["s1"]] == PREDS and [p.row() for p in got["s2"]] == [["X", ["Y"], "Y", 0]]
    st.close()
    merge(out, [a])  # merged again: nothing doubled
    db = sqlite3.connect(out)
    assert db.execute("SELECT COUNT(*) FROM run_predictions").fetchone()[0] == 2
    db.close()


def test_a_replaced_run_takes_its_outputs_along(tmp_path) -> None:
    a, b = str(tmp_path / "a.sqlite"), str(tmp_path / "b.sqlite")
    _store(a, "s1").close()
    st = Store(b)
    st.add_session("s1", "2024-01-01T00:00:00+00:00", None, "c", {})
    st.add_run(_record("s1", "g2p/attention/tiny/0/abc", [["NEW", ["N UW"], "N UW", 0]], finished="2024-01-02T00:00:00+00:00"))
    st.close()
    out = str(tmp_path / "m.sqlite")
    merge(out, [a])
    merge(out, [b])  # the later-finished copy of the run replaces OUT's
    st = Store.open_read_only(out)
    (run,) = [r for r in st.runs() if r.model == "attention"]
    assert [p.source for p in st.predictions(run.id)] == ["NEW"]
    st.close()
    db = sqlite3.connect(out)
    assert db.execute("SELECT COUNT(*) FROM run_predictions").fetchone()[0] == 1  # the dropped run's outputs went with it
    db.close()


def test_export_predictions_as_csv_and_json_lines(tmp_path) -> None:
    path = str(tmp_path / "s.sqlite")
    _store(path).close()
    rc, out, err = run_cli(["export", "--predictions", "--store", path])
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["source"] for r in rows] == ["ABADI", "ZOO"] and rows[0]["run"] == "g2p/attention/tiny/0/abc"
    assert json.loads(rows[0]["references"]) == ["AH B AE D IY", "AA B AA D IY"] and rows[1]["distance"] == "1"
    rc, out, err = run_cli(["export", "--predictions", "--format", "json", "--store", path])
    assert rc == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert set(lines[0]) == {"session", "run", "source", "references", "hypothesis", "distance"}
    assert lines[1] == {"session": "s1", "run": "g2p/attention/tiny/0/abc", "source": "ZOO", "references": ["Z UW"], "hypothesis": "Z OW",
                        "distance": 1}


def _tsv(tmp_path) -> str:
    """A tiny lexicon: every word's phones are its letters; every third word has a second pronunciation."""
    lines = []
    for i in range(120):
        w = "".join("abcdefgh"[(i >> k) % 8] for k in (0, 3, 6)) + "abcdefgh"[i % 5]
        lines.append(f"{w}\t{' '.join(w.upper())}")
        if i % 3 == 0:
            lines.append(f"{w}\t{' '.join(w.upper())} S")
    p = tmp_path / "lex.tsv"
    p.write_text("\n".join(lines) + "\n")
    return str(p)


def test_a_run_on_a_parallel_corpus_scores_and_exports_every_test_example(tmp_path) -> None:
    """Through the command line: scores against the closest reference, recomputable from the export."""
    pytest.importorskip("rapidfuzz")
    store = str(tmp_path / "s.sqlite")
    rc, out, err = run_cli(["run", "--task-file", _tsv(tmp_path), "--target-tokens", "space", "--target-unit", "phone", "--model",
                            "attention", "--size", "tiny", "--epochs", "2", "--device", "cpu", "--store", store])
    assert rc == 0, err
    st = Store.open_read_only(store)
    (run,) = st.runs()
    m = run.metrics
    assert run.config["data"]["target_tokens"] == "space" and run.config["data"]["target_unit"] == "phone"
    assert m["target_unit"] == "phone" and m["alignment"] is None  # no known alignment: none, not 0
    preds = st.predictions(run.id)
    assert len(preds) == m["test_n"] == 12
    assert m["test_ser"] == pytest.approx(sum(p.distance > 0 for p in preds) / len(preds))
    assert m["test_ser"] == pytest.approx(1 - m["test_exact_match"])
    from rapidfuzz.distance import Levenshtein

    edits = total = 0
    for p in preds:  # the export alone recomputes the corpus-level PER
        d, ref = min((Levenshtein.distance(p.hypothesis.split(), r.split()), r) for r in p.references)
        first = next(r for r in p.references if Levenshtein.distance(p.hypothesis.split(), r.split()) == d)
        assert d == p.distance
        edits, total = edits + d, total + len(first.split())
    assert m["test_ter"] == pytest.approx(edits / total)
    st.close()
    assert os.path.exists(store)
