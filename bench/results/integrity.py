"""Is a results store whole? SQLite's own integrity check, then the store's invariants (``s2sbench check store``).

The invariants are what every reader of the store relies on:

* the schema version is a number (and this s2sbench's);
* every session's environment and every run's config, metrics, history and samples are readable JSON of the
  right shape (an object, or a list), and so are a run's stored test outputs (``run_predictions``); every run
  belongs to a session that is there, and every stored output to a run;
* every run is in its session's plan (``bench.results.plans``), and a finished session has a record of every
  run it planned;
* the owner records are sane (``bench.results.owners``): a process id that is a number, times that are times,
  no heartbeat further in the future than the clock allowance, a session that is there.

``merge`` runs the same checks on each input (:func:`problems` over its rows) and refuses a damaged one, naming
the row, so that a damaged row is never copied into another store. Nothing here writes: the store is read
through ``connect_read_only`` (no ``-wal``/``-shm`` left beside it).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.errors import UserError
from bench.results import owners, plans
from bench.results.store import (
    RUN_COLS,
    SCHEMA_VERSION,
    SESSION_COLS,
    Dump,
    check_regular,
    check_sqlite_file,
    connect_read_only,
    short,
)

SHOWN = 20  # problems printed before "... and N more"
_JSON = (("config", dict), ("metrics", dict), ("history", list), ("samples", list))  # a run's JSON columns and their shapes
STATUSES = {"sessions": ("running", "finished", "interrupted"), "runs": ("ok", "failed")}


@dataclass(frozen=True)
class Problem:
    where: str  # "run 17 (session s, date/attention/tiny/0/ab12)", "session s", "owner record 3", "SQLite"
    what: str

    def line(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass
class Report:
    path: str
    sessions: int = 0
    runs: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)  # not damage, worth knowing (a heartbeat dated in the future)

    @property
    def clean(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        head = f"{self.path}: {self.sessions} session{'s' if self.sessions != 1 else ''}, {self.runs} run{'s' if self.runs != 1 else ''}"
        notes = ["  note: " + p.line() for p in self.notes[:SHOWN]]
        if self.clean:
            return [f"{head}: clean (SQLite's integrity check ok; every run's JSON readable and in its session's plan; owners sane)",
                    *notes]
        n = len(self.problems)
        out = [f"{head}: DAMAGED, {n} problem{'s' if n != 1 else ''}:"]
        out += ["  " + p.line() for p in self.problems[:SHOWN]]
        if n > SHOWN:
            out.append(f"  ... and {n - SHOWN} more")
        out += notes
        out.append("repair: see docs/store.md (a copy first; SQLite's .recover for damaged pages; then check again)")
        return out


# --- the invariants, over rows (a live store's cursor, or merge's dump) ---------------------------------------
def _json(text: Any, kind: type) -> str | None:
    """Why ``text`` is not JSON of ``kind`` (None: it is)."""
    try:
        v = json.loads(text)
    except (TypeError, ValueError) as e:
        return f"not valid JSON ({e})"
    if not isinstance(v, kind):
        return f"{type(v).__name__} JSON, not {'an object' if kind is dict else 'a list'}"
    return None


def _time(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None


def run_where(r: dict[str, Any]) -> str:
    return f"run {r.get('id')} (session {r.get('session')}, {r.get('key')})"


def session_problems(sessions: Iterable[dict[str, Any]]) -> Iterator[Problem]:
    for s in sessions:
        where = f"session {s['id']}"
        why = _json(s.get("env"), dict)
        if why:
            yield Problem(where, f"its environment is {why}")
        if s.get("status") not in STATUSES["sessions"]:
            yield Problem(where, f"its status is {s.get('status')!r}, not one of {', '.join(STATUSES['sessions'])}")
        if _time(s.get("started")) is None:
            yield Problem(where, f"its start {s.get('started')!r} is not a time")


def run_problems(runs: Iterable[dict[str, Any]], sessions: set[str], planned: dict[str, set[str]]) -> Iterator[Problem]:
    """Each run: readable, of a session that is there, in that session's recorded plan (``planned``)."""
    for r in runs:
        where = run_where(r)
        for col, kind in _JSON:
            why = _json(r.get(col), kind)
            if why:
                yield Problem(where, f"its {col} is {why}")
        if r.get("session") not in sessions:
            yield Problem(where, "its session is not in the store")
        if r.get("status") not in STATUSES["runs"]:
            yield Problem(where, f"its status is {r.get('status')!r}, not ok or failed")
        if isinstance(r.get("seed"), bool) or not isinstance(r.get("seed"), int):
            yield Problem(where, f"its seed {r.get('seed')!r} is not an integer")
        plan = planned.get(r.get("session"))  # type: ignore[arg-type]
        if plan is not None and r.get("key") not in plan:
            yield Problem(where, "not in its session's plan (a run added to the session after it started)")


def plan_problems(sessions: Iterable[dict[str, Any]], planned: dict[str, set[str]], stored: dict[str, set[str]]) -> Iterator[Problem]:
    """A finished session has a record of every run it planned."""
    for s in sessions:
        plan = planned.get(s["id"])
        if s.get("status") == "finished" and plan is not None:
            missing = plan - stored.get(s["id"], set())
            if missing:
                yield Problem(f"session {s['id']}", f"finished, yet {len(missing)} planned run(s) have no record (e.g. "
                              f"{sorted(missing)[0]})")


def prediction_problems(preds: Iterable[tuple[Any, Any]], runs: set[Any]) -> Iterator[Problem]:
    """Each run's stored test outputs (``bench.results.outputs``): a JSON object with its rows, of a run that is there."""
    for run, text in preds:
        where = f"the test outputs of run {run}"
        why = _json(text, dict)
        if why is None and not isinstance(json.loads(text).get("rows"), list):
            why = "JSON without its rows"
        if why:
            yield Problem(where, f"are {why}")
        if run not in runs:
            yield Problem(where, "belong to no run in the store")


def owner_problems(rows: Iterable[dict[str, Any]], sessions: set[str], at: float) -> Iterator[Problem]:
    """An owner record that cannot be read as one (its pid, its times, its session)."""
    for o in rows:
        where = f"owner record {o.get('seq', '?')} (session {o.get('session')})"
        pid = o.get("pid")
        if isinstance(pid, bool) or not isinstance(pid, int):
            yield Problem(where, f"its pid {pid!r} is not a number")
        for col in ("started", "heartbeat") + (("ended",) if o.get("ended") is not None else ()):
            if _time(o.get(col)) is None:
                yield Problem(where, f"its {col} {o.get(col)!r} is not a time")
        if o.get("session") not in sessions:
            yield Problem(where, "its session is not in the store")


def owner_notes(rows: Iterable[dict[str, Any]], at: float) -> Iterator[Problem]:
    """Owner records worth knowing about that are not damage: a heartbeat dated further ahead than clocks differ
    (``owners.SKEW_S``), which counts as stale."""
    for o in rows:
        hb = _time(o.get("heartbeat"))
        if hb is not None and owners.heartbeat_age(o["heartbeat"], at) is None:
            yield Problem(f"owner record {o.get('seq', '?')} (session {o.get('session')})",
                          f"its heartbeat is dated {round(hb.timestamp() - at)} s in the future, beyond the {owners.SKEW_S:.0f} s allowed "
                          "for clocks that differ: it counts as stale")


def problems(d: Dump, at: float) -> list[Problem]:
    """Every invariant broken in the rows of ``d`` (merge's reading of an input)."""
    sids = set(d.sessions)
    stored: dict[str, set[str]] = {}
    for r in d.runs:
        stored.setdefault(r["session"], set()).add(r["key"])
    out = list(session_problems(d.sessions.values()))
    out += run_problems(d.runs, sids, d.plans)
    out += plan_problems(d.sessions.values(), d.plans, stored)
    out += prediction_problems(d.predictions.items(), {r["id"] for r in d.runs})
    out += owner_problems(d.owners, sids, at)
    return out


# --- a whole store ------------------------------------------------------------------------------------------
def _rows(db: sqlite3.Connection, q: str, cols: tuple[str, ...], bad: list[Problem], where: Any = None) -> Iterator[dict[str, Any]]:
    """Rows as dicts, read as bytes and decoded here: a text cut mid-character (a damaged page) is a problem of
    its row (``where(row)`` names it), not an error that stops the reading."""
    db.text_factory = bytes
    try:
        for r in db.execute(q):
            row = dict(zip(cols, r))
            for k, v in row.items():
                if isinstance(v, bytes):
                    try:
                        row[k] = v.decode("utf-8")
                    except UnicodeDecodeError as e:
                        row[k] = v.decode("utf-8", errors="replace")
                        bad.append(Problem(where(row) if where else "a row", f"its {k} is not UTF-8 text (byte {e.start})"))
            yield row
    finally:
        db.text_factory = str


def check(path: str, at: float) -> Report:
    """SQLite's integrity check and the invariants of the store at ``path`` (read only). Bad input -- no store there,
    not an SQLite file, another program's database, another schema version -- is a UserError; damage is a
    :class:`Problem` of the report."""
    if not check_regular(path):
        raise UserError(f"{path}: no results store here")
    check_sqlite_file(path)
    db = connect_read_only(path)
    rep = Report(path)
    try:
        try:
            found = [line.strip() for (msg,) in db.execute("PRAGMA integrity_check") for line in str(msg).splitlines()]
            rep.problems += [Problem("SQLite", line) for line in found if line and line != "ok" and not line.startswith("***")]
        except sqlite3.DatabaseError as e:  # the check itself stopped: the rows below may still be readable
            rep.problems.append(Problem("SQLite", f"its integrity check stopped ({short(e)})"))
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as e:
            rep.problems.append(Problem("SQLite", f"cannot read the list of tables ({short(e)})"))
            return rep
        if not {"meta", "sessions", "runs"} <= tables:
            raise UserError(f"{path}: not a results store (an SQLite database of another program)")
        for what, fn in (("meta", _check_meta), ("sessions and runs", _check_rows)):
            try:
                fn(db, rep, at)
            except UserError:
                raise
            except sqlite3.Error as e:  # a damaged page under these rows: the rest cannot be read
                rep.problems.append(Problem("SQLite", f"cannot read the {what} ({short(e)})"))
                break
    finally:
        db.close()
    return rep


def _check_meta(db: sqlite3.Connection, rep: Report, at: float) -> None:
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        rep.problems.append(Problem("meta", "no schema version"))
        return
    try:
        v = int(row[0])
    except (TypeError, ValueError):
        rep.problems.append(Problem("meta", f"the schema version is {row[0]!r}, not a number"))
        return
    if v != SCHEMA_VERSION:
        raise UserError(f"{rep.path}: store schema version {v}, this s2sbench checks version {SCHEMA_VERSION}")


def _check_rows(db: sqlite3.Connection, rep: Report, at: float) -> None:
    sessions = list(_rows(db, f"SELECT {', '.join(SESSION_COLS)} FROM sessions", SESSION_COLS, rep.problems,
                          lambda s: f"session {s['id']}"))
    sids = {s["id"] for s in sessions}
    planned = plans.recorded(db)
    rep.sessions = len(sessions)
    rep.problems += session_problems(sessions)
    stored: dict[str, set[str]] = {}
    ids: set[Any] = set()
    for r in _rows(db, f"SELECT id, {', '.join(RUN_COLS)} FROM runs ORDER BY id", ("id",) + RUN_COLS, rep.problems, run_where):
        ids.add(r["id"])
        stored.setdefault(r["session"], set()).add(r["key"])
        rep.problems += run_problems([r], sids, planned)
    rep.runs = len(ids)
    rep.problems += plan_problems(sessions, planned, stored)
    if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='run_predictions'").fetchone():
        preds = _rows(db, "SELECT run, rows FROM run_predictions ORDER BY run", ("run", "rows"), rep.problems,
                      lambda p: f"the test outputs of run {p.get('run')}")
        rep.problems += prediction_problems(((p["run"], p["rows"]) for p in preds), ids)
    if owners.has_tables(db):
        cols = owners.OWNER_COLS + ("seq",)
        rows = list(_rows(db, f"SELECT {', '.join(cols)} FROM session_owners ORDER BY seq", cols, rep.problems,
                          lambda o: f"owner record {o.get('seq')}"))
        rep.problems += owner_problems(rows, sids, at)
        rep.notes += owner_notes(rows, at)
