"""--resume runs what did not finish -- failed runs included -- and nothing else: every finished run is in the
store once, and resuming a finished session writes nothing."""

from __future__ import annotations

from bench.results.store import Store
from bench.runner.executor import LocalExecutor
from bench.runner.session import run_session
from bench.spec.run import SessionConfig
from tests.conftest import snapshot

CPU = SessionConfig(device="cpu", threads=1)


class Uncalibrated(LocalExecutor):
    """Runs here, skipping the session's calibration (seconds of timing that nothing here reads)."""

    def calibrate(self, device, sc):
        return {}


def test_resume_reruns_only_failed_runs_and_writes_each_finished_run_once(tmp_path, make_spec):
    calls: list[int] = []
    failing = {1}

    def fake(spec, prep, device, sc, progress=None):
        calls.append(spec.seed)
        if spec.seed in failing:
            raise RuntimeError("boom")
        return {"test_exact_match": 0.5, "params": 1}, [{"epoch": 1, "loss": 1.0}], []

    specs = [make_spec(seed=s) for s in range(3)]
    path = str(tmp_path / "s.sqlite")
    store = Store(path)
    sid = run_session(specs, store, CPU, "mini", "test", executor=Uncalibrated(run=fake))
    assert calls == [0, 1, 2]

    failing.clear()
    calls.clear()
    assert run_session(specs, store, CPU, "mini", "test", resume=sid, executor=Uncalibrated(run=fake)) == sid
    assert calls == [1]  # the failed run again; the finished ones not
    runs = store.runs(sid)
    assert sorted((r.seed, r.status) for r in runs) == [(0, "ok"), (1, "failed"), (1, "ok"), (2, "ok")]  # the failure stays, as history
    ok = [r.key for r in runs if r.status == "ok"]
    assert sorted(ok) == sorted(s.key() for s in specs)  # each finished run once

    before = snapshot(path)["runs"]
    calls.clear()
    run_session(specs, store, CPU, "mini", "test", resume=sid, executor=Uncalibrated(run=fake))
    assert calls == [] and snapshot(path)["runs"] == before  # all done: nothing runs, nothing is written
    store.close()
