"""A tuning session on Ray: its trials are ordinary runs handed to the cluster, and it stores what a local session
stores. Skipped where Ray or the tune extra is not installed (CI installs both)."""

from __future__ import annotations

import math
import socket

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("optuna")
pytest.importorskip("opda")

from bench.results.store import Store  # noqa: E402
from bench.runner import tune  # noqa: E402
from bench.runner.ray_executor import RayExecutor  # noqa: E402
from bench.spec.run import SessionConfig  # noqa: E402
from bench.spec.search import Param, TuneSettings  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.runner.test_tune import Fake  # noqa: E402

CPU = SessionConfig(device="cpu", threads=1)


def made_up(spec, sc, device_type, cpus):
    """The worker task: no training, the made-up score of tests/runner/test_tune.py's objective."""
    v = max(0.0, 1 - abs(math.log10(spec.train.lr) + 2.5) / 2 - 0.1 * (spec.train.batch_size != 32)
            - dict(spec.model_options).get("dropout", 0))
    return {"started": "t", "finished": "t", "error": None, "metrics": {"valid_exact_match": v, "test_exact_match": v - 0.01 * spec.seed,
            "worker_host": socket.gethostname()}, "history": [], "samples": []}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": REPO}})
    yield
    ray.shutdown()


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_a_tuning_session_on_ray_stores_what_a_local_one_does(tmp_path, make_spec, local_ray, sampler):
    settings = TuneSettings(trials=4, sampler=sampler, seed=1, final_seeds=1,
                            space=(Param("lr", 1e-4, 1e-2), Param("batch_size", choices=(16, 32))))
    studies, cache = tune.prepare([make_spec(model=m, train=200) for m in ("attention", "seq2seq")], settings, CPU)
    local, remote = Store(str(tmp_path / "l.sqlite")), Store(str(tmp_path / "r.sqlite"))
    a = tune.run(studies, settings, local, CPU, "t", "c", cache=cache, executor=Fake())
    b = tune.run(studies, settings, remote, CPU, "t", "c", cache=cache, executor=RayExecutor(threads=1, task=made_up))

    def stored(store, sid):
        return sorted((r.key, r.status, r.metrics["tune"]["role"], r.metrics["valid_exact_match"]) for r in store.runs(sid))

    assert stored(local, a) == stored(remote, b) and len(stored(remote, b)) == 2 * (4 + 2)
    assert remote.session(b)["status"] == "finished" and remote.session(b)["env"]["executor"] == "ray"
