"""Who runs a session: liveness on read, one owner at a time, runs claimed and stored once, owners merged."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from bench.errors import UserError
from bench.results import owners
from bench.results.merge import merge
from bench.results.owners import STALE_AFTER_S, Owner, SessionLost
from bench.results.store import Store
from tests.conftest import HANG_S
from tests.factories import run_record

HERE = owners.machine_id()


def _dead_pid() -> tuple[int, str | None]:
    """The pid of a process that has ended (and been reaped), with the start it had."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    start = owners.process_start(p.pid)
    p.kill()
    p.wait()
    return p.pid, start


def _owner(session: str, pid: int, start: str | None, machine: str | None = HERE, heartbeat: str | None = None, **kw) -> Owner:
    t = heartbeat or owners.now()
    return Owner(os.urandom(8).hex(), session, "somehost", pid, start, machine, t, t, **kw)


def _insert(store: Store, o: Owner) -> None:
    with store.db:
        store.db.execute(f"INSERT INTO session_owners({', '.join(owners.OWNER_COLS)}) VALUES ({', '.join('?' * len(owners.OWNER_COLS))})",
                         tuple(getattr(o, c) for c in owners.OWNER_COLS))


def _stored_status(path: str, sid: str) -> str:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT status FROM sessions WHERE id=?", (sid,)).fetchone()[0]
    finally:
        db.close()


# --- the liveness rule --------------------------------------------------------------------------------------
def test_an_owner_on_this_machine_is_alive_exactly_while_its_process_is() -> None:
    me = owners.this_process("s")
    assert me.alive()
    pid, start = _dead_pid()
    assert not replace(me, pid=pid, pid_start=start).alive()  # killed: at once, whatever its heartbeat says
    if start is not None:  # /proc: a live pid that started at another time is a reused pid, not the owner
        assert not replace(me, pid_start=str(int(me.pid_start) + 1)).alive()
    assert not replace(me, ended=owners.now()).alive()


def test_an_owner_elsewhere_is_alive_while_its_heartbeat_is_fresh() -> None:
    o = _owner("s", 1, None, machine="otherhost/boot/ns", heartbeat="2026-01-01T00:00:00+00:00")
    t = owners._seconds(o.heartbeat)
    assert o.alive(HERE, at=t + 10)
    assert o.alive(HERE, at=t + STALE_AFTER_S)
    assert not o.alive(HERE, at=t + STALE_AFTER_S + 1)


# --- derived status ---------------------------------------------------------------------------------------
def test_status_is_derived_on_read_and_nothing_is_written(tmp_path) -> None:
    path = str(tmp_path / "s.sqlite")
    st = Store(path)
    pid, start = _dead_pid()
    for sid in ("dead", "live", "legacy", "done", "remote-stale", "remote-fresh"):
        st.add_session(sid, f"2026-01-01T00:00:0{len(st.sessions())}+00:00", "quick", "c", {})
    _insert(st, _owner("dead", pid, start))
    _insert(st, _owner("live", os.getpid(), owners.process_start(os.getpid())))
    _insert(st, _owner("done", pid, start))
    st.finish_session("done", "2026-01-01T01:00:00+00:00", "finished")
    _insert(st, _owner("remote-stale", 1, None, machine="elsewhere", heartbeat="2000-01-01T00:00:00+00:00"))
    _insert(st, _owner("remote-fresh", 1, None, machine="elsewhere"))
    got = {s["id"]: s["status"] for s in st.sessions()}
    assert got == {"dead": "interrupted", "live": "running", "legacy": "running", "done": "finished",
                   "remote-stale": "interrupted", "remote-fresh": "running"}
    assert _stored_status(path, "dead") == "running"  # derived, not a cleanup
    # --resume without an id skips sessions a live process runs; a session with no owner record (before owners were
    # recorded) stays resumable as it was
    assert st.resumable("quick") == "remote-stale"
    st.close()


def test_a_store_without_the_owner_tables_reads_as_before(tmp_path) -> None:
    path = str(tmp_path / "s.sqlite")
    st = Store(path)
    st.add_session("a", "2026-01-01T00:00:00+00:00", None, "c", {})
    with st.db:
        st.db.execute("DROP TABLE session_owners")
        st.db.execute("DROP TABLE run_claims")
    assert [s["status"] for s in st.sessions()] == ["running"]
    assert st.session_owners("a") == [] and st.resumable(None) == "a"
    assert Store.read_dump(path).owners == []
    st.close()


# --- one owner at a time ---------------------------------------------------------------------------------------
def test_a_session_with_a_live_owner_is_refused_and_taken_over_once_it_is_gone(tmp_path) -> None:
    st = Store(str(tmp_path / "s.sqlite"))
    st.add_session("s", "2026-01-01T00:00:00+00:00", None, "c", {})
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _insert(st, _owner("s", p.pid, owners.process_start(p.pid)))
        with pytest.raises(UserError, match=rf"still running \(pid {p.pid} on somehost"):
            st.acquire("s", resume=True)
    finally:
        p.kill()
        p.wait()
    assert st.sessions()[0]["status"] == "interrupted"
    me = st.acquire("s", resume=True)
    assert st.sessions()[0]["status"] == "running" and st.session_owners("s")[-1].token == me.token
    with pytest.raises(UserError, match="still running"):  # not even this process twice
        st.acquire("s", resume=True)
    st.release(me, "interrupted")
    assert st.sessions()[0]["status"] == "interrupted" and st.session_owners("s")[-1].ended is not None
    st.close()


def test_a_run_is_claimed_once_and_stored_only_under_its_claim(tmp_path) -> None:
    st = Store(str(tmp_path / "s.sqlite"))
    st.add_session("s", "2026-01-01T00:00:00+00:00", None, "c", {})
    a = st.acquire("s", resume=False)
    assert st.claim(a, "k1") and st.claim(a, "k2")
    st.add_run(run_record(key="k1"), claim=a.token)
    assert not st.claim(a, "k1")  # stored ok: nothing to claim
    with pytest.raises(SessionLost):  # a claim that is not (or no longer) this owner's stores nothing
        st.add_run(run_record(key="k3"), claim=a.token)
    st.add_run(run_record(key="k2", status="failed", error="boom"), claim=a.token)
    assert st.claim(a, "k2")  # a failed run can be claimed again (a retry)
    assert sorted(r.key for r in st.runs("s")) == ["k1", "k2"]
    st.close()


def test_a_live_owner_taken_for_dead_stops_and_stores_nothing_twice(tmp_path) -> None:
    """A: an owner on another machine whose heartbeat stalled past the timeout, so B (this process) took over."""
    st = Store(str(tmp_path / "s.sqlite"))
    st.add_session("s", "2026-01-01T00:00:00+00:00", None, "c", {})
    a = _owner("s", 1, None, machine="elsewhere")
    _insert(st, a)
    (a,) = st.session_owners("s")  # with its seq
    assert st.claim(a, "k1")
    with st.db:  # ... and then its heartbeat stalls
        st.db.execute("UPDATE session_owners SET heartbeat='2000-01-01T00:00:00+00:00' WHERE token=?", (a.token,))
    b = st.acquire("s", resume=True)
    assert st.claim(b, "k1")  # A's claim is stale: B takes it
    with pytest.raises(SessionLost, match="taken over"):
        st.claim(a, "k2")
    with pytest.raises(SessionLost):  # A finishes k1 anyway: its result is not stored
        st.add_run(run_record(key="k1"), claim=a.token)
    st.add_run(run_record(key="k1"), claim=b.token)
    st.release(a, "interrupted")  # A lets go: the session's status is B's to set
    assert st.sessions()[0]["status"] == "running"
    st.release(b, "finished")
    assert [r.key for r in st.runs("s")] == ["k1"] and st.sessions()[0]["status"] == "finished"
    st.close()


# --- merge -------------------------------------------------------------------------------------------------
def test_merge_carries_the_owners_so_a_dead_part_reads_interrupted(tmp_path) -> None:
    a, out = str(tmp_path / "a.sqlite"), str(tmp_path / "out.sqlite")
    st = Store(a)
    st.add_session("s", "2026-01-01T00:00:00+00:00", "quick", "c", {})
    pid, start = _dead_pid()
    dead = _owner("s", pid, start)
    _insert(st, dead)
    st.add_run(run_record(key="k1"))
    st.close()
    merge(out, [a])
    merge(out, [a])  # merged twice: one owner record
    m = Store.open_existing(out)
    assert [o.token for o in m.session_owners("s")] == [dead.token]
    assert m.sessions()[0]["status"] == "interrupted" and _stored_status(out, "s") == "running"
    m.close()


def test_the_heartbeat_thread_refreshes_the_owner_and_stops(tmp_path) -> None:
    path = str(tmp_path / "s.sqlite")
    st = Store(path)
    st.add_session("s", "2026-01-01T00:00:00+00:00", None, "c", {})
    me = st.acquire("s", resume=False)
    with st.db:
        st.db.execute("UPDATE session_owners SET heartbeat='2000-01-01T00:00:00+00:00'")
    beat = owners.Heartbeat(path, me.token, every=0.05).start()
    deadline = time.time() + HANG_S  # a starved thread is slow, not dead
    while st.session_owners("s")[0].heartbeat.startswith("2000") and time.time() < deadline:
        time.sleep(0.05)
    beat.stop()
    assert not st.session_owners("s")[0].heartbeat.startswith("2000")
    assert not beat._thread.is_alive()
    st.close()
