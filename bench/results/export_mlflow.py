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
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from bench.errors import UserError
from bench.results.export import ExportRun

INSTALL = "pip install 's2sbench[mlflow]'"
DEFAULT_EXPERIMENT = "s2sbench"
TAG = "s2sbench."  # prefix of the tags this exporter writes
DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
# MLflow's log_batch limits (per request): 1000 metrics, 100 params, 100 tags.
MAX_METRICS, MAX_PARAMS = 1000, 100
MAX_PARAM_VALUE = 6000


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


def export(runs: list[ExportRun], uri: str, experiment: str = DEFAULT_EXPERIMENT) -> Outcome:
    """Write ``runs`` to the MLflow tracking server or database at ``uri``; skip those written before."""
    client_cls = _mlflow(uri)
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
    return Outcome(uri, experiment, str(exp_id), written, skipped, rewritten)
