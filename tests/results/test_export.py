"""``export --to mlflow | tensorboard``: the real writers write, and what they wrote is read back.

The store here is made by hand (two sessions; an ok run with a three-epoch history, a failed run), so every
value the trackers must show is known. MLflow and TensorBoard tests skip, with the reason, where the
packages are not installed (the ``test`` extra installs them).
"""

from __future__ import annotations

import glob
import json
import os
import statistics
import sys

import pytest

from bench.results.export import export_runs, run_uid
from bench.results.store import Store
from bench.spec.run import DataSpec, RunSpec, TrainConfig
from tests.conftest import run_cli
from tests.factories import run_record

EPOCHS = [  # epoch, train_s, loss, valid exact match
    (1, 0.90, 2.5, 0.10),
    (2, 0.50, 1.5, 0.40),
    (3, 0.70, 0.9, 0.80),
]
ERROR = "diverged: loss is nan in epoch 2"


def _spec(model: str, seed: int = 0) -> RunSpec:
    return RunSpec(model=model, size="tiny", seed=seed, data=DataSpec(task="date", train=320, valid=20, test=20),
                   train=TrainConfig(epochs=3, batch_size=32, lr=0.003, target=None),
                   model_options=(("score", "general"),) if model == "attention" else ())


STARTED = "2026-01-02T03:04:05+00:00"
# What an ok run and a failed run stored, beside what their spec says.
OK = {"finished": "2026-01-02T03:05:05+00:00",
      "history": [{"epoch": e, "train_s": t, "eval_s": 0.05, "loss": loss, "tokens": 3520, "examples": 320, "valid_exact_match": v,
                   "valid_token_accuracy": v, "train_cum_s": 0.0, "wall_cum_s": 1.0 * e} for e, t, loss, v in EPOCHS],
      "metrics": {"mode": "quality", "params": 50_000, "epochs": 3, "epoch_seconds": [e[1] for e in EPOCHS], "test_exact_match": 0.75,
                  "test_token_accuracy": 0.9, "train_tokens_per_s": 5000.0, "decode_latency_b1_s": 0.004, "peak_memory_bytes": 2**27,
                  "final_loss": 0.9, "alignment": None, "stopped": "epochs", "test_by_length": {"10": [3, 4], "12": [1, 4]},
                  "model_meta": {"order": 2}}}
FAILED = {"finished": "2026-01-02T03:05:05+00:00", "status": "failed", "error": ERROR}


@pytest.fixture
def store(tmp_path) -> str:
    path = str(tmp_path / "bench.sqlite")
    s = Store(path)
    env = {"commit": "c0ffee1234", "dirty": False, "device_name": "Test CPU", "device_type": "cpu", "host": "h", "torch": "2.x"}
    s.add_session("s1", "2026-01-02T03:00:00+00:00", "quick", "s2sbench run", env)
    s.add_run(run_record(_spec("attention"), session="s1", started=STARTED, **OK))
    s.add_run(run_record(_spec("seq2seq"), session="s1", started=STARTED, **FAILED))
    s.finish_session("s1", "2026-01-02T03:10:00+00:00", "finished")
    s.add_session("s2", "2026-01-03T03:00:00+00:00", "quick", "s2sbench run", {**env, "commit": "beef"})
    s.add_run(run_record(_spec("attention", seed=1), session="s2", started="2026-01-03T03:04:05+00:00", **OK))
    s.finish_session("s2", "2026-01-03T03:10:00+00:00", "finished")
    s.close()
    return path


def _runs(path: str, sessions: list[str]):
    s = Store.open_existing(path)
    try:
        return export_runs(s, sessions)
    finally:
        s.close()


# --- the shape both exporters share ------------------------------------------------------------------------
def test_a_stored_run_becomes_params_final_metrics_series_and_tags(store) -> None:
    ok, failed = _runs(store, ["s1"])
    assert ok.name == "date/attention(score=general)/tiny/seed0" and ok.status == "ok"
    assert ok.config["train.lr"] == 0.003 and ok.config["train.batch_size"] == 32 and ok.config["model_options.score"] == "general"
    assert ok.config["train.target"] == "none" and ok.config["task"] == "date" and ok.config["mode"] == "quality"
    assert ok.metrics["test_exact_match"] == 0.75 and ok.metrics["params"] == 50_000
    assert ok.metrics["s_per_epoch"] == statistics.median([0.50, 0.70])  # the catalogue's steady-state figure, first epoch out
    assert "alignment" not in ok.metrics and "stopped" not in ok.metrics  # only finite numbers
    assert [(s, v) for s, v, _ in ok.series["epoch/loss"]] == [(e, loss) for e, _, loss, _ in EPOCHS]
    assert [(s, v) for s, v, _ in ok.series["epoch/train_s"]] == [(e, t) for e, t, _, _ in EPOCHS]
    assert [(s, v) for s, v, _ in ok.series["by_length/test_exact_match"]] == [(10, 0.75), (12, 0.25)]
    assert (ok.tags["session"] == "s1" and ok.tags["commit"] == "c0ffee1234" and ok.tags["device"] == "Test CPU"
            and ok.tags["status"] == "ok")
    assert failed.status == "failed" and failed.error == ERROR and failed.tags["error"] == ERROR and failed.metrics == {}


def test_a_retried_run_keeps_its_own_identity(store) -> None:
    a = run_record(_spec("seq2seq"), session="s1", started=STARTED, **FAILED)
    b = run_record(_spec("seq2seq"), session="s1", started="2026-01-02T04:00:00+00:00", **OK)
    assert a.key == b.key and run_uid(a) != run_uid(b)
    assert run_uid(a) == run_uid(run_record(_spec("seq2seq"), session="s1", started=STARTED, **FAILED))


# --- MLflow -----------------------------------------------------------------------------------------------
def _mlflow_client(uri: str):
    pytest.importorskip("mlflow", reason="MLflow is not installed (pip install 's2sbench[mlflow]')")
    pytest.importorskip("sqlalchemy", reason="MLflow's SQLite store needs SQLAlchemy (pip install 's2sbench[mlflow]')")
    pytest.importorskip("alembic", reason="MLflow's SQLite store needs Alembic (pip install 's2sbench[mlflow]')")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _mlflow_runs(client, experiment: str = "s2sbench") -> list:
    exp = client.get_experiment_by_name(experiment)
    return list(client.search_runs([exp.experiment_id], max_results=1000)) if exp else []


def test_mlflow_sees_each_run_with_params_metrics_history_and_tags_once(store, tmp_path) -> None:
    uri = "sqlite:///" + str(tmp_path / "ml.sqlite")
    client = _mlflow_client(uri)
    rc, out, err = run_cli(["export", "--store", store, "--session", "s1", "--to", "mlflow", uri])
    assert rc == 0, err
    assert "2 runs written, 0 already there" in out
    runs = {r.info.run_name: r for r in _mlflow_runs(client)}
    assert set(runs) == {"date/attention(score=general)/tiny/seed0", "date/seq2seq/tiny/seed0"}
    ok, failed = runs["date/attention(score=general)/tiny/seed0"], runs["date/seq2seq/tiny/seed0"]
    assert ok.info.status == "FINISHED" and failed.info.status == "FAILED"
    assert (ok.data.params["train.lr"] == "0.003" and ok.data.params["model"] == "attention"
            and ok.data.params["model_options.score"] == "general")
    assert ok.data.metrics["test_exact_match"] == 0.75 and ok.data.metrics["s_per_epoch"] == pytest.approx(0.6)
    tags = ok.data.tags
    assert (tags["s2sbench.session"], tags["s2sbench.commit"], tags["s2sbench.device"],
            tags["s2sbench.status"]) == ("s1", "c0ffee1234", "Test CPU", "ok")
    assert tags["mlflow.source.git.commit"] == "c0ffee1234"
    assert failed.data.tags["s2sbench.status"] == "failed" and ERROR in failed.data.tags["s2sbench.error"]
    hist = sorted((m.step, m.value) for m in client.get_metric_history(ok.info.run_id, "epoch/loss"))
    assert hist == [(e, loss) for e, _, loss, _ in EPOCHS]
    em = sorted((m.step, m.value) for m in client.get_metric_history(ok.info.run_id, "epoch/valid_exact_match"))
    assert em == [(e, v) for e, _, _, v in EPOCHS]
    assert ok.info.start_time == 1767323045000  # the run's own start, 2026-01-02T03:04:05Z

    rc, out, err = run_cli(["export", "--store", store, "--session", "s1", "--to", "mlflow", uri])  # again: nothing new
    assert rc == 0, err
    assert "0 runs written, 2 already there" in out
    assert len(_mlflow_runs(client)) == 2
    rc, out, err = run_cli(["export", "--store", store, "--session", "all", "--to", "mlflow", uri])
    assert rc == 0 and "1 runs written, 2 already there" in out, (out, err)
    assert len(_mlflow_runs(client)) == 3


def test_mlflow_rewrites_a_run_an_interrupted_export_left_unfinished(store, tmp_path) -> None:
    from bench.results import export_mlflow

    uri = "sqlite:///" + str(tmp_path / "ml.sqlite")
    client = _mlflow_client(uri)
    runs = _runs(store, ["s1"])
    exp_id = client.create_experiment("s2sbench")
    half = client.create_run(exp_id, tags=export_mlflow.tags_of(runs[0]), run_name=runs[0].name)  # left RUNNING, no params
    out = export_mlflow.export(runs, uri)
    assert (out.written, out.skipped, out.rewritten) == (1, 0, 1)
    live = _mlflow_runs(client)
    assert len(live) == 2 and half.info.run_id not in {r.info.run_id for r in live}
    assert all(r.info.status in ("FINISHED", "FAILED") for r in live)


def test_mlflow_absent_is_one_line_saying_how_to_install(store, monkeypatch) -> None:
    for m in ("mlflow", "mlflow.tracking"):
        monkeypatch.setitem(sys.modules, m, None)
    rc, out, err = run_cli(["export", "--store", store, "--to", "mlflow"])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "pip install 's2sbench[mlflow]'" in err


def test_mlflow_default_uri_is_a_sqlite_database_beside_the_store(monkeypatch) -> None:
    from bench.results.export_mlflow import tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(None, os.path.join("some", "bench.sqlite")) == "sqlite:///" + os.path.abspath(os.path.join("some", "mlflow.sqlite"))
    assert tracking_uri("runs.db", "x") == "sqlite:///" + os.path.abspath("runs.db")
    assert tracking_uri("http://host:5000", "x") == "http://host:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://team:5000")
    assert tracking_uri(None, "x") == "http://team:5000"


# --- TensorBoard -------------------------------------------------------------------------------------------
def _accumulator(d: str):
    pytest.importorskip("tensorboard", reason="TensorBoard is not installed (pip install 's2sbench[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(d, size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    return ea


def _hparams(ea) -> tuple[dict, int | None]:
    from tensorboard.plugins.hparams import metadata

    content = ea.PluginTagToContent("hparams")
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    hp = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    assert metadata.EXPERIMENT_TAG in content
    return hp, end.status


def test_tensorboard_event_files_hold_the_curves_final_metrics_and_hparams(store, tmp_path) -> None:
    pytest.importorskip("tensorboard", reason="TensorBoard is not installed (pip install 's2sbench[tensorboard]')")
    from tensorboard.plugins.hparams import api_pb2

    logdir = str(tmp_path / "tb")
    rc, out, err = run_cli(["export", "--store", store, "--session", "s1", "--to", "tensorboard", logdir])
    assert rc == 0, err
    assert "2 runs written, 0 already there" in out
    runs = _runs(store, ["s1"])
    ok_dir = os.path.join(logdir, "s1", *runs[0].key.split("/"))
    failed_dir = os.path.join(logdir, "s1", *runs[1].key.split("/"))
    ea = _accumulator(ok_dir)
    scal = lambda tag: [(e.step, pytest.approx(e.value)) for e in ea.Scalars(tag)]  # noqa: E731
    assert scal("epoch/loss") == [(e, loss) for e, _, loss, _ in EPOCHS]
    assert scal("epoch/valid_exact_match") == [(e, v) for e, _, _, v in EPOCHS]
    assert scal("epoch/train_s") == [(e, t) for e, t, _, _ in EPOCHS]
    assert scal("final/test_exact_match") == [(3, 0.75)]
    hp, status = _hparams(ea)
    assert hp["model"] == "attention" and hp["train.lr"] == pytest.approx(0.003) and hp["model_options.score"] == "general"
    assert hp["status"] == "ok" and status == api_pb2.STATUS_SUCCESS
    hp, status = _hparams(_accumulator(failed_dir))
    assert hp["model"] == "seq2seq" and hp["status"] == "failed" and status == api_pb2.STATUS_FAILURE

    files = sorted(glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True))
    assert len(files) == 2
    rc, out, err = run_cli(["export", "--store", store, "--session", "s1", "--to", "tensorboard", logdir])  # again: nothing new
    assert rc == 0 and "0 runs written, 2 already there" in out, (out, err)
    assert sorted(glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True)) == files
    with open(os.path.join(ok_dir, "s2sbench-run.json"), encoding="utf-8") as f:
        assert json.load(f)["uid"] == runs[0].uid


def test_tensorboard_absent_is_one_line_saying_how_to_install(store, monkeypatch, tmp_path) -> None:
    for m in ("tensorboard", "tensorboard.compat.proto", "tensorboard.plugins.hparams", "tensorboard.summary.writer.event_file_writer"):
        monkeypatch.setitem(sys.modules, m, None)
    rc, out, err = run_cli(["export", "--store", store, "--to", "tensorboard", str(tmp_path / "tb")])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "pip install 's2sbench[tensorboard]'" in err
    assert not os.path.exists(tmp_path / "tb")


@pytest.mark.parametrize("argv, words", [
    (["--to", "tensorboard"], ["DIR"]),
    (["--to", "mlflow", "--format", "csv"], ["--format"]),
    (["somewhere"], ["--to"]),
    (["--experiment", "x"], ["--experiment"]),
])
def test_export_bad_combinations_are_one_line_and_exit_2(store, argv, words) -> None:
    rc, out, err = run_cli(["export", "--store", store, *argv])
    assert rc == 2 and len(err.strip().splitlines()) == 1, (rc, err)
    assert all(w in err for w in words), err


def test_a_tensorboard_export_needs_no_torch(store, tmp_path) -> None:
    """Like a report, an export reads only the store: it works where torch is not installed."""
    pytest.importorskip("tensorboard", reason="TensorBoard is not installed (pip install 's2sbench[tensorboard]')")
    from tests.test_layout import _without_torch

    code = ("from bench.cli import main\n"
            f"assert main(['export', '--store', {store!r}, '--session', 's1', '--to', 'tensorboard', 'tb']) == 0\n"
            "print('torch loaded:', 'torch' in sys.modules)")
    p = _without_torch(code, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "torch loaded: False" in p.stdout
    assert len(glob.glob(str(tmp_path / "tb" / "**" / "events.out.tfevents.*"), recursive=True)) == 2


# --- destinations that go nowhere: probed first, nothing half-written (docs/store.md) -----------------------------
def test_tensorboard_a_write_that_fails_leaves_whole_runs_and_nothing_of_the_rest(store, tmp_path, monkeypatch) -> None:
    pytest.importorskip("tensorboard", reason="TensorBoard is not installed (pip install 's2sbench[tensorboard]')")
    import errno

    logdir = str(tmp_path / "tb")
    real, writes = os.write, []

    def write(fd: int, data) -> int:  # the disk fills up after the first run's two files
        if fd > 2:
            writes.append(fd)
            if len(writes) > 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)
    rc, out, err = run_cli(["export", "--store", store, "--session", "s1", "--to", "tensorboard", logdir])
    monkeypatch.undo()
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "nothing written" in err, err
    first, second = (os.path.join(logdir, "s1", *r.key.split("/")) for r in _runs(store, ["s1"]))
    assert sorted(f.split(".")[0] for f in os.listdir(first)) == ["events", "s2sbench-run"]  # whole: the event file and its marker
    assert not os.path.exists(second) and not os.path.exists(os.path.join(logdir, "s1", "date", "seq2seq"))  # nothing of it
    assert not [p for p in glob.glob(os.path.join(logdir, "**", "*"), recursive=True) if p.endswith(".tmp")]
    rc, out, err = run_cli(["export", "--store", store, "--session", "s1", "--to", "tensorboard", logdir])
    assert rc == 0 and "1 runs written, 1 already there" in out, err


def test_mlflow_a_server_that_never_answers_is_refused_by_the_probe() -> None:
    """A local server that accepts the connection and says nothing: the probe gives up after its timeout, in one line."""
    import socket

    from bench.errors import UserError
    from bench.results.export_mlflow import probe

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        uri = f"http://127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(UserError, match=r"no MLflow tracking server answers within 0.5 s \(no answer\)"):
            probe(uri, timeout=0.5)


def test_mlflow_a_database_file_the_export_made_goes_again_when_it_fails(store, tmp_path, monkeypatch) -> None:
    pytest.importorskip("mlflow", reason="MLflow is not installed (pip install 's2sbench[mlflow]')")
    from bench.errors import UserError
    from bench.results import export_mlflow

    def fail(client_cls, runs, uri, experiment):
        open(uri[len("sqlite:///"):], "wb").close()  # what a full disk leaves: an empty file
        raise UserError("the disk is full")

    monkeypatch.setattr(export_mlflow, "_export", fail)
    new = tmp_path / "new.db"
    with pytest.raises(UserError, match="full"):
        export_mlflow.export(_runs(store, ["s1"]), f"sqlite:///{new}")
    assert not new.exists()
    existing = tmp_path / "existing.db"
    existing.write_bytes(b"")  # an empty file is fine to export into, and is not this export's to remove
    with pytest.raises(UserError, match="full"):
        export_mlflow.export(_runs(store, ["s1"]), f"sqlite:///{existing}")
    assert existing.exists()
