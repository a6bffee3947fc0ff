"""The Ray executor: a tiny suite on a local Ray with two worker processes stores every run once (and the
same results as a local session); a worker that dies takes only its run, recorded as failed; --resume
re-runs it; an unreachable cluster is one line and exit 2. Skipped where Ray is not installed (CI installs it:
`make test EXTRAS=test,ray`); the refusals that need no Ray are in test_ray_cli.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ray = pytest.importorskip("ray")

from bench.errors import UserError  # noqa: E402
from bench.results.store import Store  # noqa: E402
from bench.runner.ray_executor import RayExecutor, run_remote  # noqa: E402
from bench.runner.session import run_session  # noqa: E402
from bench.spec.run import SessionConfig  # noqa: E402
from tests.conftest import HANG_S, REPO, TINY_SUITE, run_cli  # noqa: E402

CPU = SessionConfig(device="cpu", threads=1)
SUITE = TINY_SUITE
QUALITY = ("final_loss", "test_exact_match", "test_token_accuracy", "params")


def crash_on_seed_1(spec, sc, device_type, cpus):
    """The worker task, except that the worker process dies (no exception, no cleanup) on seed 1."""
    if spec.seed == 1:
        os._exit(3)
    return run_remote(spec, sc, device_type, cpus)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with two worker CPUs, shared by the in-process tests of this file."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": REPO}})
    yield
    ray.shutdown()


def _quality(store: Store, sid: str) -> list[tuple]:
    return sorted((r.key, r.status, tuple(r.metrics.get(m) for m in QUALITY)) for r in store.runs(sid))


def test_a_dying_worker_fails_only_its_run_and_the_finished_session_stays_as_it_is(tmp_path, make_spec, local_ray):
    specs = [make_spec("attention", seed=s, train=120, epochs=1) for s in (0, 1, 2)]
    store = Store(str(tmp_path / "s.sqlite"))
    ex = RayExecutor(threads=1, task=crash_on_seed_1)
    assert not ex.owned  # joined the running instance
    sid = run_session(specs, store, CPU, "mini", "test", executor=ex)
    runs = {r.seed: r for r in store.runs(sid)}
    assert sorted(runs) == [0, 1, 2]  # every run stored once
    assert runs[0].status == runs[2].status == "ok"
    assert runs[1].status == "failed" and "WorkerCrashedError" in runs[1].error and runs[1].metrics == {}
    assert runs[0].metrics["worker_host"] and runs[0].metrics["test_n"] == 40
    (sess,) = store.sessions()
    assert sess["status"] == "finished" and sess["env"]["executor"] == "ray" and sess["env"]["calibration"]["threads"] == 1

    # Every planned run has its record, so the session finished: it is never added to (docs/store.md), not even to
    # retry the crash; the same command without --resume runs the runs again in a session of their own.
    with pytest.raises(UserError, match="never added to"):
        run_session(specs, store, CPU, "mini", "test", resume=sid, executor=RayExecutor(threads=1))
    assert sorted((r.seed, r.status) for r in store.runs(sid)) == [(0, "ok"), (1, "failed"), (2, "ok")]
    store.close()


def test_ray_executor_refuses_a_gpu_device_on_a_cluster_without_gpus(local_ray):
    with pytest.raises(UserError, match="no GPUs"):
        RayExecutor(threads=1).resolve_device("cuda")


def test_cli_ray_session_stores_every_run_once_with_the_results_of_a_local_session(tmp_path):
    s = tmp_path / "tiny.toml"
    s.write_text(SUITE)
    ray_store, local_store = str(tmp_path / "ray.sqlite"), str(tmp_path / "local.sqlite")
    env = dict(os.environ, PYTHONPATH=REPO)
    p = subprocess.run([sys.executable, "-m", "bench", "run", "--suite", str(s), "--executor", "ray", "--device", "cpu", "--threads", "1",
                        "--store", ray_store], cwd=REPO, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert p.returncode == 0, p.stderr
    assert "3 runs ok, 0 failed" in p.stdout
    rc, out, err = run_cli(["run", "--suite", str(s), "--device", "cpu", "--threads", "1", "--store", local_store])
    assert rc == 0, err
    a, b = Store.open_existing(ray_store), Store.open_existing(local_store)
    (sa,), (sb,) = a.sessions(), b.sessions()
    keys = [r.key for r in a.runs(sa["id"])]
    assert len(keys) == 3 and len(set(keys)) == 3
    assert _quality(a, sa["id"]) == _quality(b, sb["id"])  # the same runs, the same numbers (CPU, one thread)
    assert sa["env"]["executor"] == "ray" and sa["env"]["ray_resources"]["CPU"] >= 1


def test_unreachable_ray_address_is_one_line_and_exit_2(tmp_path):
    store = tmp_path / "s.sqlite"
    rc, out, err = run_cli(["run", "--task", "date", "--model", "attention", "--size", "tiny", "--device", "cpu", "--executor", "ray",
                            "--address", "127.0.0.1:1", "--store", str(store)])
    assert rc == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "127.0.0.1:1" in lines[0] and "Traceback" not in err
    assert not store.exists()



def test_ray_workers_load_the_plugin_a_run_carries(tmp_path):
    """A plugin's model on Ray: each worker process loads the --plugin file the run carries before it builds the model."""
    plugin = tmp_path / "toy_plugin.py"
    plugin.write_text("from tests.models.toys import plant\n\nplant('toyray')\n")
    store = str(tmp_path / "ray.sqlite")
    p = subprocess.run([sys.executable, "-m", "bench", "run", "--plugin", str(plugin), "--task", "date", "--model", "toyray",
                        "--size", "tiny", "--epochs", "1", "--train-size", "60", "--executor", "ray", "--device", "cpu", "--threads", "1",
                        "--store", store],
                       cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    (run,) = Store.open_existing(store).runs()
    assert run.status == "ok", run.error
    assert run.metrics["model_meta"]["plugin"] == str(plugin) and run.metrics["worker_host"]
