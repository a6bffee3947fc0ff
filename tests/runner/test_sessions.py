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

from tests.conftest import TINY_SUITE  # noqa: E402


def write(tmp_path, text: str, name: str = "s.toml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def cli(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def stored_keys(path: str, session: str | None = None) -> list[str]:
    db = sqlite3.connect(path)
    q = "SELECT key FROM runs" + (" WHERE session = ?" if session else "")
    rows = [r[0] for r in db.execute(q, (session,) if session else ())]
    db.close()
    return rows


def test_sigkill_midway_then_resume_runs_each_run_exactly_once(tmp_path):
    s = write(tmp_path, TINY_SUITE)
    store = str(tmp_path / "store.sqlite")
    p = cli("run", "--suite", s, "--store", store, "--device", "cpu")
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if os.path.exists(store) and len(stored_keys(store)) >= 1:
                break
        except sqlite3.OperationalError:  # the schema is being created
            pass
        if p.poll() is not None:
            pytest.fail(f"session ended before it could be killed: {p.stderr.read()}")
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    first = stored_keys(store)
    assert 1 <= len(first) < 3
    r = cli("run", "--suite", s, "--store", store, "--device", "cpu", "--resume")
    out, err = r.communicate(timeout=300)
    assert r.returncode == 0, err
    db = sqlite3.connect(store)
    sessions = db.execute("SELECT id, status FROM sessions").fetchall()
    db.close()
    assert len(sessions) == 1 and sessions[0][1] == "finished"
    keys = stored_keys(store, sessions[0][0])
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 3


def test_two_concurrent_writers_leave_a_valid_store_with_every_run(tmp_path):
    s = write(tmp_path, TINY_SUITE)
    store = str(tmp_path / "store.sqlite")
    procs = [cli("run", "--suite", s, "--store", store, "--device", "cpu", "--threads", "1") for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    db = sqlite3.connect(store)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    per_session = db.execute("SELECT session, COUNT(*) FROM runs WHERE status='ok' GROUP BY session").fetchall()
    db.close()
    assert len(per_session) == 2 and all(n == 3 for _, n in per_session)

