"""``s2sbench export --to mlflow``: every stored run as an MLflow run, so s2sbench runs sit beside a team's others.

One s2sbench run -> one MLflow run in one experiment: its resolved config as params (``train.lr``,
``data.task``, ...), its final figures as metrics, its per-epoch history as stepped metrics
(``epoch/loss``, ``epoch/valid_exact_match``, ``epoch/train_s``, ...), and session, commit, device and
status as tags (``s2sbench.*``; the commit also as MLflow's own ``mlflow.source.git.commit``). A failed run
becomes a FAILED MLflow run with its reason as the run's note; start and end times are the run's own.

The store stays the source of truth and is only read. A second export of the same session finds the runs
it wrote by their ``s2sbench.uid`` tag and skips them, so nothing is duplicated; a run an interrupted
export left unfinished (status RUNNING) is deleted and written again.

The default tracking URI is a SQLite database beside the store (``sqlite:///.../mlflow.sqlite``): MLflow
deprecates its plain-file store, and a database needs no server. MLflow is imported only here, inside the
functions (``pip install 's2sbench[mlflow]'``: mlflow-skinny, plus SQLAlchemy and Alembic, which MLflow's
database stores need).

A destination is probed before any run is written (:func:`probe`), so that one that cannot take the export is
one line at once rather than a traceback after minutes of MLflow's retries: a database URI needs its driver
importable (``psycopg2`` for ``postgresql://``, ...) and its server answering; a SQLite file must be absent,
empty or a database MLflow made, in a folder that can be written with space left; an ``http(s)://`` server
must answer within ``PROBE_S`` seconds (any HTTP answer will do). While the export runs, MLflow's own HTTP
retries are held to ``HTTP_RETRIES`` (unless the environment sets them), so that a server that dies midway
is not waited on for minutes. A SQLite file this export created is removed again if the export fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from bench.errors import UserError
from bench.results.export import ExportRun
from bench.results.store import MIN_FREE, connect_read_only

INSTALL = "pip install 's2sbench[mlflow]'"
DEFAULT_EXPERIMENT = "s2sbench"
TAG = "s2sbench."  # prefix of the tags this exporter writes
DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
# MLflow's log_batch limits (per request): 1000 metrics, 100 params, 100 tags.
MAX_METRICS, MAX_PARAMS = 1000, 100
MAX_PARAM_VALUE = 6000
PROBE_S = 5.0  # seconds a tracking server (or database server) has to answer the probe before the export starts
HTTP_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}  # MLflow's defaults: 7 retries, 120 s
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
PIP_NAMES = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient"}  # a driver module -> what installs it


@dataclass(frozen=True)
class Outcome:
    uri: str
    experiment: str
    experiment_id: str
    written: int  # new MLflow runs
    skipped: int  # already exported, left as they were
    rewritten: int  # unfinished leftovers of an interrupted export, deleted and written again


def default_uri(store_path: str) -> str:
    return "sqlite:///" + os.path.join(os.path.dirname(os.path.abspath(store_path)), "mlflow.sqlite")


def tracking_uri(dest: str | None, store_path: str) -> str:
    """DEST, else ``$MLFLOW_TRACKING_URI``, else a SQLite database beside the store.

    A plain path ending in ``.db``/``.sqlite`` means a SQLite database there; any other text is handed to
    MLflow as it is (``http://host:5000``, ``databricks``, ``file:...``).
    """
    uri = dest or os.environ.get("MLFLOW_TRACKING_URI") or default_uri(store_path)
    if "://" not in uri and re.search(r"\.(db|sqlite3?)$", uri):
        return "sqlite:///" + os.path.abspath(uri)
    return uri


def _mlflow(uri: str) -> Any:
    """The MLflow client class, or one line saying how to install what is missing."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UserError(f"export --to mlflow needs MLflow, which is not installed: {INSTALL}") from None
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme in DB_SCHEMES:
        try:
            import alembic  # noqa: F401
            import sqlalchemy  # noqa: F401
        except ImportError:
            raise UserError(f"a {scheme} tracking URI needs SQLAlchemy and Alembic, which are not installed: {INSTALL}") from None
    # MLflow's database stores log every schema migration at INFO on first use; the export says what it did itself.
    for name in ("alembic", "mlflow.store.db.utils", "mlflow.store.tracking.sqlalchemy_store"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return MlflowClient


def probe(uri: str, timeout: float = PROBE_S) -> str | None:
    """Can ``uri`` take an export? One line (UserError) saying why not, before any work. -> the SQLite file the export
    will create, if it does not exist yet (removed again should the export fail), else None."""
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme in DB_SCHEMES:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            url = make_url(uri)
            dialect = url.get_dialect()
            (getattr(dialect, "import_dbapi", None) or dialect.dbapi)()  # the driver (psycopg2, pymysql, ...): here, not minutes in
        except (ArgumentError, NoSuchModuleError, ValueError) as e:
            raise UserError(f"{uri}: not a database URI SQLAlchemy knows ({_first_line(e)})") from None
        except ImportError as e:
            name = getattr(e, "name", None) or _first_line(e)
            raise UserError(f"{uri}: a {scheme} tracking URI needs its database driver ({name}), which is not installed; "
                            f"install it (pip install {PIP_NAMES.get(name, name)}) or use a sqlite:/// or http:// URI") from None
        if scheme == "sqlite":
            return _probe_sqlite(uri, url.database)
        _probe_socket(uri, url.host or "localhost", url.port or DEFAULT_PORTS.get(scheme, 0), timeout)
    elif scheme in ("http", "https"):
        _probe_http(uri, timeout)
    elif scheme in ("", "file"):
        _probe_folder(uri, uri[len("file://"):] if uri.startswith("file://") else uri[len("file:"):] if scheme else uri)
    return None  # databricks, ...: MLflow's own


def _free(folder: str) -> int | None:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def _writable_folder(uri: str, folder: str) -> None:
    """The nearest existing folder of ``folder`` is a folder this process can write, with space left."""
    head = os.path.abspath(folder or ".")
    while not os.path.exists(head):
        head = os.path.dirname(head)
    if not os.path.isdir(head):
        raise UserError(f"{uri}: {head} is a file, not a folder")
    if not os.access(head, os.W_OK | os.X_OK):
        raise UserError(f"{uri}: cannot write in {head} (no permission); give a folder you can write")
    free = _free(head)
    if free is not None and free < MIN_FREE:
        raise UserError(f"{uri}: no space left in {head} ({free // 1024} KiB free)")


def _probe_sqlite(uri: str, path: str | None) -> str | None:
    if not path or path == ":memory:":
        return None
    _writable_folder(uri, os.path.dirname(os.path.abspath(path)))
    if not os.path.lexists(path):
        return path
    if not os.path.isfile(path):  # a folder, a FIFO (which would block the first read), a device
        raise UserError(f"{uri}: {path} is not a regular file; give a new file or MLflow's own database")
    if os.path.getsize(path) == 0:
        return None
    with open(path, "rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            raise UserError(f"{uri}: {path} is not an SQLite database; give a new file or MLflow's own database")
    db = connect_read_only(path)  # reads it as it is, leaving nothing beside it
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as e:
        raise UserError(f"{uri}: {path} cannot be read as a database ({_first_line(e)})") from None
    finally:
        db.close()
    if tables and not {"experiments", "runs", "alembic_version"} <= tables:  # another program's: MLflow would add its tables to it
        raise UserError(f"{uri}: {path} is an SQLite database of another program (not MLflow's); give a new file")
    return None


def _probe_socket(uri: str, host: str, port: int, timeout: float) -> None:
    if not port:
        return
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        why = "no answer" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise UserError(f"{uri}: no database server answers at {host}:{port} within {timeout:g} s ({why})") from None


def _probe_http(uri: str, timeout: float) -> None:
    """Any HTTP answer (MLflow's ``/health`` says OK; a 404 still says a server is there) within ``timeout`` seconds."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):  # noqa: S310 -- the user's own tracking URI
            pass
    except urllib.error.HTTPError:
        return  # it answered
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        why = ("no answer" if isinstance(reason, TimeoutError) or isinstance(e, TimeoutError)
               else _first_line(reason if isinstance(reason, BaseException) else e))
        raise UserError(f"{uri}: no MLflow tracking server answers within {timeout:g} s ({why})") from None


def _probe_folder(uri: str, path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{uri}: {path} is a file, not a folder for MLflow's file store")
    _writable_folder(uri, path)


@contextlib.contextmanager
def _http_retries() -> Iterator[None]:
    """MLflow's HTTP retries held to ``HTTP_RETRIES`` while the export runs (what the environment sets wins)."""
    old = {k: os.environ.get(k) for k in HTTP_RETRIES}
    for k, v in HTTP_RETRIES.items():
        os.environ.setdefault(k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)


def _first_line(e: BaseException) -> str:
    text = str(getattr(e, "message", None) or e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _ms(t: float | None) -> int | None:
    return None if t is None else int(round(t * 1000))


def _chunks(xs: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(xs), n):
        yield xs[i:i + n]


def tags_of(r: ExportRun) -> dict[str, str]:
    tags = {TAG + k: v for k, v in r.tags.items()}
    tags[TAG + "uid"] = r.uid
    if r.tags.get("commit"):
        tags["mlflow.source.git.commit"] = r.tags["commit"]
    if r.error:
        tags["mlflow.note.content"] = f"failed: {r.error}"
    return {k: v[:MAX_PARAM_VALUE] for k, v in tags.items()}


def params_of(r: ExportRun) -> dict[str, str]:
    return {k: (v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else repr(v))[:MAX_PARAM_VALUE]
            for k, v in r.config.items()}


def _existing(client: Any, experiment_id: str, sessions: Iterable[str]) -> dict[str, Any]:
    """uid -> the MLflow run an earlier export wrote for it (a finished one first)."""
    found: dict[str, Any] = {}
    for sid in sorted(set(sessions)):
        token = None
        while True:
            page = client.search_runs([experiment_id], filter_string=f"tags.`{TAG}session` = '{sid}'", max_results=1000, page_token=token)
            for run in page:
                uid = run.data.tags.get(TAG + "uid")
                if uid and (uid not in found or run.info.status in ("FINISHED", "FAILED")):
                    found[uid] = run
            token = getattr(page, "token", None)
            if not token:
                break
    return found


@dataclass(frozen=True)
class Destination:
    """A tracking URI that passed the probe (:func:`destination`)."""

    uri: str
    made: str | None  # the SQLite file the export will create, removed again should it fail


def destination(uri: str) -> Destination:
    """MLflow importable and ``uri`` able to take an export (:func:`probe`), or one line saying why not."""
    _mlflow(uri)
    return Destination(uri, probe(uri))


def export(runs: list[ExportRun], dest: Destination | str, experiment: str = DEFAULT_EXPERIMENT) -> Outcome:
    """Write ``runs`` to the MLflow tracking server or database ``dest``; skip those written before. A URI is probed
    first (:func:`destination`); a SQLite file this call created is removed if it fails."""
    if isinstance(dest, str):
        dest = destination(dest)
    uri, made = dest.uri, dest.made
    client_cls = _mlflow(uri)
    try:
        with _http_retries():
            return _export(client_cls, runs, uri, experiment)
    except BaseException:
        if made is not None:
            for suffix in ("", "-journal", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.remove(made + suffix)
        raise


def _export(client_cls: Any, runs: list[ExportRun], uri: str, experiment: str) -> Outcome:
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    try:
        client = client_cls(tracking_uri=uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is not None and exp.lifecycle_stage != "active":
            raise UserError(f"{uri}: experiment {experiment!r} is deleted; restore it in MLflow or give another --experiment")
        exp_id = exp.experiment_id if exp is not None else client.create_experiment(experiment)
        before = _existing(client, exp_id, (r.session for r in runs))
        written = skipped = rewritten = 0
        for r in runs:
            old = before.get(r.uid)
            if old is not None and old.info.status in ("FINISHED", "FAILED"):
                skipped += 1
                continue
            if old is not None:  # an export interrupted while writing this run
                client.delete_run(old.info.run_id)
                rewritten += 1
            else:
                written += 1
            run = client.create_run(exp_id, start_time=_ms(r.started), tags=tags_of(r), run_name=r.name)
            rid = run.info.run_id
            for chunk in _chunks([Param(k, v) for k, v in params_of(r).items()], MAX_PARAMS):
                client.log_batch(rid, params=chunk)
            end = _ms(r.finished) or _ms(r.started) or 0
            metrics = [Metric(k, v, end, 0) for k, v in sorted(r.metrics.items())]
            for name, points in sorted(r.series.items()):
                metrics += [Metric(name, v, _ms(t) or end, step) for step, v, t in points]
            for chunk in _chunks(metrics, MAX_METRICS):
                client.log_batch(rid, metrics=chunk)
            client.set_terminated(rid, status="FINISHED" if r.status == "ok" else "FAILED", end_time=_ms(r.finished))
    except MlflowException as e:
        raise UserError(f"{uri}: MLflow refused the export ({_first_line(e)})") from None
    except OSError as e:
        raise UserError(f"{uri}: cannot reach the MLflow tracking store ({_first_line(e)})") from None
    except Exception as e:  # a database store's own errors (SQLAlchemy's: a full disk, a lost connection) are not MLflow's
        if not type(e).__module__.startswith("sqlalchemy"):
            raise
        raise UserError(f"{uri}: the tracking database refused the export ({_first_line(e)})") from None
    return Outcome(uri, experiment, str(exp_id), written, skipped, rewritten)
