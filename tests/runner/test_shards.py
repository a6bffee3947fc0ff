"""Shards and merge: a deterministic, balanced partition; two shards + merge == one unsharded session;
merge keeps sessions and runs, resolves duplicates, refuses what is not a store of this schema."""

from __future__ import annotations

import json
import random
import sqlite3

import pytest

from bench.results.store import Store
from bench.runner import shard
from bench.spec import suite
from tests.conftest import run_cli, snapshot
from tests.factories import run_record

TINY_SUITE = """
description = "four tiny runs"
[defaults]
sizes = ["tiny"]
train = 120
valid = 20
test = 20
epochs = 1
decode_repeats = 1
decode_batch = 8
[[runs]]
tasks = ["date"]
models = ["attention", "seq2seq"]
seeds = [0, 1]
"""

QUALITY = ("final_loss", "test_exact_match", "test_token_accuracy", "valid_exact_match", "params", "epochs")


def _one_error_line(rc: int, out: str, err: str, *words: str) -> None:
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])


# --- the partition -------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, k, n", [("1/1", 1, 1), ("2/3", 2, 3), ("4/4", 4, 4)])
def test_shard_parses_one_based(text, k, n):
    assert shard.parse(text) == (k, n)


@pytest.mark.parametrize("text", ["3/2", "0/2", "x", "1/0", "2", "1/x", "-1/2", ""])
def test_bad_shard_is_one_line_and_exit_2_with_no_store(tmp_path, text):
    store = tmp_path / "s.sqlite"
    rc, out, err = run_cli(["run", "--suite", "quick", "--shard", text, "--device", "cpu", "--store", str(store)])
    _one_error_line(rc, out, err, "--shard")
    assert not store.exists()


@pytest.mark.parametrize("name, n", [("quick", 2), ("quick", 5), ("full", 4), ("algorithmic", 3), ("book", 8)])
def test_partition_covers_every_run_once_and_ignores_suite_order(name, n):
    _, _, specs = suite.load(name, data_dir="/nonexistent")
    parts = shard.partition(specs, n)
    keys = [s.key() for p in parts for s in p]
    assert sorted(keys) == sorted(s.key() for s in specs) and len(keys) == len(set(keys))
    shuffled = list(specs)
    random.Random(7).shuffle(shuffled)
    assert [[s.key() for s in p] for p in shard.partition(shuffled, n)] == [[s.key() for s in p] for p in parts]
    # each shard computed on its own selects exactly its part, in suite order
    for k in range(1, n + 1):
        mine, info = shard.select(shuffled, (k, n))
        part = {s.key() for s in parts[k - 1]}
        assert [s.key() for s in mine] == [s.key() for s in shuffled if s.key() in part]
        assert info["index"] == k and info["count"] == n and info["runs"] == len(mine) and info["suite_runs"] == len(specs)
        assert info["suite_fingerprint"] == shard.fingerprint(specs)


@pytest.mark.parametrize("name, n", [("quick", 2), ("quick", 4), ("full", 4), ("algorithmic", 3)])
def test_partition_is_balanced_by_cost(name, n):
    _, _, specs = suite.load(name)
    loads = [sum(shard.cost(s) for s in p) for p in shard.partition(specs, n)]
    biggest = max(shard.cost(s) for s in specs)
    assert max(loads) - min(loads) <= biggest  # the greedy (LPT) bound
    if len(specs) >= 4 * n and biggest <= 0.1 * sum(loads) / n:  # many runs, none a large part of a shard: near even
        assert max(loads) <= 1.1 * sum(loads) / n


def test_cost_follows_model_size_and_budget(make_spec):
    s = make_spec("attention")
    assert shard.cost(make_spec("ntm")) > shard.cost(s)
    assert shard.cost(make_spec("attention", epochs=4)) > shard.cost(s)
    assert shard.cost(make_spec("attention", train=2000)) > shard.cost(s)
    from dataclasses import replace

    assert shard.cost(replace(s, size="small")) > shard.cost(s)
    assert isinstance(shard.cost(s), int)


# --- end to end: two shards + merge == one session ----------------------------------------------------------
def _keys_and_quality(path: str, session: str) -> list[tuple]:
    store = Store.open_existing(path)
    try:
        return sorted((r.key, r.status, tuple(r.metrics.get(m) for m in QUALITY)) for r in store.runs(session))
    finally:
        store.close()


def test_two_shards_and_merge_give_exactly_the_runs_of_one_session(tmp_path):
    s = tmp_path / "tiny.toml"
    s.write_text(TINY_SUITE)
    common = ["--suite", str(s), "--device", "cpu", "--threads", "1"]
    rc, out, err = run_cli(["run", *common, "--session-id", "whole", "--store", str(tmp_path / "whole.sqlite")])
    assert rc == 0, err
    outs = []
    for k in (1, 2):
        rc, out, err = run_cli(["run", *common, "--shard", f"{k}/2", "--session-id", "sharded", "--store", str(tmp_path / f"s{k}.sqlite")])
        assert rc == 0, err
        assert f"shard {k}/2: 2 of 4 runs" in out
        outs.append(out)
        env = Store.open_existing(str(tmp_path / f"s{k}.sqlite")).session("sharded")["env"]
        assert env["shard"]["index"] == k and env["shard"]["count"] == 2 and env["shard"]["suite_runs"] == 4
    merged = str(tmp_path / "merged.sqlite")
    rc, out, err = run_cli(["merge", merged, str(tmp_path / "s1.sqlite"), str(tmp_path / "s2.sqlite")])
    assert rc == 0, err
    assert "session sharded: shards 1, 2 of 2 (complete, 4 of the suite's 4 runs)" in out
    assert "4 run(s) added" in out
    rc, out, err = run_cli(["merge", str(tmp_path / "half.sqlite"), str(tmp_path / "s1.sqlite")])
    assert rc == 0 and "session sharded: shards 1 of 2; missing 2, 2 of the suite's 4 runs" in out

    whole = _keys_and_quality(str(tmp_path / "whole.sqlite"), "whole")
    split = _keys_and_quality(merged, "sharded")
    assert len(whole) == 4 and len({k for k, _, _ in whole}) == 4
    assert [k for k, _, _ in split] == [k for k, _, _ in whole]  # the same run keys, each once
    assert split == whole  # and on a CPU the same measured quality, to the last digit
    (sess,) = Store.open_existing(merged).sessions()
    assert sess["status"] == "finished" and sess["runs"] == 4 and sess["suite"] == "tiny"
    assert sorted(p["shard"]["index"] for p in sess["env"]["parts"]) == [1, 2]


# --- merge, on hand-made stores ----------------------------------------------------------------------------
def _store(path, sessions: dict[str, list[tuple[str, str, str]]], suite_name: str = "s", env: dict | None = None,
           status: str = "finished") -> str:
    """sessions: id -> [(key, status, finished)]; each session ends ``status``."""
    st = Store(str(path))
    for sid, runs in sessions.items():
        st.add_session(sid, "2026-01-01T00:00:00+00:00", suite_name, f"s2sbench run --session-id {sid}", env or {"host": str(path)})
        for key, run_status, fin in runs:
            st.add_run(run_record(session=sid, key=key, config={"k": key}, status=run_status, error=None if run_status == "ok" else "boom",
                                  finished=fin, metrics={"test_exact_match": 0.5, "from": str(path)}))
        st.finish_session(sid, "2026-01-01T01:00:00+00:00", status)
    st.close()
    return str(path)


def _rows(path: str) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT session, key, status, finished, metrics FROM runs ORDER BY session, key").fetchall()
    finally:
        db.close()


def test_merge_joins_same_session_ids_keeps_others_and_later_finished_wins(tmp_path):
    a = _store(tmp_path / "a.sqlite", {"S": [("k1", "ok", "2026-01-01T00:10:00+00:00"), ("k2", "failed", "2026-01-01T00:20:00+00:00")],
                                      "A": [("k1", "ok", "2026-01-01T00:05:00+00:00")]})
    b = _store(tmp_path / "b.sqlite", {"S": [("k2", "ok", "2026-01-01T00:30:00+00:00"), ("k3", "ok", "2026-01-01T00:40:00+00:00")],
                                      "B": [("k1", "ok", "2026-01-01T00:05:00+00:00")]})
    out = str(tmp_path / "out.sqlite")
    rc, stdout, err = run_cli(["merge", out, a, b])
    assert rc == 0, err
    rows = _rows(out)
    assert [(s, k, st) for s, k, st, _, _ in rows] == [("A", "k1", "ok"), ("B", "k1", "ok"), ("S", "k1", "ok"), ("S", "k2", "ok"),
                                                       ("S", "k3", "ok")]
    assert json.loads(rows[3][4])["from"] == b  # the later finished k2 (b's ok), not a's failed one
    assert "session S: run k2 twice; kept the one finished 2026-01-01T00:30:00+00:00 (ok)" in stdout and "dropped" in stdout
    st = Store.open_existing(out)
    assert {s["id"]: s["runs"] for s in st.sessions()} == {"A": 1, "B": 1, "S": 3}
    assert len(st.session("S")["env"]["parts"]) == 2
    st.close()

    before = snapshot(out)  # merging the same stores again changes nothing
    rc, stdout, err = run_cli(["merge", out, a, b])
    assert rc == 0, err
    assert snapshot(out) == before
    assert "0 run(s) added" in stdout


def test_merge_into_an_existing_store_replaces_an_older_copy_of_a_run(tmp_path):
    """... of a session that did not finish there; a finished session's runs stay as they are (docs/store.md)."""
    out = _store(tmp_path / "out.sqlite", {"S": [("k1", "failed", "2026-01-01T00:10:00+00:00")]}, status="interrupted")
    b = _store(tmp_path / "b.sqlite", {"S": [("k1", "ok", "2026-01-01T00:20:00+00:00")]})
    rc, stdout, err = run_cli(["merge", out, b])
    assert rc == 0, err
    assert [(s, k, st) for s, k, st, _, _ in _rows(out)] == [("S", "k1", "ok")]
    assert "kept the one finished 2026-01-01T00:20:00+00:00 (ok)" in stdout

    closed = _store(tmp_path / "closed.sqlite", {"S": [("k1", "failed", "2026-01-01T00:10:00+00:00")]})
    rc, stdout, err = run_cli(["merge", closed, b])
    assert rc == 0, err
    assert [(s, k, st) for s, k, st, _, _ in _rows(closed)] == [("S", "k1", "failed")]  # finished in OUT: as it was
    assert f"finished in {closed}, so its run k1 stays as it is there" in stdout


def _not_a_store(tmp_path) -> str:
    p = tmp_path / "notes.txt"
    p.write_text("hello\n")
    return str(p)


def _other_sqlite(tmp_path) -> str:
    p = str(tmp_path / "other.sqlite")
    db = sqlite3.connect(p)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    return p


def _future_schema(tmp_path) -> str:
    p = _store(tmp_path / "future.sqlite", {"F": [("k9", "ok", "2026-01-01T00:10:00+00:00")]})
    db = sqlite3.connect(p)
    db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    db.commit()
    db.close()
    return p


def _other_suite(tmp_path) -> str:
    return _store(tmp_path / "othersuite.sqlite", {"S": [("k5", "ok", "2026-01-01T00:10:00+00:00")]}, suite_name="different")


@pytest.mark.parametrize("bad, words", [
    (_not_a_store, ["notes.txt", "not a results store"]),
    (_other_sqlite, ["other.sqlite", "not a results store"]),
    (_future_schema, ["future.sqlite", "schema version 2"]),
    (lambda d: str(d / "missing.sqlite"), ["missing.sqlite"]),
    (_other_suite, ["session 'S'", "different suites"]),
])
@pytest.mark.parametrize("out_exists", [True, False])
def test_merge_refuses_bad_inputs_and_writes_nothing(tmp_path, bad, words, out_exists):
    good = _store(tmp_path / "good.sqlite", {"S": [("k1", "ok", "2026-01-01T00:10:00+00:00")]})
    out = tmp_path / "out.sqlite"
    if out_exists:
        _store(out, {"O": [("k0", "ok", "2026-01-01T00:01:00+00:00")]})
        before = snapshot(str(out))
    rc, stdout, err = run_cli(["merge", str(out), good, bad(tmp_path)])
    _one_error_line(rc, stdout, err, *words)
    if out_exists:
        assert snapshot(str(out)) == before
    else:
        assert not out.exists()


def test_merge_refuses_output_that_is_also_an_input(tmp_path):
    a = _store(tmp_path / "a.sqlite", {"S": []})
    before = snapshot(a)
    _one_error_line(*run_cli(["merge", a, a]), "also an input")
    assert snapshot(a) == before


# --- session ids ------------------------------------------------------------------------------------------
def test_session_id_taken_needs_resume_and_resume_continues_it(tmp_path):
    s = tmp_path / "tiny.toml"
    s.write_text(TINY_SUITE)
    path = str(tmp_path / "s.sqlite")
    args = ["run", "--suite", str(s), "--model", "attention", "--device", "cpu", "--threads", "1", "--store", path, "--session-id", "job-7"]
    _, _, specs = suite.load(str(s), {"models": ["attention"]})
    st = Store(path)  # an interrupted session that finished seed 0
    st.add_session("job-7", "2026-01-01T00:00:00+00:00", "tiny", "earlier", {}, plan=[sp.key() for sp in specs])
    st.add_run(run_record(specs[0], session="job-7", metrics={"test_exact_match": 0.0}))
    st.finish_session("job-7", "2026-01-01T00:02:00+00:00", "interrupted")
    st.close()
    before = snapshot(path)
    _one_error_line(*run_cli(args), "job-7", "--resume")
    assert snapshot(path) == before
    rc, out, err = run_cli([*args, "--resume"])
    assert rc == 0, err
    st = Store.open_existing(path)
    assert [(r.seed, r.status) for r in st.runs("job-7")] == [(0, "ok"), (1, "ok")]  # only the missing run ran
    assert st.session("job-7")["status"] == "finished"


@pytest.mark.parametrize("sid", ["latest", "all", "a b", "", "-x", "x" * 65])
def test_bad_session_id_is_one_line(tmp_path, sid):
    store = tmp_path / "s.sqlite"
    _one_error_line(*run_cli(["run", "--task", "date", "--model", "attention", "--session-id", sid, "--store", str(store)]), "--session-id")
    assert not store.exists()
