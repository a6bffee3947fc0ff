"""Sessions: suites and their errors, resume after SIGKILL, concurrent writers, FLOPs, synchronised timing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from unittest import mock

import pytest
import torch

from bench.errors import UserError
from bench.measure.flops import counter
from bench.measure.timing import Stopwatch, time_fn
from bench.spec import suite

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.conftest import TINY_SUITE  # noqa: E402


def write(tmp_path, text: str, name: str = "s.toml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def cli(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def stored_keys(path: str, session: str | None = None) -> list[str]:
    db = sqlite3.connect(path)
    q = "SELECT key FROM runs" + (" WHERE session = ?" if session else "")
    rows = [r[0] for r in db.execute(q, (session,) if session else ())]
    db.close()
    return rows


# --- suites ------------------------------------------------------------------------------------------
def test_quick_suite_expands_to_every_model_on_date_and_addition():
    name, _, specs = suite.load("quick")
    assert name == "quick"
    pairs = {(s.data.task, s.model) for s in specs}
    import models

    assert pairs == {(t, m) for t in ("date", "addition") for m in models.names()}
    assert all(s.data.reverse_source for s in specs if s.data.task == "addition")


def test_every_shipped_suite_parses():
    for n in suite.available():
        _, _, specs = suite.load(n)
        assert specs, n
        assert len({s.key() for s in specs}) == len(specs)


def test_matrix_product_and_overrides(tmp_path):
    p = write(tmp_path, TINY_SUITE)
    _, _, specs = suite.load(p)
    assert [s.seed for s in specs] == [0, 1, 2]
    _, _, specs = suite.load(p, {"seeds": [7], "epochs": 3})
    assert [(s.seed, s.train.epochs) for s in specs] == [(7, 3)]


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[runs]]\ntasks=['date']\nmodels=['attention']\nbogus=1\n", "unknown key 'bogus'"),
        ("[[runs]]\ntasks=['date']\nmodels=['attention']\nepochs='ten'\n", "key 'epochs' must be an integer"),
        ("[[runs]]\ntasks=['date']\nmodels=['attention']\ntarget=5\n", "key 'target' must be in (0, 1]"),
        ("[[runs]]\ntasks=['date']\n", "key 'models' is required"),
        ("[[runs]]\nmodels=['attention']\n", "exactly one of 'tasks' or 'task_files'"),
        ("[[runs]]\ntasks=['date']\nmodels=['attention']\ntrain_lengths=[5,2]\n", "train_lengths"),
        ("colour='red'\n[[runs]]\ntasks=['date']\nmodels=['x']\n", "unknown top-level key 'colour'"),
        ("[[runs]\n", "not valid TOML"),
        ("description='no runs'\n", "at least one [[runs]] block"),
    ],
)
def test_bad_suites_name_file_and_key(tmp_path, text, message):
    p = write(tmp_path, text)
    with pytest.raises(UserError) as e:
        suite.load(p)
    assert message in str(e.value)
    assert p in str(e.value)


def test_unknown_suite_name_lists_the_known_ones():
    with pytest.raises(UserError, match="known suites: .*quick"):
        suite.load("no-such-suite")


# --- reliability ---------------------------------------------------------------------------------------
def test_sigkill_midway_then_resume_runs_each_run_exactly_once(tmp_path):
    s = write(tmp_path, TINY_SUITE)
    store = str(tmp_path / "store.sqlite")
    p = cli("run", "--suite", s, "--store", store, "--device", "cpu")
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if os.path.exists(store) and len(stored_keys(store)) >= 1:
                break
        except sqlite3.OperationalError:  # the schema is being created
            pass
        if p.poll() is not None:
            pytest.fail(f"session ended before it could be killed: {p.stderr.read()}")
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    first = stored_keys(store)
    assert 1 <= len(first) < 3
    r = cli("run", "--suite", s, "--store", store, "--device", "cpu", "--resume")
    out, err = r.communicate(timeout=300)
    assert r.returncode == 0, err
    db = sqlite3.connect(store)
    sessions = db.execute("SELECT id, status FROM sessions").fetchall()
    db.close()
    assert len(sessions) == 1 and sessions[0][1] == "finished"
    keys = stored_keys(store, sessions[0][0])
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 3


def test_two_concurrent_writers_leave_a_valid_store_with_every_run(tmp_path):
    s = write(tmp_path, TINY_SUITE)
    store = str(tmp_path / "store.sqlite")
    procs = [cli("run", "--suite", s, "--store", store, "--device", "cpu", "--threads", "1") for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    db = sqlite3.connect(store)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    per_session = db.execute("SELECT session, COUNT(*) FROM runs WHERE status='ok' GROUP BY session").fetchall()
    db.close()
    assert len(per_session) == 2 and all(n == 3 for _, n in per_session)


# --- measurement -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True)])
def test_lstm_flops_follow_the_gate_matmul_formula(layers, bidirectional):
    B, T, D, H = 3, 5, 8, 16
    lstm = torch.nn.LSTM(D, H, num_layers=layers, bidirectional=bidirectional, batch_first=True)
    x = torch.randn(B, T, D, requires_grad=True)
    dirs = 2 if bidirectional else 1
    forward = sum(dirs * 2 * B * T * 4 * H * ((D if layer == 0 else dirs * H) + H) for layer in range(layers))
    with counter() as fc:
        out, _ = lstm(x)
    assert fc.get_total_flops() == forward
    with counter() as fc:
        out, _ = lstm(x)
        out.sum().backward()
    assert fc.get_total_flops() == 3 * forward


def test_stopwatch_synchronises_cuda_at_start_and_stop():
    with mock.patch("torch.cuda.synchronize") as sync:
        w = Stopwatch(torch.device("cuda"))
        w.start()
        assert sync.call_count == 1
        w.stop()
        assert sync.call_count == 2
    with mock.patch("torch.cuda.synchronize") as sync:
        w = Stopwatch(torch.device("cpu"))
        w.start()
        w.stop()
        sync.assert_not_called()


def test_time_fn_on_cuda_reads_cuda_events_after_synchronising_them():
    events = []

    class FakeEvent:
        def __init__(self, enable_timing: bool = False):
            assert enable_timing
            self.synced = False
            events.append(self)

        def record(self):
            pass

        def synchronize(self):
            self.synced = True

        def elapsed_time(self, end):
            assert end.synced, "read before the end event was synchronised"
            return 250.0  # ms

    calls = []
    with mock.patch("torch.cuda.Event", FakeEvent):
        out = time_fn(lambda: calls.append(1), torch.device("cuda"), repeats=3, warmup=2)
    assert out == [0.25, 0.25, 0.25]
    assert len(calls) == 5 and len(events) == 6
