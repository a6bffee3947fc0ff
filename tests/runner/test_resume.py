"""--resume runs what did not finish -- failed runs included -- and nothing else: every finished run is in the
store once, and a finished session is never resumed (refused, nothing written)."""

from __future__ import annotations

import pytest

from bench.errors import UserError
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
    stop = {3}

    def fake(spec, prep, device, sc, progress=None):
        calls.append(spec.seed)
        if spec.seed in stop:
            raise KeyboardInterrupt  # stopped during its last run: the session is interrupted
        if spec.seed in failing:
            raise RuntimeError("boom")
        return {"test_exact_match": 0.5, "params": 1}, [{"epoch": 1, "loss": 1.0}], []

    specs = [make_spec(seed=s) for s in range(4)]
    path = str(tmp_path / "s.sqlite")
    store = Store(path)
    with pytest.raises(KeyboardInterrupt):
        run_session(specs, store, CPU, "mini", "test", session_id="s", executor=Uncalibrated(run=fake))
    sid = "s"
    assert calls == [0, 1, 2, 3]

    failing.clear()
    stop.clear()
    calls.clear()
    assert run_session(specs, store, CPU, "mini", "test", resume=sid, executor=Uncalibrated(run=fake)) == sid
    assert calls == [1, 3]  # the failed run again, and the one never stored; the finished ones not
    runs = store.runs(sid)
    assert sorted((r.seed, r.status) for r in runs) == [(0, "ok"), (1, "failed"), (1, "ok"), (2, "ok"), (3, "ok")]  # the failure stays
    ok = [r.key for r in runs if r.status == "ok"]
    assert sorted(ok) == sorted(s.key() for s in specs)  # each finished run once
    assert store.sessions()[0]["status"] == "finished"

    before = snapshot(path)
    calls.clear()
    with pytest.raises(UserError, match="finished"):  # a finished session is never resumed: nothing runs, nothing is written
        run_session(specs, store, CPU, "mini", "test", resume=sid, executor=Uncalibrated(run=fake))
    assert calls == [] and snapshot(path) == before
    store.close()


def test_resume_runs_part_of_the_plan_and_the_session_finishes_only_with_all_of_it(tmp_path, make_spec):
    def fake(spec, prep, device, sc, progress=None):
        if spec.seed == 1:
            raise KeyboardInterrupt
        return {"test_exact_match": 0.5, "params": 1}, [], []

    specs = [make_spec(seed=s) for s in range(3)]
    store = Store(str(tmp_path / "s.sqlite"))
    with pytest.raises(KeyboardInterrupt):
        run_session(specs, store, CPU, "mini", "test", session_id="s", executor=Uncalibrated(run=fake))
    assert store.planned("s") == {s.key() for s in specs}
    ok = Uncalibrated(run=lambda spec, prep, device, sc, progress=None: ({"test_exact_match": 0.5, "params": 1}, [], []))
    run_session(specs[1:2], store, CPU, "mini", "test", resume="s", executor=ok)  # one seed of the plan
    assert store.sessions()[0]["status"] == "interrupted"  # seed 2 is planned and not stored: not finished
    with pytest.raises(UserError, match="did not plan"):  # a run the session never planned
        run_session([make_spec(seed=7)], store, CPU, "mini", "test", resume="s", executor=ok)
    run_session(specs, store, CPU, "mini", "test", resume="s", executor=ok)
    assert store.sessions()[0]["status"] == "finished"
    store.close()
