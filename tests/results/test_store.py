"""The results store: round trips, failure isolation, divergence, bad files, interruption and resume."""

from __future__ import annotations

import sqlite3

import pytest

import bench.train.loop
from bench.errors import UserError
from bench.results.store import SCHEMA_VERSION, RunRecord, Store
from bench.runner.execute import execute as real_execute
from bench.runner.executor import LocalExecutor
from bench.runner.session import run_session
from bench.spec.run import SessionConfig
from tests.conftest import snapshot
from tests.factories import run_record

CPU = SessionConfig(device="cpu")


# A run as the runner stores one, every field holding something a round trip could lose (nested JSON, a
# float that is not exact in decimal, None inside metrics).
STORED = dict(config={"model": "attention", "train": {"lr": 0.001, "amp": "off"}, "model_options": {}}, config_hash="abc123",
              started="2024-01-01T00:00:00+00:00", finished="2024-01-01T00:01:00+00:00")
MEASURED = dict(metrics={"test_exact_match": 0.125, "epoch_seconds": [1.5, 0.25], "time_to_target_s": None,
                         "test_by_length": {"7": [1, 8]}},
                history=[{"epoch": 1, "loss": 2.5}, {"epoch": 2, "loss": 1.0 / 3.0}], samples=[{"row": 0, "attention": [[0.5, 0.5]]}])


def test_session_with_runs_round_trips(tmp_path) -> None:
    path = str(tmp_path / "sub" / "s.sqlite")  # the folder is created
    st = Store(path)
    env = {"device_name": "cpu", "threads": 2, "nested": {"a": [1, 2]}}
    st.add_session("s1", "2024-01-01T00:00:00+00:00", "quick", "s2sbench run --suite quick", env)
    recs = [run_record(session="s1", **STORED, **MEASURED),
            run_record(session="s1", model="seq2seq", status="failed", error="RuntimeError: boom", **STORED)]
    ids = [st.add_run(r) for r in recs]
    st.finish_session("s1", "2024-01-01T00:05:00+00:00", "finished")
    st.close()

    st = Store.open_existing(path)
    assert st.schema_version() == SCHEMA_VERSION
    (s,) = st.sessions()
    assert s == {"id": "s1", "started": "2024-01-01T00:00:00+00:00", "finished": "2024-01-01T00:05:00+00:00", "status": "finished",
                 "suite": "quick", "command": "s2sbench run --suite quick", "env": env, "runs": 2}
    got = st.runs("s1")
    assert [r.id for r in got] == ids
    for r, want in zip(got, recs, strict=True):
        assert r == RunRecord(**{**want.__dict__, "id": r.id})
    assert st.runs() == got and st.runs("other") == []
    assert st.done_keys("s1") == {"date/attention/tiny/0/abc123"}  # failed runs are not done
    assert st.session("latest")["id"] == "s1" and st.session("s")["id"] == "s1"
    st.close()


def test_session_lookup_errors(tmp_path) -> None:
    st = Store(str(tmp_path / "s.sqlite"))
    with pytest.raises(UserError, match="no sessions"):
        st.session("latest")
    st.add_session("2024-a", "2024-01-01T00:00:00+00:00", None, "c", {})
    st.add_session("2024-b", "2024-01-02T00:00:00+00:00", None, "c", {})
    assert st.session("latest")["id"] == "2024-b"
    with pytest.raises(UserError, match="more than one"):
        st.session("2024")
    with pytest.raises(UserError, match="no session matches"):
        st.session("zzz")
    st.close()


def test_resumable_finds_the_latest_unfinished_session_of_a_suite(tmp_path) -> None:
    st = Store(str(tmp_path / "s.sqlite"))
    for sid, started, suite, status in [
        ("a", "2024-01-01T00:00:00+00:00", "quick", "interrupted"),
        ("b", "2024-01-02T00:00:00+00:00", "quick", "running"),
        ("c", "2024-01-03T00:00:00+00:00", "quick", "finished"),
        ("d", "2024-01-04T00:00:00+00:00", "full", "interrupted"),
        ("e", "2024-01-05T00:00:00+00:00", None, "interrupted"),
    ]:
        st.add_session(sid, started, suite, "c", {})
        if status != "running":
            st.finish_session(sid, started, status)
    assert st.resumable("quick") == "b"
    assert st.resumable("full") == "d"
    assert st.resumable(None) == "e"
    with pytest.raises(UserError, match="book"):
        st.resumable("book")
    st.close()


@pytest.mark.parametrize("content", [b"hello, I am a text file\n" * 10, b"\x00\x01binary" * 100])
def test_a_file_that_is_not_a_store_is_a_user_error_and_stays_untouched(tmp_path, content) -> None:
    p = tmp_path / "notes.sqlite"
    p.write_bytes(content)
    with pytest.raises(UserError, match="notes.sqlite"):
        Store.open_existing(str(p))
    with pytest.raises(UserError, match="notes.sqlite"):
        Store(str(p))
    assert p.read_bytes() == content


def test_a_missing_store_is_not_created_by_readers(tmp_path) -> None:
    p = tmp_path / "none.sqlite"
    with pytest.raises(UserError, match="none.sqlite"):
        Store.open_existing(str(p))
    assert not p.exists()


# --- sessions through the runner --------------------------------------------------------------------


def test_a_failing_run_is_recorded_and_the_session_goes_on(tmp_path, monkeypatch, make_spec) -> None:
    def execute(spec, *a, **kw):
        if spec.model == "seq2seq":
            raise RuntimeError("boom in the middle")
        return real_execute(spec, *a, **kw)

    specs = [make_spec("attention", seed=0), make_spec("seq2seq", seed=0), make_spec("attention", seed=1)]
    store = Store(str(tmp_path / "s.sqlite"))
    sid = run_session(specs, store, CPU, "mini", "test", executor=LocalExecutor(run=execute))
    store.close()

    store = Store.open_existing(str(tmp_path / "s.sqlite"))
    runs = store.runs(sid)
    assert [(r.model, r.seed, r.status) for r in runs] == [("attention", 0, "ok"), ("seq2seq", 0, "failed"), ("attention", 1, "ok")]
    first, failed, third = runs
    assert len(first.history) == 2 and first.metrics["epochs"] == 2
    assert 0.0 <= first.metrics["test_exact_match"] <= 1.0 and first.metrics["test_n"] == 40
    assert first.key == specs[0].key() and first.config == specs[0].config()
    assert failed.error.startswith("RuntimeError: boom in the middle")
    assert failed.metrics == {} and failed.history == [] and failed.key == specs[1].key()
    assert third.metrics["params"] == first.metrics["params"]
    (s,) = store.sessions()
    assert s["status"] == "finished" and s["finished"] is not None and s["runs"] == 3 and s["suite"] == "mini"
    store.close()


def _nan_loss(real):
    def loss(logits, tgt_out, reduction="mean"):
        return real(logits, tgt_out, reduction) * float("nan")

    return loss


def test_a_nan_loss_is_recorded_as_diverged(tmp_path, monkeypatch, make_spec) -> None:
    monkeypatch.setattr(bench.train.loop, "loss_fn", _nan_loss(bench.train.loop.loss_fn))
    store = Store(str(tmp_path / "s.sqlite"))
    sid = run_session([make_spec("attention", epochs=2)], store, CPU, None, "test")
    (r,) = store.runs(sid)
    assert r.status == "failed"
    assert r.error.startswith("diverged") and "nan" in r.error.lower()
    assert store.sessions()[0]["status"] == "finished"
    store.close()


def test_an_infinite_loss_is_recorded_as_diverged(tmp_path, monkeypatch, make_spec) -> None:
    real = bench.train.loop.loss_fn
    monkeypatch.setattr(bench.train.loop, "loss_fn", lambda lg, t, reduction="mean": real(lg, t, reduction) + float("inf"))
    store = Store(str(tmp_path / "s.sqlite"))
    sid = run_session([make_spec("attention", epochs=1), make_spec("attention", seed=3, epochs=1)], store, CPU, None, "test")
    assert [(r.status, r.error.split(":")[0]) for r in store.runs(sid)] == [("failed", "diverged")] * 2
    store.close()


def test_interrupted_session_keeps_finished_runs_and_resumes(tmp_path, monkeypatch, make_spec) -> None:
    calls: list[str] = []

    def fake(spec, prep, device, sc, progress=None):
        calls.append(spec.key())
        if spec.seed == 1 and len(calls) == 2:
            raise KeyboardInterrupt
        return {"test_exact_match": 0.5, "params": 1}, [{"epoch": 1, "loss": 1.0}], []

    specs = [make_spec(seed=s) for s in range(3)]
    path = str(tmp_path / "s.sqlite")
    store = Store(path)
    with pytest.raises(KeyboardInterrupt):
        run_session(specs, store, CPU, "mini", "test", session_id="sess-1", executor=LocalExecutor(run=fake))
    before = snapshot(path)
    assert [r.seed for r in store.runs("sess-1")] == [0]
    assert store.sessions()[0]["status"] == "interrupted"
    assert store.resumable("mini") == "sess-1"

    calls.clear()
    sid = run_session(specs, store, CPU, "mini", "test", resume=store.resumable("mini"), executor=LocalExecutor(run=fake))
    assert sid == "sess-1"
    assert calls == [specs[1].key(), specs[2].key()]  # the finished run is skipped
    assert [r.seed for r in store.runs(sid)] == [0, 1, 2]
    assert snapshot(path)["runs"][0] == before["runs"][0]  # the first run's row is untouched
    assert store.sessions()[0]["status"] == "finished"
    with pytest.raises(UserError):
        store.resumable("mini")
    store.close()


def test_bad_input_leaves_the_store_untouched(tmp_path, make_spec) -> None:
    path = str(tmp_path / "s.sqlite")
    store = Store(path)
    store.add_session("old", "2024-01-01T00:00:00+00:00", None, "c", {})
    store.add_run(run_record(session="old", key="k"))
    before = snapshot(path)
    for spec in (make_spec(model="nosuch"), make_spec(task="nosuch")):
        with pytest.raises(UserError, match="nosuch"):
            run_session([make_spec(), spec], store, CPU, None, "test")
    assert snapshot(path) == before
    store.close()


def test_the_store_is_sqlite_with_one_row_per_run(tmp_path) -> None:
    # Other tools (sqlite3 CLI, pandas.read_sql) read the store directly: check its shape with plain sqlite3.
    path = str(tmp_path / "s.sqlite")
    st = Store(path)
    st.add_session("s1", "2024-01-01T00:00:00+00:00", None, "c", {})
    st.add_run(run_record(session="s1", key="k1"))
    st.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    assert db.execute("SELECT session, key, status FROM runs").fetchall() == [("s1", "k1", "ok")]
    db.close()


def test_a_store_of_another_schema_version_is_refused(tmp_path) -> None:
    path = str(tmp_path / "s.sqlite")
    Store(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.close()
    with pytest.raises(UserError, match="99"):
        Store(path)


def test_another_programs_sqlite_file_is_refused_and_untouched(tmp_path) -> None:
    # Readers (list, export, report) must not add s2sbench's tables to someone else's database.
    path = str(tmp_path / "notes.db")
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE notes (t TEXT)")
        db.execute("INSERT INTO notes VALUES ('keep me')")
    db.close()
    with pytest.raises(UserError, match="notes.db"):
        Store.open_existing(path)
    db = sqlite3.connect(path)
    assert db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall() == [("notes",)]
    assert db.execute("SELECT t FROM notes").fetchall() == [("keep me",)]
    db.close()


def test_a_store_locked_past_the_wait_leaves_the_session_interrupted_not_finished(tmp_path, make_spec) -> None:
    path = str(tmp_path / "s.sqlite")
    specs = [make_spec(seed=s) for s in range(3)]
    Store(path).close()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # another writer
    locked: list[int] = []

    def fake(spec, prep, device, sc, progress=None):
        if spec.seed == 1 and not locked:
            locked.append(1)
            other.execute("BEGIN EXCLUSIVE")  # ... takes the store while the second run trains, and keeps it too long
        return {"test_exact_match": 0.5}, [{"epoch": 1, "loss": 1.0}], []

    class Held(Store):
        def add_run(self, r, claim=None):
            try:
                return super().add_run(r, claim)
            finally:  # the other writer lets go once this write has given up waiting
                if other.in_transaction:
                    other.rollback()

    store = Held(path)
    store.db.execute("PRAGMA busy_timeout=200")
    with pytest.raises(UserError, match="database is locked"):
        run_session(specs, store, CPU, "mini", "test", session_id="sess", executor=LocalExecutor(run=fake))
    assert [r.seed for r in store.runs("sess")] == [0]
    assert snapshot(path)["sessions"][0][3] == "interrupted"  # as stored: not finished
    assert store.resumable("mini") == "sess"
    sid = run_session(specs, store, CPU, "mini", "test", resume="sess", executor=LocalExecutor(run=fake))
    assert sorted(r.seed for r in store.runs(sid)) == [0, 1, 2] and store.sessions()[0]["status"] == "finished"
    store.close()
    other.close()


def test_a_failed_run_retried_ok_on_resume_no_longer_counts_as_failed(tmp_path, make_spec) -> None:
    from bench.results.outcome import Outcomes, outcomes
    from tests.conftest import run_cli

    attempts: list[int] = []

    def flaky(spec, prep, device, sc, progress=None):
        attempts.append(spec.seed)
        if spec.seed == 1 and attempts.count(1) == 1:
            raise RuntimeError("out of luck")
        if spec.seed == 2 and attempts.count(2) == 1:
            raise KeyboardInterrupt  # the session is stopped during its last run
        return {"test_exact_match": 0.5}, [{"epoch": 1, "loss": 1.0}], []

    path = str(tmp_path / "s.sqlite")
    specs = [make_spec(seed=s) for s in range(3)]
    store = Store(path)
    with pytest.raises(KeyboardInterrupt):
        run_session(specs, store, CPU, "mini", "test", session_id="s1", executor=LocalExecutor(run=flaky))
    sid = "s1"
    assert outcomes(store.runs(sid)) == Outcomes(ok=1, failed=1, retried=0)
    assert store.sessions()[0]["status"] == "interrupted"
    run_session(specs, store, CPU, "mini", "test", resume=sid, executor=LocalExecutor(run=flaky))
    assert attempts == [0, 1, 2, 1, 2]  # the failed run ran again, and the one never stored; the finished one not
    assert [(r.seed, r.status) for r in store.runs(sid)] == [(0, "ok"), (1, "failed"), (1, "ok"), (2, "ok")]  # history kept
    assert outcomes(store.runs(sid)) == Outcomes(ok=3, failed=0, retried=1)
    store.close()
    rc, out, err = run_cli(["list", "--sessions", "--store", path])
    assert rc == 0, err
    assert f"{sid}  finished    3 runs ok, 0 failed (1 earlier failure retried ok)" in out


def test_a_loss_that_explodes_but_stays_finite_is_diverged(tmp_path, make_spec) -> None:
    store = Store(str(tmp_path / "s.sqlite"))
    sid = run_session([make_spec("attention", lr=1e6, epochs=2)], store, CPU, None, "test")
    (r,) = store.runs(sid)
    assert r.status == "failed" and r.metrics == {}
    assert r.error.startswith("diverged: loss ") and "in epoch 1" in r.error and "guessing uniformly" in r.error
    store.close()


def test_the_divergence_rule() -> None:
    from bench.train.loop import divergence

    V = 62  # ln V = 4.13
    assert divergence(float("nan"), 1, None, V) == "loss is nan in epoch 1"
    assert "inf" in divergence(float("inf"), 3, 1.0, None)
    assert "epoch 1" in divergence(2.3e6, 1, None, V)  # --lr 1e6: finite, far above a uniform guess
    assert divergence(8.4, 1, None, V) is not None  # just over twice a uniform guess
    assert divergence(8.2, 1, None, V) is None and divergence(8.2, 1, None, None) is None  # without V: only NaN/inf
    assert divergence(4.0, 1, None, V) is None  # a first epoch near a uniform guess: learning
    assert divergence(4.2, 2, 4.1, V) is None  # stalled near ln V: slow, not diverged
    assert divergence(0.3, 3, 0.1, V) is None  # a wobble above a tiny loss: still far better than guessing
    late = divergence(5.0, 3, 1.0, V)  # was learning, now worse than guessing and five times epoch 1
    assert late is not None and "epoch 1's" in late


# --- reading without writing ----------------------------------------------------------------------------


def _closed_store(path: str) -> bytes:
    st = Store(path)
    st.add_session("s1", "2024-01-01T00:00:00+00:00", None, "c", {})
    st.add_run(run_record(session="s1", key="k1"))
    st.close()
    with open(path, "rb") as f:
        return f.read()


def test_open_read_only_reads_and_leaves_nothing_beside_the_store(tmp_path) -> None:
    path = str(tmp_path / "s.sqlite")
    data = _closed_store(path)
    st = Store.open_read_only(path)
    assert [r.key for r in st.runs()] == ["k1"] and st.session("latest")["id"] == "s1"
    with pytest.raises(UserError, match="cannot write"):  # query_only: a reader cannot write, even by mistake
        st.add_session("s2", "2024-01-02T00:00:00+00:00", None, "c", {})
    st.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sqlite"]
    assert (tmp_path / "s.sqlite").read_bytes() == data


def test_open_read_only_refuses_what_is_not_a_store(tmp_path) -> None:
    with pytest.raises(UserError, match="a folder"):
        Store.open_read_only(str(tmp_path))
    with pytest.raises(UserError, match="no results store"):
        Store.open_read_only(str(tmp_path / "none.sqlite"))
    other = str(tmp_path / "other.db")
    db = sqlite3.connect(other)
    with db:
        db.execute("CREATE TABLE notes (t TEXT)")
    db.close()
    with pytest.raises(UserError, match="another program"):
        Store.open_read_only(other)
    assert not (tmp_path / "none.sqlite").exists()


def test_a_full_disk_during_a_bulk_write_is_one_error_and_rolls_back(tmp_path) -> None:
    path = str(tmp_path / "s.sqlite")
    _closed_store(path)
    st = Store(path)
    before = snapshot(path)
    st.db.execute(f"PRAGMA max_page_count={st.db.execute('PRAGMA page_count').fetchone()[0]}")  # SQLITE_FULL on growth
    with pytest.raises(UserError, match="full"):
        with st.bulk() as w:
            for i in range(50):
                w.insert_run({**w.dump().runs[0], "key": f"k{i + 2}", "samples": "x" * 10_000})
    st.close()
    assert snapshot(path) == before


def test_write_files_is_all_or_nothing(tmp_path, monkeypatch) -> None:
    import errno
    import os

    from bench.results.files import write_files

    (tmp_path / "keep.txt").write_text("old")
    real, calls = os.write, []

    def write(fd, data):  # the second file hits a full disk
        if fd > 2:
            calls.append(fd)
            if len(calls) > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(UserError, match="No space left"):
        write_files(str(tmp_path / "new" / "deeper"), {"a.png": b"\x89PNG", "b.html": "<p>"}, "report")
    with pytest.raises(UserError, match="No space left"):
        write_files(str(tmp_path), {"keep.txt": "new", "other.txt": "x"}, "report")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"] and (tmp_path / "keep.txt").read_text() == "old"
    monkeypatch.undo()
    paths = write_files(str(tmp_path / "new"), {"a.png": b"\x89PNG", "b.html": "<p>é"}, "report")
    assert open(paths["b.html"], encoding="utf-8").read() == "<p>é" and sorted(os.listdir(tmp_path / "new")) == ["a.png", "b.html"]


def test_opening_a_new_store_waits_for_another_process_that_holds_it(tmp_path) -> None:
    # Two sessions starting on one new store: one holds the file while it sets the store up; turning WAL on
    # needs the file to itself, and SQLite answers "locked" at once there instead of waiting. The opener must
    # wait for the holder (as every other statement does), not fail the session.
    import threading

    path = tmp_path / "new.sqlite"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    holder.execute("BEGIN IMMEDIATE")  # a writer mid-transaction, as a starting session is
    holder.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    timer = threading.Timer(0.5, holder.execute, ("COMMIT",))
    timer.start()
    try:
        store = Store(str(path))
    finally:
        timer.join()
        holder.close()
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version() == SCHEMA_VERSION
    store.close()


def test_written_files_get_the_user_s_umask_and_keep_a_replaced_file_s_mode(tmp_path) -> None:
    """Reports, baselines and compare's table are renamed into place from a temporary file: they must not keep a
    temporary file's private 0600 (a shared results folder would be unreadable to the group)."""
    import os
    import stat

    from bench.results.files import write_files, write_text

    old = os.umask(0o022)
    try:
        paths = write_files(str(tmp_path / "rep"), {"index.html": "<p>", "fig.png": b"\x89PNG"}, "report")
        assert {stat.S_IMODE(os.stat(p).st_mode) for p in paths.values()} == {0o644}
        os.umask(0o002)
        write_text(str(tmp_path / "pr.md"), "| a |", "Markdown table")
        assert stat.S_IMODE(os.stat(tmp_path / "pr.md").st_mode) == 0o664
        os.chmod(tmp_path / "pr.md", 0o640)  # the user's own choice survives a rewrite
        write_text(str(tmp_path / "pr.md"), "| b |", "Markdown table")
        assert stat.S_IMODE(os.stat(tmp_path / "pr.md").st_mode) == 0o640 and (tmp_path / "pr.md").read_text() == "| b |"
    finally:
        os.umask(old)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
