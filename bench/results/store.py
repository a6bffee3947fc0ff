"""The results history: SQLite, schema-versioned, one transaction per finished run.

Sessions record where and how they ran (commit, host, device, versions, command); runs record what ran
(task, model, size, seed, config and its hash), how it ended (status, error), what it measured (final
metrics), how it got there (per-epoch history) and a few attention maps for the report. Reports and
comparisons read only this store -- never the code that produced it (asv, pytest-benchmark).

WAL journaling plus a busy timeout let two sessions write to one store at once; every run is committed on
its own, so an interrupted session loses at most the run in flight.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.results import outputs, owners

SCHEMA_VERSION = 1
DEFAULT_PATH = os.path.join("results", "bench.sqlite")
WAIT_S = 60.0  # how long a statement waits for another process that holds the store before it gives up

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL,            -- running | finished | interrupted
    suite TEXT,
    command TEXT,
    env TEXT NOT NULL                -- JSON: commit, dirty, host, device, versions, threads, ...
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session TEXT NOT NULL REFERENCES sessions(id),
    key TEXT NOT NULL,               -- task/model/size/seed/config-hash: identifies a run across sessions
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    size TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config TEXT NOT NULL,            -- JSON: the full resolved run config
    config_hash TEXT NOT NULL,
    status TEXT NOT NULL,            -- ok | failed
    error TEXT,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    metrics TEXT NOT NULL,           -- JSON: final measurements
    history TEXT NOT NULL,           -- JSON: per-epoch records
    samples TEXT NOT NULL            -- JSON: attention maps of a few test inputs
);
CREATE INDEX IF NOT EXISTS runs_session ON runs(session);
CREATE INDEX IF NOT EXISTS runs_key ON runs(key);
"""

# Every test example's output of a run (bench.results.outputs), apart from the runs table so that reading runs
# (every report) does not read them. Added to the version-1 schema as the owner tables were: a store that has it
# is still a version-1 store (an older s2sbench ignores the table), and one without it has no predictions.
PREDICTIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS run_predictions (
    run INTEGER PRIMARY KEY,         -- runs.id of the run
    rows TEXT NOT NULL               -- JSON: columns and one row per test example (bench.results.outputs)
);
"""


RUN_COLS = ("session", "key", "task", "model", "size", "seed", "config", "config_hash", "status", "error", "started", "finished",
            "metrics", "history", "samples")
SESSION_COLS = ("id", "started", "finished", "status", "suite", "command", "env")


@dataclass
class Dump:
    """Every session and run of one store, as stored (JSON columns left as text): what ``merge`` works on."""

    path: str
    sessions: dict[str, dict[str, Any]]
    runs: list[dict[str, Any]]  # with "id" (its row id in that store)
    owners: list[dict[str, Any]] = field(default_factory=list)  # who ran each session (bench.results.owners)
    predictions: dict[int, str] = field(default_factory=dict)  # run id in that store -> its stored predictions (JSON text)


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """One stored run. Built by name only: sixteen fields in a row are too easy to shift by one."""

    session: str
    key: str
    task: str
    model: str
    size: str
    seed: int
    config: dict[str, Any]
    config_hash: str
    status: str
    error: str | None
    started: str
    finished: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    samples: list[dict[str, Any]]
    id: int | None = None
    # Every test example's output, written to run_predictions with the run (bench.results.outputs); never read back
    # into a record (``Store.predictions`` reads them).
    predictions: list[Any] | None = field(default=None, compare=False, repr=False)


def check_sqlite_file(path: str) -> None:
    """Refuse a file that is not SQLite at all before anything opens (and so changes) it."""
    if os.path.isdir(path):
        raise UserError(f"{path}: a folder, not a results store")
    try:
        with open(path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise UserError(f"{path}: not a results store (not an SQLite file)")
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e})") from None


def connect_read_only(path: str) -> sqlite3.Connection:
    """An SQLite connection that can only read the store at ``path``, and leaves nothing beside it.

    A plain connection (even ``mode=ro``) to a WAL store creates ``-wal`` and ``-shm`` files next to it and
    cannot open it at all on read-only media. So: where a writer is at work (or was: its ``-wal`` file is
    there), read through its log with ``mode=ro``, which reuses the files that exist; where there is no log,
    nothing beyond the file itself holds data, and ``immutable=1`` reads the file as it is, creating nothing
    and taking no locks. The one case left -- a log without its ``-shm`` in a read-only folder -- cannot be
    read by SQLite without writing, and is refused rather than read without the log's runs.

    The limit of ``immutable``: a writer that starts while such a reader reads is not seen by it (the reader
    reads the store as it was). Writers keep their log until their last commit is folded into the file, which
    happens after a thousand pages of writes or when they close -- not within the second a reader takes.
    """
    wal, shm, journal = (os.path.exists(path + s) for s in ("-wal", "-shm", "-journal"))
    folder_writable = os.access(os.path.dirname(os.path.abspath(path)), os.W_OK)
    uri = Path(path).resolve().as_uri()
    if wal and not shm and not folder_writable:
        raise UserError(f"{path}: its write-ahead log {os.path.basename(path)}-wal can only be read in a writable folder; "
                        "copy the store with its -wal file to one")
    try:
        db = sqlite3.connect(uri + ("?mode=ro" if wal or journal else "?immutable=1"), uri=True, timeout=WAIT_S)
        db.execute("PRAGMA query_only=ON")
    except sqlite3.Error as e:
        raise UserError(f"{path}: cannot open the results store ({e})") from None
    return db


def _use_wal(db: sqlite3.Connection) -> None:
    """Switch the store to WAL journaling, waiting out other processes doing the same.

    Turning WAL on needs the file to itself, and SQLite answers "database is locked" at once rather than
    calling the busy handler when another connection holds it -- which is what two sessions starting on one
    new store at the same moment do. So the switch is retried, with a growing pause, for ``WAIT_S`` seconds
    (what every other statement waits), and skipped once the store is already in WAL.
    """
    deadline, pause = time.monotonic() + WAIT_S, 0.005
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if ("locked" not in str(e) and "busy" not in str(e)) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


class Store:
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            d = os.path.dirname(os.path.abspath(path))
            os.makedirs(d, exist_ok=True)
            existed = os.path.exists(path) and os.path.getsize(path) > 0
            self.db = sqlite3.connect(path, timeout=WAIT_S)
            if existed:
                tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if tables and "meta" not in tables:
                    self.db.close()
                    raise UserError(f"{path}: not a results store (an SQLite database of another program)")
            self.db.execute(f"PRAGMA busy_timeout={int(WAIT_S * 1000)}")
            _use_wal(self.db)
            with self.db:
                self.db.executescript(_SCHEMA)
                self.db.executescript(owners.SCHEMA)  # who runs a session (bench.results.owners): version-1 tables too
                self.db.executescript(PREDICTIONS_SCHEMA)
                self.db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except (sqlite3.Error, OSError) as e:
            raise UserError(f"{path}: cannot open the results store ({e})") from None
        v = self.schema_version()
        if v != SCHEMA_VERSION:
            raise UserError(f"{path}: store schema version {v}, this s2sbench reads version {SCHEMA_VERSION}")

    @classmethod
    def open_existing(cls, path: str) -> Store:
        """Open for reading; a missing file is an error rather than a new empty store."""
        if not os.path.exists(path):
            raise UserError(f"{path}: no results store here (run a session first)")
        check_sqlite_file(path)
        return cls(path)

    @classmethod
    def open_read_only(cls, path: str) -> Store:
        """Open for reading only (list, export, report, compare, merge's inputs): the store's bytes stay as they
        are, no ``-wal``/``-shm`` file is left beside it, and a store on read-only media can be read."""
        if not os.path.exists(path):
            raise UserError(f"{path}: no results store here (run a session first)")
        check_sqlite_file(path)
        self = cls.__new__(cls)
        self.path, self.db = path, connect_read_only(path)
        try:
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"meta", "sessions", "runs"} <= tables:
                raise UserError(f"{path}: not a results store (an SQLite database of another program)")
            v = self.schema_version()
        except sqlite3.Error as e:
            self.db.close()
            raise UserError(f"{path}: cannot read the results store ({e})") from None
        except UserError:
            self.db.close()
            raise
        if v != SCHEMA_VERSION:
            self.db.close()
            raise UserError(f"{path}: store schema version {v}, this s2sbench reads version {SCHEMA_VERSION}")
        return self

    def schema_version(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            with self.db:
                yield self.db
        except sqlite3.Error as e:
            raise UserError(f"{self.path}: cannot write to the results store ({e})") from None

    # sessions -----------------------------------------------------------------------------------------
    def add_session(self, sid: str, started: str, suite: str | None, command: str, env: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO sessions(id, started, status, suite, command, env) VALUES (?, ?, 'running', ?, ?, ?)",
                (sid, started, suite, command, json.dumps(env, sort_keys=True)),
            )

    def finish_session(self, sid: str, finished: str, status: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE sessions SET finished=?, status=? WHERE id=?", (finished, status, sid))

    def sessions(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT s.id, s.started, s.finished, s.status, s.suite, s.command, s.env, "
            "(SELECT COUNT(*) FROM runs r WHERE r.session = s.id) FROM sessions s ORDER BY s.started, s.id"
        ).fetchall()
        return owners.derive(self.db, [  # a "running" session whose process is gone reads "interrupted"
            {"id": r[0], "started": r[1], "finished": r[2], "status": r[3], "suite": r[4], "command": r[5], "env": json.loads(r[6]), "runs": r[7]}
            for r in rows
        ])

    def session(self, ref: str) -> dict[str, Any]:
        """A session by id, unique id prefix, or ``latest``."""
        all_ = self.sessions()
        if not all_:
            raise UserError(f"{self.path}: the store has no sessions yet")
        if ref == "latest":
            return all_[-1]
        hits = [s for s in all_ if s["id"] == ref] or [s for s in all_ if s["id"].startswith(ref)]
        if len(hits) != 1:
            raise UserError(f"{self.path}: {'no' if not hits else 'more than one'} session matches {ref!r}")
        return hits[0]

    def resumable(self, suite: str | None) -> str:
        """The latest session of ``suite`` that did not finish and that no live process runs (``--resume`` with no id)."""
        mine = [s for s in self.sessions() if s["suite"] == suite and s["status"] != "finished"]
        cands = [s for s in mine if s["status"] != "running" or not owners.owners(self.db, s["id"])]
        if not cands:
            live = f" (session {mine[-1]['id']} is still running in another process)" if mine else ""
            raise UserError(f"{self.path}: no unfinished session of suite {suite or '(none)'!r} to resume{live}")
        return cands[-1]["id"]

    # who runs a session (bench.results.owners) ---------------------------------------------------------
    def acquire(self, sid: str, resume: bool) -> owners.Owner:
        """This process becomes ``sid``'s owner; refused (UserError) while another process runs it."""
        return owners.acquire(self.db, self.path, sid, resume)

    def claim(self, owner: owners.Owner, key: str) -> bool:
        """Claim run ``key`` before it starts: False when it is done already or another live process holds it."""
        return owners.claim(self.db, self.path, owner, key)

    def release(self, owner: owners.Owner, status: str | None) -> None:
        """Let go of the session, setting its status (when still its owner)."""
        owners.release(self.db, self.path, owner, status)

    def session_owners(self, sid: str) -> list[owners.Owner]:
        """Every process that worked on ``sid``, oldest first."""
        return owners.owners(self.db, sid)

    # runs ---------------------------------------------------------------------------------------------
    def add_run(self, r: RunRecord, claim: str | None = None) -> int:
        """Commit one finished (or failed) run in its own transaction.

        ``claim``: the owner token that claimed the run (``claim``); the run is stored only while that claim
        stands, and the claim is released with it.
        """
        with self._tx() as db:
            if claim is not None:
                owners.settle_claim(db, r.session, r.key, claim)
            cur = db.execute(
                "INSERT INTO runs(session, key, task, model, size, seed, config, config_hash, status, error, started, finished, "
                "metrics, history, samples) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (r.session, r.key, r.task, r.model, r.size, r.seed, json.dumps(r.config, sort_keys=True), r.config_hash, r.status,
                 r.error, r.started, r.finished, json.dumps(r.metrics), json.dumps(r.history), json.dumps(r.samples)),
            )
            rid = int(cur.lastrowid)
            if r.predictions is not None:
                db.execute("INSERT INTO run_predictions(run, rows) VALUES (?, ?)", (rid, outputs.encode(r.predictions)))
            return rid

    def predictions(self, run_id: int) -> list[outputs.Prediction] | None:
        """Every test example's output of the run with this id; None when the run has none stored (a run stored before
        they were kept, a throughput run, a failed run)."""
        if not _has_table(self.db, "run_predictions"):
            return None
        row = self.db.execute("SELECT rows FROM run_predictions WHERE run=?", (run_id,)).fetchone()
        return None if row is None else outputs.decode(row[0])

    def runs(self, session: str | None = None) -> list[RunRecord]:
        q = "SELECT id, session, key, task, model, size, seed, config, config_hash, status, error, started, finished, metrics, history, samples FROM runs"
        args: tuple = ()
        if session is not None:
            q += " WHERE session = ?"
            args = (session,)
        out = []
        for row in self.db.execute(q + " ORDER BY id", args).fetchall():
            (rid, sess, key, task, model, size, seed, cfg, ch, status, err, st, fin, met, hist, samp) = row
            out.append(RunRecord(session=sess, key=key, task=task, model=model, size=size, seed=seed, config=json.loads(cfg), config_hash=ch,
                                 status=status, error=err, started=st, finished=fin, metrics=json.loads(met), history=json.loads(hist),
                                 samples=json.loads(samp), id=rid))
        return out

    # raw rows, for merge ----------------------------------------------------------------------------------
    @staticmethod
    def read_dump(path: str) -> Dump:
        """Every row of the store at ``path``, read only; the store must be this schema version."""
        if not os.path.exists(path):
            raise UserError(f"{path}: no such results store")
        check_sqlite_file(path)
        db = connect_read_only(path)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"meta", "sessions", "runs"} <= tables:
                raise UserError(f"{path}: not a results store (an SQLite database of another program)")
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version != SCHEMA_VERSION:
                raise UserError(f"{path}: store schema version {version}, this s2sbench merges version {SCHEMA_VERSION}; nothing merged")
            return _dump(db, path)
        except sqlite3.Error as e:
            raise UserError(f"{path}: cannot read the results store ({e})") from None
        finally:
            db.close()

    @contextmanager
    def bulk(self) -> Iterator[BulkWriter]:
        """One transaction for many raw writes (merge): all of them land, or none."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield BulkWriter(self.db, self.path)
                self.db.commit()
            except BaseException:
                self.db.rollback()
                raise
        except sqlite3.Error as e:  # a full disk, a read-only file: one line, and the transaction rolled back
            raise UserError(f"{self.path}: cannot write to the results store ({e}); nothing written") from None

    def done_keys(self, session: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT key FROM runs WHERE session=? AND status='ok'", (session,))}

    def stored_keys(self, session: str) -> set[str]:
        """Every run key the session has a record of, ok or failed: the runs it ran."""
        return {r[0] for r in self.db.execute("SELECT DISTINCT key FROM runs WHERE session=?", (session,))}


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def _dump(db: sqlite3.Connection, path: str) -> Dump:
    sessions = {r[0]: dict(zip(SESSION_COLS, r)) for r in db.execute(f"SELECT {', '.join(SESSION_COLS)} FROM sessions")}
    runs = [dict(zip(("id",) + RUN_COLS, r)) for r in db.execute(f"SELECT id, {', '.join(RUN_COLS)} FROM runs ORDER BY id")]
    preds = dict(db.execute("SELECT run, rows FROM run_predictions")) if _has_table(db, "run_predictions") else {}
    return Dump(path, sessions, runs, [{c: getattr(o, c) for c in owners.OWNER_COLS} for o in owners.owners(db)], preds)


class BulkWriter:
    """Raw row operations inside ``Store.bulk``'s transaction."""

    def __init__(self, db: sqlite3.Connection, path: str) -> None:
        self.db, self.path = db, path

    def dump(self) -> Dump:
        return _dump(self.db, self.path)

    def put_session(self, row: dict[str, Any], exists: bool) -> None:
        if exists:
            self.db.execute("UPDATE sessions SET started=?, finished=?, status=?, suite=?, command=?, env=? WHERE id=?",
                            (*(row[c] for c in SESSION_COLS[1:]), row["id"]))
        else:
            self.db.execute(f"INSERT INTO sessions({', '.join(SESSION_COLS)}) VALUES ({', '.join('?' * len(SESSION_COLS))})",
                            tuple(row[c] for c in SESSION_COLS))

    def delete_run(self, run_id: int) -> None:
        self.db.execute("DELETE FROM runs WHERE id=?", (run_id,))
        self.db.execute("DELETE FROM run_predictions WHERE run=?", (run_id,))

    def insert_run(self, row: dict[str, Any], predictions: str | None = None) -> None:
        """A run row of another store, with its stored predictions (JSON text) where it has them."""
        cur = self.db.execute(f"INSERT INTO runs({', '.join(RUN_COLS)}) VALUES ({', '.join('?' * len(RUN_COLS))})", tuple(row[c] for c in RUN_COLS))
        if predictions is not None:
            self.db.execute("INSERT INTO run_predictions(run, rows) VALUES (?, ?)", (int(cur.lastrowid), predictions))

    def put_owner(self, row: dict[str, Any]) -> None:
        """An owner record of another store (a process that ran the session there); kept once per stint."""
        self.db.execute(f"INSERT OR IGNORE INTO session_owners({', '.join(owners.OWNER_COLS)}) VALUES ({', '.join('?' * len(owners.OWNER_COLS))})",
                        tuple(row[c] for c in owners.OWNER_COLS))

    def distinct_keys(self, session: str) -> int:
        return int(self.db.execute("SELECT COUNT(DISTINCT key) FROM runs WHERE session=?", (session,)).fetchone()[0])
