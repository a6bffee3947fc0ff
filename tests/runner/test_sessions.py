"""Sessions: resume after SIGKILL, concurrent writers."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.conftest import HANG_S, TINY_SUITE  # noqa: E402


def write(tmp_path, text: str, name: str = "s.toml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def cli(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def stored_keys(path: str, session: str | None = None) -> list[str]:
    db = sqlite3.connect(path)
    q = "SELECT key FROM runs" + (" WHERE session = ?" if session else "")
    rows = [r[0] for r in db.execute(q, (session,) if session else ())]
    db.close()
    return rows


FIVE_RUNS = TINY_SUITE.replace("seeds = [0, 1, 2]", "seeds = [0, 1, 2, 3, 4]")


def test_sigkill_reads_interrupted_and_two_concurrent_resumes_store_each_run_exactly_once(tmp_path):
    from bench.results.store import Store
    from tests.conftest import run_cli

    s = write(tmp_path, FIVE_RUNS)
    store = str(tmp_path / "store.sqlite")
    p = cli("run", "--suite", s, "--store", store, "--device", "cpu", "--threads", "1")
    deadline = time.time() + HANG_S
    while True:  # until the first run is stored: on a loaded machine that can take minutes
        try:
            if os.path.exists(store) and len(stored_keys(store)) >= 1:
                break
        except sqlite3.OperationalError:  # the schema is being created
            pass
        if p.poll() is not None:
            pytest.fail(f"session ended before it could be killed: {p.stderr.read()}")
        if time.time() > deadline:
            p.kill()
            pytest.fail(f"no run stored after {HANG_S} s: the session hangs")
        time.sleep(0.05)
    # while it runs: running, and --resume does not pick it
    st = Store.open_existing(store)
    (sess,) = st.sessions()
    st.close()
    assert sess["status"] == "running"
    rc, _, err = run_cli(["run", "--suite", s, "--store", store, "--device", "cpu", "--threads", "1", "--resume"])
    assert rc == 2 and "still running" in err
    p.send_signal(signal.SIGKILL)
    p.wait()
    first = stored_keys(store)
    assert 1 <= len(first) < 5
    # killed: interrupted in the listing and in the report, though nothing wrote it
    rc, out, err = run_cli(["list", "--sessions", "--store", store])
    assert rc == 0, err
    assert f"{sess['id']}  interrupted" in out
    rc, out, err = run_cli(["report", "--store", store, "--out", str(tmp_path / "report")])
    assert rc == 0, err
    md = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    env_table = md[md.index("## Environment"):]
    assert "interrupted" in env_table and "running" not in env_table
    # two processes resume it at once: one works on it, and every run is stored exactly once
    procs = [cli("run", "--suite", s, "--store", store, "--device", "cpu", "--threads", "1", "--resume", sess["id"]) for _ in range(2)]
    results = [(q.returncode, err) for q in procs for _, err in [q.communicate(timeout=HANG_S)]]
    assert any(rc == 0 for rc, _ in results), results
    for rc, err in results:
        assert rc == 0 or (rc == 2 and "still running" in err), err
    db = sqlite3.connect(store)
    sessions = db.execute("SELECT id, status FROM sessions").fetchall()
    db.close()
    assert sessions == [(sess["id"], "finished")]
    keys = stored_keys(store, sess["id"])
    assert len(keys) == 5 and len(set(keys)) == 5
    assert set(first) <= set(keys)


def test_two_concurrent_writers_leave_a_valid_store_with_every_run(tmp_path):
    s = write(tmp_path, TINY_SUITE)
    store = str(tmp_path / "store.sqlite")
    procs = [cli("run", "--suite", s, "--store", store, "--device", "cpu", "--threads", "1") for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=HANG_S)
        assert p.returncode == 0, err
    db = sqlite3.connect(store)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    per_session = db.execute("SELECT session, COUNT(*) FROM runs WHERE status='ok' GROUP BY session").fetchall()
    db.close()
    assert len(per_session) == 2 and all(n == 3 for _, n in per_session)

