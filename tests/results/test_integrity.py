"""Damaged stores (docs/store.md): ``check store`` finds what is damaged (exit 1) and says a whole store is clean (exit
0); every other command names the store and the damage in one line, while the undamaged sessions can still be
listed and reported; owners whose records cannot be trusted do not block --resume; a writer whose disk is full leaves
no -wal/-shm behind, and readers read on."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

import pytest

from bench.results import owners
from bench.results.owners import SKEW_S, STALE_AFTER_S, Owner
from bench.results.store import Store, connect_read_only, tidy_log
from tests.cli.test_bad_input import clean_copy, tree
from tests.conftest import REPO, run_cli


@pytest.fixture
def two(tmp_path, cli_store):
    """A store of two finished sessions (the CLI's one, and a copy of it under another id): -> (path, first id, second id)."""
    path = clean_copy(cli_store["path"], str(tmp_path / "two.sqlite"))
    first = cli_store["session"]["id"]
    db = sqlite3.connect(path)
    with db:
        cols = "started, finished, status, suite, command, env"
        db.execute(f"INSERT INTO sessions(id, {cols}) SELECT 'second', {cols} FROM sessions")
        run_cols = "key, task, model, size, seed, config, config_hash, status, error, started, finished, metrics, history, samples"
        db.execute(f"INSERT INTO runs(session, {run_cols}) SELECT 'second', {run_cols} FROM runs")
        db.execute("INSERT INTO session_plans SELECT 'second', key FROM session_plans")
    db.close()
    return path, first, "second"


def _edit(path: str, sql: str) -> None:
    db = sqlite3.connect(path)
    with db:
        db.executescript(sql)
    db.close()


def test_a_whole_store_is_clean(two):
    path = two[0]
    before = tree(os.path.dirname(path))
    rc, out, err = run_cli(["check", "store", path])
    assert rc == 0, err
    assert out.startswith(f"{path}: 2 sessions, 2 runs: clean")
    assert tree(os.path.dirname(path)) == before


@pytest.mark.parametrize("sql, words", [
    ("UPDATE runs SET metrics=substr(metrics, 1, 30) WHERE session='second';", ["run 2 (session second", "metrics is not valid JSON"]),
    ("UPDATE runs SET history='{}' WHERE session='second';", ["run 2 (session second", "history is dict JSON, not a list"]),
    ("UPDATE sessions SET env='{\"cut' WHERE id='second';", ["session second", "environment is not valid JSON"]),
    ("UPDATE meta SET value='one';", ["meta", "schema version is 'one', not a number"]),
    ("UPDATE session_owners SET pid='abc';", ["owner record 1", "pid 'abc' is not a number"]),
    ("UPDATE session_owners SET heartbeat='yesterday';", ["owner record 1", "heartbeat 'yesterday' is not a time"]),
    ("INSERT INTO runs(session, key, task, model, size, seed, config, config_hash, status, started, finished, metrics, history, samples) "
     "SELECT 'second', 'date/attention/tiny/7/x', task, model, size, 7, config, config_hash, status, started, finished, metrics, history, "
     "samples FROM runs WHERE session='second';", ["date/attention/tiny/7/x", "not in its session's plan"]),
    ("INSERT INTO session_plans VALUES ('second', 'date/attention/tiny/8/x');", ["session second", "finished, yet 1 planned run"]),
    ("UPDATE runs SET session='gone' WHERE session='second';", ["session gone", "its session is not in the store"]),
])
def test_check_store_names_what_is_damaged_and_exits_1(two, sql, words):
    path = two[0]
    _edit(path, sql)
    before = tree(os.path.dirname(path))
    rc, out, err = run_cli(["check", "store", path])
    assert rc == 1, (out, err)
    assert "DAMAGED" in out.splitlines()[0] and "docs/store.md" in out
    for w in words:
        assert w in out, (w, out)
    assert tree(os.path.dirname(path)) == before  # read only: the same bytes, nothing beside it


def test_an_overwritten_page_is_found_by_sqlites_own_check(two):
    path = two[0]
    size = os.path.getsize(path)
    with open(path, "r+b") as f:  # a page in the middle: rows no list or report may read
        f.seek((size // 4096 // 2) * 4096)
        f.write(b"\xde\xad\xbe\xef" * 1024)
    rc, out, err = run_cli(["check", "store", path])
    assert rc == 1 and "SQLite:" in out, (out, err)
    rc, out, err = run_cli(["merge", path + ".merged", path])  # merge refuses it even where its rows read
    assert rc == 2 and "damaged, nothing merged" in err and not os.path.exists(path + ".merged")


def test_the_undamaged_sessions_are_still_listed_and_reported(two, tmp_path):
    path, first, second = two
    _edit(path, "UPDATE runs SET metrics=substr(metrics, 1, 30) WHERE session='second';")
    rc, out, err = run_cli(["list", "--sessions", "--store", path])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "session second" in err and "damaged" in err
    assert f"{first}  finished    1 runs ok" in out and "second  finished    DAMAGED" in out
    rc, out, err = run_cli(["report", "--store", path, "--session", first, "--out", str(tmp_path / "rep")])
    assert rc == 0, err
    assert first in (tmp_path / "rep" / "index.html").read_text(encoding="utf-8")
    rc, out, err = run_cli(["compare", first, first, "--store", path])
    assert rc == 0, err
    for argv in (["report", "--store", path, "--session", "all", "--out", str(tmp_path / "r2")],
                 ["export", "--store", path, "--session", second]):
        rc, out, err = run_cli(argv)
        assert rc == 2 and "damaged" in err and "metrics" in err, (argv, err)


def test_owners_that_cannot_be_trusted_do_not_block_resume(tmp_path):
    """A heartbeat dated in the future counts as stale beyond the clock allowance; a pid that is not a number is judged by
    the heartbeat; neither raises."""
    now = time.time()
    iso = lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")  # noqa: E731
    remote = Owner("t", "s", "elsewhere", 1, None, "other/boot/ns", iso(now), iso(now))
    assert Owner(**{**remote.__dict__, "heartbeat": iso(now + SKEW_S / 2)}).alive(at=now)  # a clock a little ahead: fresh
    far = Owner(**{**remote.__dict__, "heartbeat": iso(now + 86_400)})
    assert not far.alive(at=now) and "in the future" in far.describe()
    here = owners.machine_id()
    bad_pid = Owner("t", "s", "h", "abc", None, here, iso(now), iso(now))  # type: ignore[arg-type]
    assert bad_pid.alive(here, at=now) and not bad_pid.alive(here, at=now + STALE_AFTER_S + 1)

    st = Store(str(tmp_path / "s.sqlite"))
    st.add_session("s", iso(now), "q", "c", {}, plan=[])
    with st.db:
        st.db.execute(f"INSERT INTO session_owners({', '.join(owners.OWNER_COLS)}) VALUES (?,?,?,?,?,?,?,?,?)",
                      tuple(getattr(far, c) for c in owners.OWNER_COLS))
    assert st.sessions()[0]["status"] == "interrupted" and st.resumable("q", set()) == "s"
    me = st.acquire("s", resume=True, runs=set())  # not kept out until 2 a.m. tomorrow
    st.release(me, "interrupted")
    st.close()


def test_readers_read_beside_an_empty_log_and_touch_nothing(two):
    """What a writer whose disk filled up left before this release: a 0-byte -wal and a 3-byte -shm."""
    path, first, _ = two
    for suffix, data in (("-wal", b""), ("-shm", b"\x00\x00\x00")):
        with open(path + suffix, "wb") as f:
            f.write(data)
    before = tree(os.path.dirname(path))
    rc, out, err = run_cli(["list", "--sessions", "--store", path])
    assert rc == 0 and first in out, err
    db = connect_read_only(path)
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
    db.close()
    assert tree(os.path.dirname(path)) == before


def test_tidy_log_removes_only_an_empty_unused_log(tmp_path):
    p = str(tmp_path / "s.sqlite")
    for wal, shm, made, gone in ((b"", b"abc", False, True), (b"x" * 100, b"abc", False, False), (b"", b"\0" * 32768, False, False),
                                 (b"", b"\0" * 32768, True, True)):
        for suffix, data in (("-wal", wal), ("-shm", shm)):
            with open(p + suffix, "wb") as f:
                f.write(data)
        tidy_log(p, made=made)
        assert (not os.path.exists(p + "-wal") and not os.path.exists(p + "-shm")) == gone, (len(wal), len(shm), made)


def _mount_tmpfs(size: str) -> str | None:
    """A small tmpfs of its own (root only, where mounting is allowed), or None."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return None
    d = tempfile.mkdtemp(prefix="s2sbench-full-")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", d], capture_output=True).returncode != 0:
        os.rmdir(d)
        return None
    return d


def test_a_real_full_disk_leaves_no_log_and_readers_read_on(cli_store):
    """Not a simulation: a 1 MiB tmpfs holding the store, filled up. ``run`` is refused before it writes (no space) and,
    past that check, fails on the write itself -- either way no -wal/-shm is left and ``list`` still reads the store."""
    d = _mount_tmpfs("1m")
    if d is None:
        pytest.skip("needs root and a tmpfs mount (mount -t tmpfs)")
    try:
        store = clean_copy(cli_store["path"], os.path.join(d, "bench.sqlite"))
        with open(os.path.join(d, "fill"), "wb", buffering=0) as f:  # every free block taken
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
        argv = ["run", "--task", "date", "--model", "attention", "--size", "tiny", "--epochs", "1", "--train-size", "40", "--device", "cpu",
                "--threads", "1", "--store", store]
        past_the_check = ("from bench.results import store; store.MIN_FREE = 0; from bench.cli import main; import sys; "
                          "sys.exit(main(sys.argv[1:]))")
        for cmd in ([sys.executable, "-m", "bench", *argv], [sys.executable, "-c", past_the_check, *argv]):
            p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
            assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr
            assert sorted(os.listdir(d)) == ["bench.sqlite", "fill"], os.listdir(d)
        rc, out, err = run_cli(["list", "--sessions", "--store", store])
        assert rc == 0 and cli_store["session"]["id"] in out, err
    finally:
        subprocess.run(["umount", d], capture_output=True)
        os.rmdir(d)
