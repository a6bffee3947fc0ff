"""``--deterministic`` gives the same run twice: the check's rows on CPU, its refusal when CUDA started too early,
and -- on a GPU -- the real comparison, in a fresh process so cuBLAS's workspace is set before CUDA starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from bench.errors import UserError
from bench.runner import determinism
from bench.runner.determinism import determinism_check
from bench.runner.execute import execute
from bench.train.seeding import set_deterministic
from tests.conftest import REPO


@pytest.fixture
def restore_determinism(monkeypatch):
    """The check switches deterministic algorithms on for the process, and may set the cuBLAS variable: undo both."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    yield
    set_deterministic(False)


def test_the_check_compares_every_epochs_loss_bit_for_bit(restore_determinism) -> None:
    (row,) = determinism_check("cpu", ["attention"], 2, train=300)
    assert row["model"] == "attention" and row["device"] == "cpu" and row["epochs"] == 2
    assert row["identical"] and row["loss_a"] == row["loss_b"] and row["max_loss_diff"] == 0.0
    assert len(row["loss_a"]) == 2 and row["loss_a"][1] < row["loss_a"][0]  # two real epochs of training
    assert torch.are_deterministic_algorithms_enabled()


def test_a_difference_in_one_epochs_loss_shows(restore_determinism) -> None:
    calls: list[int] = []

    def drifting(spec, prep, device, sc, progress=None):
        m, h, s = execute(spec, prep, device, sc, progress)
        calls.append(1)
        if len(calls) % 2 == 0:  # the second run of each model: its last epoch's loss off by the smallest step
            h[-1]["loss"] = float(torch.nextafter(torch.tensor(h[-1]["loss"], dtype=torch.float64),
                                                  torch.tensor(float("inf"), dtype=torch.float64)))
        return m, h, s

    (row,) = determinism_check("cpu", ["attention"], 2, train=300, run=drifting)
    assert not row["identical"] and 0 < row["max_loss_diff"] < 1e-12
    assert row["loss_a"][0] == row["loss_b"][0] and row["loss_a"][1] != row["loss_b"][1]


def test_cuda_started_before_cublas_was_configured_is_refused(restore_determinism, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with pytest.raises(UserError, match="CUBLAS_WORKSPACE_CONFIG"):
        determinism.prepare(torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    determinism.prepare(torch.device("cuda"))  # not started yet: set now, as PyTorch documents
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    determinism.prepare(torch.device("cuda"))  # set before CUDA started, by whoever launched the process: fine
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_deterministic_runs_on_cuda_are_identical() -> None:
    """Date task, attention and Transformer, 2 epochs each, twice; in a fresh process that sets the cuBLAS workspace
    before CUDA initialises (this test process may have started CUDA already)."""
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"} | {"PYTHONPATH": REPO}
    p = subprocess.run([sys.executable, "-m", "bench.checks.determinism", "--device", "cuda", "--models", "attention,transformer",
                        "--epochs", "2", "--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode in (0, 1), p.stderr
    rows = json.loads(p.stdout)
    assert [r["model"] for r in rows] == ["attention", "transformer"]
    for r in rows:
        assert r["epochs"] == 2 and len(r["loss_b"]) == 2
        assert r["loss_a"] == r["loss_b"], r  # bit for bit
        assert r["valid_exact_a"] == r["valid_exact_b"] and r["test_exact_a"] == r["test_exact_b"], r
    assert p.returncode == 0
