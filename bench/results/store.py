"""The results history: SQLite, schema-versioned, one transaction per finished run.

Sessions record where and how they ran (commit, host, device, versions, command); runs record what ran
(task, model, size, seed, config and its hash), how it ended (status, error), what it measured (final
metrics), how it got there (per-epoch history) and a few attention maps for the report. Reports and
comparisons read only this store -- never the code that produced it (asv, pytest-benchmark).

WAL journaling plus a busy timeout let two sessions write to one store at once; every run is committed on
its own, so an interrupted session loses at most the run in flight.

A store as found on real disks is not always whole (a cut write, an overwritten page, a hand edit): what cannot
be read is one line naming the store and what is damaged (:class:`DamagedStore`), and only the commands that
need that part of it fail -- the other sessions can still be listed, reported and compared.
``bench.results.integrity`` checks a whole store (``s2sbench check store``); docs/store.md says how to repair one.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.results import outputs, owners, plans

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
    plans: dict[str, set[str]] = field(default_factory=dict)  # each session's recorded plan (bench.results.plans)


class DamagedStore(UserError):
    """A part of the store cannot be read: one line naming the store and what is damaged."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(f"{path}: damaged: {what}; `s2sbench check store {path}` lists what is damaged (docs/store.md: repair)")
        self.what = what


def _kind(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def check_regular(path: str) -> bool:
    """Refuse a store path that exists and is not a regular file -- a FIFO would block the first read forever, a
    device is no store -- before anything opens it. -> whether it exists."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{path}: a folder, not a results store")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{path}: {_kind(st.st_mode)}, not a results store (a store is a regular file); nothing opened")
    return True


def same_file(a: str, b: str) -> bool:
    """Are ``a`` and ``b`` one file, whatever their paths (a hard link, a symlink, another mount of the folder)?"""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _version(path: str, raw: Any) -> int:
    """The stored schema version -> a number; anything else is damage."""
    if raw is None:
        return 0
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise DamagedStore(path, f"its schema version is {raw!r}, not a number") from None


def _json(path: str, where: str, column: str, text: Any, kind: type) -> Any:
    """One stored JSON column -> its value, or :class:`DamagedStore` naming the row and column."""
    try:
        v = json.loads(text)
    except (TypeError, ValueError) as e:
        raise DamagedStore(path, f"{where}: its {column} is not valid JSON ({e})") from None
    if not isinstance(v, kind):
        raise DamagedStore(path, f"{where}: its {column} is {type(v).__name__} JSON, not {'an object' if kind is dict else 'a list'}")
    return v


def short(e: BaseException, n: int = 160) -> str:
    """An error's text on one line, cut to ``n`` characters (SQLite quotes whole column values)."""
    text = " ".join(str(e).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def is_damage(e: sqlite3.Error) -> bool:
    """Does this SQLite error say the file is damaged (rather than busy, locked or unwritable)?"""
    text = str(e)
    # the last: a text column cut mid-character
    return type(e) is sqlite3.DatabaseError or "malformed" in text or "Could not decode" in text


@contextmanager
def reading(path: str, what: str = "") -> Iterator[None]:
    """SQLite errors of a read -> one line: a damaged file is :class:`DamagedStore` (``what``: the part being read);
    anything else (a lock held too long) cannot be read."""
    try:
        yield
    except sqlite3.Error as e:
        if is_damage(e):  # "database disk image is malformed", "file is not a database", a cut text
            raise DamagedStore(path, f"{what + ': ' if what else ''}SQLite cannot read {'them' if what else 'it'} ({short(e)})") from None
        raise UserError(f"{path}: cannot read the results store ({short(e)})") from None


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
    check_regular(path)
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
    if wal and os.path.getsize(path + "-wal") == 0 and not journal:
        # An empty log holds no page: the file is the whole store. (Left by a writer whose disk was full or which was
        # killed before its first commit; its -shm may be a few bytes that SQLite cannot map, and "mode=ro" would then
        # fail with "disk I/O error" on every read.)
        wal = False
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


MIN_FREE = 1 << 20  # bytes a store's filesystem must have free before a writer opens it (a session row and a run or two)
SHM_SIZE = 32 * 1024  # the smallest -shm file SQLite itself makes (one region of the WAL index)


def tidy_log(path: str, made: bool = False) -> None:
    """Remove the ``-wal`` and ``-shm`` files beside ``path`` when they hold nothing: an empty log, and a ``-shm`` that no
    connection can be using -- smaller than the one region SQLite makes it before any use, or ``made`` by this
    process's own open that failed. That is what a writer whose disk was full leaves (0 and 3 bytes), or one refused
    by a read-only file (0 bytes and 32 KiB), and what then made every reader of the store fail."""
    wal, shm = path + "-wal", path + "-shm"
    try:
        if os.path.exists(wal) and os.path.getsize(wal) > 0:
            return  # committed pages not yet in the file: never touched
        if os.path.exists(shm) and os.path.getsize(shm) >= SHM_SIZE and not made:
            return  # a WAL index some connection may be using; SQLite tidies it when the last one closes
        for f in (shm, wal):
            if os.path.exists(f):
                os.remove(f)
    except OSError:
        pass


def check_writable(path: str) -> None:
    """Refuse, before SQLite opens it, a store this process cannot write: SQLite would open a read-only file
    read-only without a word, then fail at the first write -- leaving the ``-wal`` and ``-shm`` files it made
    beside the store, which then break every reader. (Root may write any file; ``os.access`` says so.)"""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UserError(f"{path}: read-only (no permission to write it); a session writes each run to its store: "
                        "give a writable --store, or copy the store to a writable place")
    if os.path.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{path}: its folder {folder} is read-only; SQLite keeps its -wal and -shm files beside the store, "
                        "so a store is written only in a writable folder")
    try:
        st = os.statvfs(folder if os.path.isdir(folder) else os.path.dirname(folder) or ".")
    except (OSError, AttributeError):  # no statvfs (Windows), or a folder still to be made under a missing one
        return
    free = st.f_bavail * st.f_frsize
    if free < MIN_FREE:
        raise UserError(f"{path}: no space left on its device ({free // 1024} KiB free; a store needs at least {MIN_FREE // 1024} KiB "
                        "to take a session); free some space or give another --store")


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
        if path != ":memory:":
            check_regular(path)
            check_writable(path)
        try:
            d = os.path.dirname(os.path.abspath(path))
            os.makedirs(d, exist_ok=True)
            existed = os.path.exists(path) and os.path.getsize(path) > 0
            self._log_made = not any(os.path.exists(path + x) for x in ("-wal", "-shm"))  # by this open, if any appear
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
                self.db.executescript(plans.SCHEMA)  # what a session set out to run (bench.results.plans): a version-1 table too
                self.db.executescript(PREDICTIONS_SCHEMA)
                self.db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except (sqlite3.Error, OSError) as e:
            self._abandon()
            raise UserError(f"{path}: cannot open the results store ({e})") from None
        try:
            v = self.schema_version()
        except UserError:
            self.close()
            raise
        if v != SCHEMA_VERSION:
            self.close()
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
            with reading(path):
                tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if not {"meta", "sessions", "runs"} <= tables:
                    raise UserError(f"{path}: not a results store (an SQLite database of another program)")
                v = self.schema_version()
        except UserError:
            self.db.close()
            raise
        if v != SCHEMA_VERSION:
            self.db.close()
            raise UserError(f"{path}: store schema version {v}, this s2sbench reads version {SCHEMA_VERSION}")
        return self

    def schema_version(self) -> int:
        with reading(self.path):
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return _version(self.path, row[0] if row else None)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()
        if getattr(self, "failed", False):  # a write this process tried failed (a full disk): what did SQLite leave?
            tidy_log(self.path)

    def _abandon(self) -> None:
        """After a failed open: close, so that SQLite folds and removes its ``-wal``/``-shm`` files where it can, and
        remove what it could not (``tidy_log``)."""
        db = getattr(self, "db", None)
        if db is not None:
            try:
                db.close()
            except sqlite3.Error:
                pass
        tidy_log(self.path, made=getattr(self, "_log_made", False))

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            with self.db:
                yield self.db
        except sqlite3.Error as e:
            self.failed = True
            raise UserError(f"{self.path}: cannot write to the results store ({e})") from None

    # sessions -----------------------------------------------------------------------------------------
    def add_session(self, sid: str, started: str, suite: str | None, command: str, env: dict[str, Any],
                    plan: list[str] | None = None) -> None:
        """A new session, and (in the same transaction) ``plan``: the keys of the runs it sets out to run
        (``bench.results.plans``; None: no plan recorded, as sessions stored before plans were)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO sessions(id, started, status, suite, command, env) VALUES (?, ?, 'running', ?, ?, ?)",
                (sid, started, suite, command, json.dumps(env, sort_keys=True)),
            )
            if plan is not None:
                plans.record(db, sid, plan)

    def finish_session(self, sid: str, finished: str, status: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE sessions SET finished=?, status=? WHERE id=?", (finished, status, sid))

    def sessions(self) -> list[dict[str, Any]]:
        """Every session, oldest first. One whose stored environment cannot be read has ``damaged`` (what) and an
        empty ``env``: listed, but refused where it is asked for (``session``)."""
        with reading(self.path):
            rows = self.db.execute(
                "SELECT s.id, s.started, s.finished, s.status, s.suite, s.command, s.env, "
                "(SELECT COUNT(*) FROM runs r WHERE r.session = s.id) FROM sessions s ORDER BY s.started, s.id"
            ).fetchall()
            out = []
            for r in rows:
                s = {"id": r[0], "started": r[1], "finished": r[2], "status": r[3], "suite": r[4], "command": r[5], "env": {}, "runs": r[7]}
                try:
                    s["env"] = _json(self.path, f"session {r[0]}", "environment", r[6], dict)
                except DamagedStore as e:
                    s["damaged"] = e.what
                out.append(s)
            return owners.derive(self.db, out)  # a "running" session whose process is gone reads "interrupted"

    def session(self, ref: str) -> dict[str, Any]:
        """A session by id, unique id prefix, or ``latest``; a damaged one is refused (:class:`DamagedStore`)."""
        all_ = self.sessions()
        if not all_:
            raise UserError(f"{self.path}: the store has no sessions yet")
        if ref == "latest":
            hit = all_[-1]
        else:
            hits = [s for s in all_ if s["id"] == ref] or [s for s in all_ if s["id"].startswith(ref)]
            if len(hits) != 1:
                raise UserError(f"{self.path}: {'no' if not hits else 'more than one'} session matches {ref!r}")
            hit = hits[0]
        if hit.get("damaged"):
            raise DamagedStore(self.path, hit["damaged"])
        return hit

    def resumable(self, suite: str | None, runs: set[str] | None = None) -> str:
        """``--resume`` with no id: the latest session of ``suite`` that did not finish, that no live process runs, and
        whose plan is exactly ``runs`` (the command's run keys; None: any plan)."""
        mine = [s for s in self.sessions() if s["suite"] == suite and s["status"] != "finished"]
        cands = [s for s in mine if s["status"] != "running" or not owners.owners(self.db, s["id"])]
        return plans.choose(self.db, self.path, suite, cands, [s for s in mine if s not in cands], runs)

    def check_resume(self, sid: str, runs: set[str] | None) -> None:
        """Refuse (UserError) ``--resume sid`` for ``runs``: a finished session, or runs outside its plan
        (``bench.results.plans``). ``acquire`` checks again, in the transaction that takes the session."""
        with reading(self.path):
            row = self.db.execute("SELECT id, status, finished, command FROM sessions WHERE id=?", (sid,)).fetchone()
            if row is None:
                raise UserError(f"{self.path}: no session {sid!r} to resume")
            plans.check_resume(self.db, self.path, dict(zip(("id", "status", "finished", "command"), row)), runs)

    def extend_plan(self, sid: str, keys: list[str]) -> None:
        """Add ``keys`` to the plan of ``sid``, a session this process owns and that has not finished: a session that
        plans in rounds (``s2sbench tune``: its next trials depend on the scores so far) records each round before
        running it, so that every run it stores is in its plan."""
        with self._tx() as db:
            row = db.execute("SELECT status FROM sessions WHERE id=?", (sid,)).fetchone()
            if row is None or row[0] == "finished":
                raise UserError(f"{self.path}: session {sid} {'is not in the store' if row is None else 'finished'}: its plan is fixed")
            plans.record(db, sid, keys)

    def planned(self, sid: str) -> set[str]:
        """The run keys ``sid`` set out to run (stored before plans were: the runs it ran)."""
        with reading(self.path):
            return set(plans.plan(self.db, sid).keys)

    # who runs a session (bench.results.owners) ---------------------------------------------------------
    def acquire(self, sid: str, resume: bool, runs: set[str] | None = None) -> owners.Owner:
        """This process becomes ``sid``'s owner; refused (UserError) while another process runs it, and -- to resume
        -- when the session finished or ``runs`` (its run keys; None: not checked) are not all in its plan."""
        def may_resume(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT id, status, finished, command FROM sessions WHERE id=?", (sid,)).fetchone()
            if row is None:
                raise UserError(f"{self.path}: no session {sid!r} to resume")
            plans.check_resume(db, self.path, dict(zip(("id", "status", "finished", "command"), row)), runs)

        return owners.acquire(self.db, self.path, sid, resume, check=may_resume if resume else None)

    def claim(self, owner: owners.Owner, key: str) -> bool:
        """Claim run ``key`` before it starts: False when it is done already or another live process holds it."""
        return owners.claim(self.db, self.path, owner, key)

    def release(self, owner: owners.Owner, status: str | None) -> None:
        """Let go of the session, setting its status (when still its owner)."""
        owners.release(self.db, self.path, owner, status)

    def session_owners(self, sid: str) -> list[owners.Owner]:
        """Every process that worked on ``sid``, oldest first."""
        with reading(self.path):
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
        with reading(self.path, f"the test outputs of run {run_id}"):
            if not _has_table(self.db, "run_predictions"):
                return None
            row = self.db.execute("SELECT rows FROM run_predictions WHERE run=?", (run_id,)).fetchone()
        if row is None:
            return None
        try:
            return outputs.decode(row[0])
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:  # a cut or edited row: named, not a traceback
            raise DamagedStore(self.path, f"the test outputs of run {run_id}: not readable ({short(e)})") from None

    def runs(self, session: str | None = None) -> list[RunRecord]:
        q = ("SELECT id, session, key, task, model, size, seed, config, config_hash, status, error, started, finished, metrics, history, "
             "samples FROM runs")
        args: tuple = ()
        if session is not None:
            q += " WHERE session = ?"
            args = (session,)
        out = []
        with reading(self.path, f"the runs of session {session}" if session is not None else "the runs"):
            rows = self.db.execute(q + " ORDER BY id", args).fetchall()
        for row in rows:
            (rid, sess, key, task, model, size, seed, cfg, ch, status, err, st, fin, met, hist, samp) = row
            where = f"run {rid} (session {sess}, {key})"
            out.append(RunRecord(session=sess, key=key, task=task, model=model, size=size, seed=seed,
                                 config=_json(self.path, where, "config", cfg, dict), config_hash=ch, status=status, error=err, started=st,
                                 finished=fin, metrics=_json(self.path, where, "metrics", met, dict),
                                 history=_json(self.path, where, "history", hist, list),
                                 samples=_json(self.path, where, "samples", samp, list), id=rid))
        return out

    # raw rows, for merge ----------------------------------------------------------------------------------
    @staticmethod
    def read_dump(path: str) -> Dump:
        """Every row of the store at ``path``, read only; the store must be this schema version."""
        if not check_regular(path):
            raise UserError(f"{path}: no such results store")
        check_sqlite_file(path)
        db = connect_read_only(path)
        try:
            with reading(path):
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if not {"meta", "sessions", "runs"} <= tables:
                    raise UserError(f"{path}: not a results store (an SQLite database of another program)")
                row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                version = _version(path, row[0] if row else None)
                if version != SCHEMA_VERSION:
                    raise UserError(f"{path}: store schema version {version}, this s2sbench merges version {SCHEMA_VERSION}; nothing "
                                    "merged")
                # a damaged page that no row below reads is damage all the same: what else on it was lost?
                found = [ln.strip() for (msg,) in db.execute("PRAGMA quick_check") for ln in str(msg).splitlines()]
                found = [ln for ln in found if ln and ln != "ok" and not ln.startswith("***")]
                if found:
                    raise DamagedStore(path, f"SQLite's integrity check: {short(Exception(found[0]))}")
                return _dump(db, path)
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
            self.failed = True
            raise UserError(f"{self.path}: cannot write to the results store ({e}); nothing written") from None

    def done_keys(self, session: str) -> set[str]:
        with reading(self.path):
            return {r[0] for r in self.db.execute("SELECT key FROM runs WHERE session=? AND status='ok'", (session,))}

    def stored_keys(self, session: str) -> set[str]:
        """Every run key the session has a record of, ok or failed: the runs it ran."""
        with reading(self.path):
            return {r[0] for r in self.db.execute("SELECT DISTINCT key FROM runs WHERE session=?", (session,))}


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def _dump(db: sqlite3.Connection, path: str) -> Dump:
    sessions = {r[0]: dict(zip(SESSION_COLS, r)) for r in db.execute(f"SELECT {', '.join(SESSION_COLS)} FROM sessions")}
    runs = [dict(zip(("id",) + RUN_COLS, r)) for r in db.execute(f"SELECT id, {', '.join(RUN_COLS)} FROM runs ORDER BY id")]
    preds = dict(db.execute("SELECT run, rows FROM run_predictions")) if _has_table(db, "run_predictions") else {}
    return Dump(path, sessions, runs, [{c: getattr(o, c) for c in (*owners.OWNER_COLS, "seq")} for o in owners.owners(db)], preds,
                plans.recorded(db))


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
        cur = self.db.execute(f"INSERT INTO runs({', '.join(RUN_COLS)}) VALUES ({', '.join('?' * len(RUN_COLS))})",
                              tuple(row[c] for c in RUN_COLS))
        if predictions is not None:
            self.db.execute("INSERT INTO run_predictions(run, rows) VALUES (?, ?)", (int(cur.lastrowid), predictions))

    def put_plan(self, session: str, keys: set[str]) -> None:
        """Add ``keys`` to ``session``'s recorded plan (a part's plan joins the others')."""
        plans.record(self.db, session, sorted(keys))

    def put_owner(self, row: dict[str, Any]) -> None:
        """An owner record of another store (a process that ran the session there); kept once per stint."""
        self.db.execute(f"INSERT OR IGNORE INTO session_owners({', '.join(owners.OWNER_COLS)}) VALUES "
                        f"({', '.join('?' * len(owners.OWNER_COLS))})",
                        tuple(row[c] for c in owners.OWNER_COLS))

    def distinct_keys(self, session: str) -> int:
        return int(self.db.execute("SELECT COUNT(DISTINCT key) FROM runs WHERE session=?", (session,)).fetchone()[0])
