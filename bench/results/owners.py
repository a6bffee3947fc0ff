"""Who runs a session, whether it still does, and which run it is on: owners, heartbeats, run claims.

A session is worked on by one process at a time. That process records itself as the session's *owner*
(host, pid, when the pid started, and where the pid can be checked), keeps a heartbeat from a thread
(every ``HEARTBEAT_S`` seconds: nothing per training step), and *claims* each run before it starts. A
process killed without a word (SIGKILL, SIGTERM, a batch job at its time limit, a lost machine) cannot
write that it stopped, so a session's status is derived when the store is read rather than by a cleanup:

* a stored ``finished`` or ``interrupted`` is final;
* a stored ``running`` is ``running`` while one of its owners is alive, ``interrupted`` once none is;
* a stored ``running`` with no owner at all (written before owners were recorded) stays as stored.

An owner is alive when it has not ended and

* on the machine reading the store (same host name, boot and pid namespace, so its pid means the same
  process here): its pid is alive, not a zombie, and started when the owner's did (a reused pid is not
  the owner). A dead pid is conclusive at once: a killed process beats no more heartbeats;
* anywhere else: its heartbeat is younger than ``STALE_AFTER_S`` (ten heartbeats; it also absorbs a
  modest clock difference between machines). A heartbeat dated in the future is taken as fresh up to
  ``SKEW_S`` ahead (another machine's clock may run ahead of this one's); further ahead it is no time to
  trust -- a clock far off, or a damaged record -- and counts as stale, so that it cannot keep ``--resume``
  out until that date. Its owner then counts as gone, as one whose heartbeat is unreadable does; the run
  claims below still keep each run stored once should it be alive after all.

``--resume`` takes over a session only when no owner of it is alive, so two processes never work on one
session. Should a live owner be taken for dead anyway (a machine whose heartbeat stalled for longer than
``STALE_AFTER_S``), the claims keep each run stored once: a run is claimed in one ``BEGIN IMMEDIATE``
transaction that also checks the claimant still owns the session, and its result is stored only while
its claim stands; the displaced process stops at its next run boundary.

The two tables are added to the version-1 schema with ``CREATE TABLE IF NOT EXISTS``: a store that has
them is still a version-1 store to every reader (an older s2sbench ignores them), so no migration is
needed, and a store opened before they existed simply has no owners (every query here allows that).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench.errors import UserError

HEARTBEAT_S = 30.0  # seconds between heartbeats of a running session (a thread; claims beat too)
STALE_AFTER_S = 300.0  # a heartbeat older than this, from a machine whose pid cannot be checked here: gone
SKEW_S = 300.0  # a heartbeat dated up to this far in the future is fresh (clocks differ); further ahead it is stale

SCHEMA = """
CREATE TABLE IF NOT EXISTS session_owners (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of ownership within a store: a later owner took over
    token TEXT NOT NULL UNIQUE,      -- one process's stint on one session
    session TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pid_start TEXT,                  -- the pid's start (clock ticks after boot, /proc): tells a reused pid
    machine TEXT,                    -- host/boot id/pid namespace: where ``pid`` names this process
    started TEXT NOT NULL,
    heartbeat TEXT NOT NULL,
    ended TEXT                       -- set when the process let go of the session (any way but being killed)
);
CREATE INDEX IF NOT EXISTS session_owners_session ON session_owners(session);
CREATE TABLE IF NOT EXISTS run_claims (
    session TEXT NOT NULL,
    key TEXT NOT NULL,
    token TEXT NOT NULL,             -- the owner stint working on the run
    claimed TEXT NOT NULL,
    PRIMARY KEY (session, key)
);
"""

OWNER_COLS = ("token", "session", "host", "pid", "pid_start", "machine", "started", "heartbeat", "ended")


class SessionLost(UserError):
    """Another process took the session over (this one looked dead to it): stop without storing more."""


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _stat(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` from the state field on (the command name may hold spaces and parentheses)."""
    s = _read(f"/proc/{pid}/stat")
    return s.rsplit(")", 1)[1].split() if s and ")" in s else None


def process_start(pid: int) -> str | None:
    """When ``pid`` started, in clock ticks after boot (field 22 of ``/proc/<pid>/stat``); None without /proc."""
    f = _stat(pid)
    return f[19] if f and len(f) > 19 else None


def machine_id() -> str:
    """Host name, boot id and pid namespace: two processes with the same value see the same pids."""
    try:
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        ns = ""
    return f"{socket.gethostname()}/{_read('/proc/sys/kernel/random/boot_id') or ''}/{ns}"


def pid_alive(pid: int, start: str | None) -> bool:
    """Is ``pid`` a live process, and the one that started at ``start`` (when known)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    except OSError:
        return False
    if not os.path.exists("/proc/self/stat"):  # no /proc: the signal check is all there is
        return True
    f = _stat(pid)
    if f is None or f[0] in ("Z", "X"):  # gone meanwhile, or killed and not yet reaped
        return False
    return start is None or (len(f) > 19 and f[19] == start)


def _seconds(iso: str) -> float:
    try:
        return dt.datetime.fromisoformat(iso).timestamp()
    except (TypeError, ValueError):
        return 0.0


def heartbeat_age(iso: str, at: float | None = None) -> float | None:
    """Seconds since the heartbeat ``iso`` (0 for one up to ``SKEW_S`` ahead of this clock); None when it is no time
    to trust: unreadable, or dated further in the future."""
    try:
        t = dt.datetime.fromisoformat(iso).timestamp()
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    age = (at if at is not None else time.time()) - t
    return None if age < -SKEW_S else max(0.0, age)


@dataclass(frozen=True)
class Owner:
    token: str
    session: str
    host: str
    pid: int
    pid_start: str | None
    machine: str | None
    started: str
    heartbeat: str
    ended: str | None = None
    seq: int | None = None

    def alive(self, here: str | None = None, at: float | None = None) -> bool:
        """The rule of the module docstring. ``here``: this machine's id; ``at``: the time now (tests pass both)."""
        if self.ended:
            return False
        pid_ok = isinstance(self.pid, int) and not isinstance(self.pid, bool)  # a damaged record's pid: the heartbeat decides
        if pid_ok and self.machine and self.machine == (here if here is not None else machine_id()):
            return pid_alive(self.pid, self.pid_start)
        age = heartbeat_age(self.heartbeat, at)
        return age is not None and age <= STALE_AFTER_S

    def describe(self) -> str:
        age = heartbeat_age(self.heartbeat)
        if age is None:
            t = _seconds(self.heartbeat)
            beat = (f"last heartbeat dated {round(t - time.time())} s in the future (beyond the {SKEW_S:.0f} s allowed for clocks that "
                    "differ: taken as stale)" if t else f"last heartbeat unreadable ({self.heartbeat!r})")
        else:
            beat = f"last heartbeat {round(age)} s ago"
        return f"pid {self.pid} on {self.host}, since {self.started}, {beat}"


def this_process(session: str) -> Owner:
    pid = os.getpid()
    t = now()
    return Owner(os.urandom(8).hex(), session, socket.gethostname(), pid, process_start(pid), machine_id(), t, t)


# --- reading ---------------------------------------------------------------------------------------------
def has_tables(db: sqlite3.Connection) -> bool:
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return {"session_owners", "run_claims"} <= names


def owners(db: sqlite3.Connection, session: str | None = None) -> list[Owner]:
    """Every owner stint of ``session`` (or of every session), oldest first; [] for a store without the table."""
    if not has_tables(db):
        return []
    q = f"SELECT {', '.join(OWNER_COLS)}, seq FROM session_owners"
    rows = db.execute(q + (" WHERE session=?" if session is not None else "") + " ORDER BY seq", (session,) if session is not None else ())
    return [Owner(*r) for r in rows]


def derive(db: sqlite3.Connection, sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sessions as stored -> the same with a stored ``running`` whose owners are all gone read ``interrupted``."""
    running = [s for s in sessions if s["status"] == "running"]
    if not running:
        return sessions
    by: dict[str, list[Owner]] = {}
    for o in owners(db):
        by.setdefault(o.session, []).append(o)
    here, at = machine_id(), time.time()
    for s in running:
        mine = by.get(s["id"], [])
        if mine and not any(o.alive(here, at) for o in mine):
            s["status"] = "interrupted"
    return sessions


def live_owner(db: sqlite3.Connection, session: str, but: str | None = None) -> Owner | None:
    """The latest live owner of ``session`` other than the stint ``but``, if any."""
    here, at = machine_id(), time.time()
    live = [o for o in owners(db, session) if o.token != but and o.alive(here, at)]
    return live[-1] if live else None


# --- writing ---------------------------------------------------------------------------------------------
@contextmanager
def immediate(db: sqlite3.Connection, path: str) -> Iterator[sqlite3.Connection]:
    """A write transaction taken at its start (``BEGIN IMMEDIATE``): what it reads cannot change before it writes."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.rollback()
            raise
        db.commit()
    except sqlite3.Error as e:
        raise UserError(f"{path}: cannot write to the results store ({e})") from None


def acquire(db: sqlite3.Connection, path: str, session: str, resume: bool,
            check: Callable[[sqlite3.Connection], None] | None = None) -> Owner:
    """Make this process the owner of ``session``; refuse while another owner is alive.

    ``resume``: the session is being continued, so its stored status goes back to ``running``.
    ``check``: called first, inside the same transaction (what it reads cannot change before the owner is
    written): raises to refuse, e.g. a finished session or runs it never planned (``bench.results.plans``).
    """
    me = this_process(session)
    with immediate(db, path):
        if check is not None:
            check(db)
        other = live_owner(db, session)
        if other is not None:
            raise UserError(f"session {session!r} is still running ({other.describe()}): "
                            "two processes never work on one session; wait for it, or stop it first")
        db.execute(f"INSERT INTO session_owners({', '.join(OWNER_COLS)}) VALUES ({', '.join('?' * len(OWNER_COLS))})",
                   tuple(getattr(me, c) for c in OWNER_COLS))
        if resume:
            db.execute("UPDATE sessions SET status='running', finished=NULL WHERE id=?", (session,))
    return me


def _check_owner(db: sqlite3.Connection, me: Owner) -> None:
    """Raise :class:`SessionLost` when a later stint of another process took the session over."""
    row = db.execute("SELECT seq, ended FROM session_owners WHERE token=?", (me.token,)).fetchone()
    later = live_owner(db, me.session, but=me.token)
    if row is None or (later is not None and (later.seq or 0) > row[0]):
        who = later.describe() if later is not None else "its owner record is gone"
        raise SessionLost(f"session {me.session!r} was taken over by another process ({who}); this one stopped without storing more")


def claim(db: sqlite3.Connection, path: str, me: Owner, key: str) -> bool:
    """Claim run ``key`` of ``me``'s session before it starts. -> False when it is stored (ok) already, or a live
    stint holds it; raises :class:`SessionLost` when the session is no longer ``me``'s."""
    with immediate(db, path):
        _check_owner(db, me)
        db.execute("UPDATE session_owners SET heartbeat=? WHERE token=?", (now(), me.token))
        if db.execute("SELECT 1 FROM runs WHERE session=? AND key=? AND status='ok' LIMIT 1", (me.session, key)).fetchone():
            return False
        row = db.execute("SELECT token FROM run_claims WHERE session=? AND key=?", (me.session, key)).fetchone()
        if row is not None and row[0] != me.token:
            holder = db.execute(f"SELECT {', '.join(OWNER_COLS)}, seq FROM session_owners WHERE token=?", (row[0],)).fetchone()
            if holder is not None and Owner(*holder).alive():
                return False
        db.execute("INSERT OR REPLACE INTO run_claims(session, key, token, claimed) VALUES (?, ?, ?, ?)",
                   (me.session, key, me.token, now()))
    return True


def settle_claim(db: sqlite3.Connection, session: str, key: str, token: str) -> None:
    """Inside the transaction that stores run ``key``: its claim must still be ``token``'s; it is released.

    The claim is deleted first -- a write, so the transaction holds the write lock before it decides.
    """
    if db.execute("DELETE FROM run_claims WHERE session=? AND key=? AND token=?", (session, key, token)).rowcount != 1:
        raise SessionLost(f"run {key} of session {session!r} is no longer this process's claim (another process took the session over); "
                          "its result was not stored")


def release(db: sqlite3.Connection, path: str, me: Owner, status: str | None) -> None:
    """This process lets go of its session: its claims are dropped, its stint ended, and -- while the session is
    still its own -- the session's status set to ``status`` (``finished`` | ``interrupted``; None: left as is)."""
    with immediate(db, path):
        try:
            _check_owner(db, me)
            mine = True
        except SessionLost:
            mine = False
        t = now()
        db.execute("DELETE FROM run_claims WHERE token=?", (me.token,))
        db.execute("UPDATE session_owners SET ended=?, heartbeat=? WHERE token=?", (t, t, me.token))
        if mine and status is not None:
            db.execute("UPDATE sessions SET finished=?, status=? WHERE id=?", (t, status, me.session))


class Heartbeat:
    """A daemon thread that refreshes an owner's heartbeat every ``every`` seconds, on its own connection.

    A beat that cannot be written (the store is busy) is skipped; the next one tries again. Training never
    waits for it: the thread sleeps between beats, and a beat is one small UPDATE.
    """

    def __init__(self, path: str, token: str, every: float = HEARTBEAT_S) -> None:
        self.path, self.token, self.every = path, token, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="s2sbench-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, timeout=min(self.every, 10.0))
        except sqlite3.Error:
            return
        try:
            while not self._stop.wait(self.every):
                try:
                    with db:
                        db.execute("UPDATE session_owners SET heartbeat=? WHERE token=? AND ended IS NULL", (now(), self.token))
                except sqlite3.Error:
                    pass
        finally:
            db.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
