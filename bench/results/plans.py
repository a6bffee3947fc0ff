"""What a session set out to run: its plan, fixed when it starts, and the doors it keeps shut.

A session is started with a list of runs (a suite, a matrix of flags, a shard of either); their keys are its
*plan*, stored with the session in the same transaction. From then on the plan says what the session may hold:

* ``--resume ID`` may only run what the session planned: a command that asks for a run outside the plan (other
  models, another ``--epochs``, so another key) is refused, naming the session and the command that started it.
  It may run part of the plan (one seed of three); the session is ``finished`` only once every planned run is
  stored.
* ``--resume`` without an id takes only a session whose plan is the command's runs, exactly.
* A finished session is never added to: its stored command, environment and calibration describe the runs it
  measured, and a run added later, by another process at another time, would be normalised with a calibration
  it was never measured under. To run its runs again, start a new session.

Every run of a session is in its plan; ``s2sbench check store`` says where that does not hold.

The plan is a table added to the version-1 schema with ``CREATE TABLE IF NOT EXISTS``, as the owner tables were
(``bench.results.owners``): a store that has it is still a version-1 store to every reader (an older s2sbench
ignores it), and a session stored before it existed has no rows there -- its plan is what it ran.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bench.errors import UserError

SCHEMA = """
CREATE TABLE IF NOT EXISTS session_plans (
    session TEXT NOT NULL,
    key TEXT NOT NULL,               -- a run key the session set out to run (runs.key)
    PRIMARY KEY (session, key)
);
"""

SHOWN = 3  # run keys a message names before "and N more"


@dataclass(frozen=True)
class Plan:
    keys: frozenset[str]
    recorded: bool  # False: a session stored before plans were, whose plan is the runs it ran

    def describe(self) -> str:
        n = len(self.keys)
        return f"{n} run{'s' if n != 1 else ''}" + ("" if self.recorded
                                                    else ", the runs it ran: it was stored before s2sbench recorded plans")


def has_table(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='session_plans'").fetchone() is not None


def recorded(db: sqlite3.Connection, session: str | None = None) -> dict[str, set[str]]:
    """Session -> its recorded plan (every session, or ``session``'s); {} for a store without the table."""
    if not has_table(db):
        return {}
    q = "SELECT session, key FROM session_plans" + (" WHERE session=?" if session is not None else "")
    out: dict[str, set[str]] = {}
    for sid, key in db.execute(q, (session,) if session is not None else ()):
        out.setdefault(sid, set()).add(key)
    return out


def plan(db: sqlite3.Connection, session: str) -> Plan:
    """``session``'s plan: the recorded one, else (stored before plans were) the keys of the runs it stored."""
    keys = recorded(db, session).get(session)
    if keys is not None:
        return Plan(frozenset(keys), True)
    return Plan(frozenset(r[0] for r in db.execute("SELECT DISTINCT key FROM runs WHERE session=?", (session,))), False)


def record(db: sqlite3.Connection, session: str, keys: Iterable[str]) -> None:
    """Add ``keys`` to ``session``'s plan (inside the caller's transaction)."""
    db.executemany("INSERT OR IGNORE INTO session_plans(session, key) VALUES (?, ?)", [(session, k) for k in keys])


def _some(keys: Iterable[str]) -> str:
    ks = sorted(keys)
    more = f" and {len(ks) - SHOWN} more" if len(ks) > SHOWN else ""
    return ", ".join(ks[:SHOWN]) + more


def check_resume(db: sqlite3.Connection, path: str, row: dict[str, Any], keys: set[str] | None) -> None:
    """Refuse ``--resume`` of the session ``row`` (id, status, finished, command as stored) for the runs ``keys``
    (None: whatever the caller's own plan decides, e.g. a tuning session's rounds): finished, or runs it never
    planned."""
    sid = row["id"]
    if row["status"] == "finished":
        raise UserError(f"{path}: session {sid} finished at {row['finished']}: a finished session is never added to (what it says it ran "
                        "and measured stays true); run the command without --resume to start a new session")
    if keys is None:
        return
    p = plan(db, sid)
    extra = keys - p.keys
    if extra:
        raise UserError(f"{path}: --resume {sid}: this command asks for {len(extra)} run{'s' if len(extra) != 1 else ''} the session did "
                        f"not plan ({_some(extra)}); it runs only what it planned when it started ({p.describe()}): resume it with the "
                        f"command that started it ({row['command']}), or leave out --resume to start a new session")


def choose(db: sqlite3.Connection, path: str, suite: str | None, candidates: list[dict[str, Any]], live: list[dict[str, Any]],
           keys: set[str] | None) -> str:
    """``--resume`` without an id: the latest of ``candidates`` (unfinished sessions of ``suite`` no live process runs,
    oldest first) whose plan is exactly ``keys`` (None: any). ``live``: those another process still runs."""
    fits = [s for s in candidates if keys is None or set(plan(db, s["id"]).keys) == keys]
    if fits:
        return fits[-1]["id"]
    name = suite or "(none)"
    if candidates:
        other = candidates[-1]
        raise UserError(f"{path}: no unfinished session of suite {name!r} planned this command's {len(keys or ())} runs; the latest, "
                        f"{other['id']} ({other['status']}), planned other runs ({plan(db, other['id']).describe()}): resume it by its id "
                        f"with the command that started it ({other['command']}), or leave out --resume to start a new session")
    still = [s for s in live if keys is None or set(plan(db, s["id"]).keys) == keys] or live
    running = f" (session {still[-1]['id']} is still running in another process)" if still else ""
    raise UserError(f"{path}: no unfinished session of suite {name!r} to resume{running}")
