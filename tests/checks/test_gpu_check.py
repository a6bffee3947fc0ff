"""The GPU self-check keeps working: its every code path runs here at toy sizes on the CPU (``--device cpu``);
on a machine without CUDA its default says so and exits 0."""

from __future__ import annotations

import torch

from bench.checks import gpu


def test_without_cuda_the_check_says_so_and_exits_0(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu.main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out


def test_every_check_runs_on_cpu_and_prints_one_table(capsys):
    assert gpu.main(["--device", "cpu", "--quick"]) == 0
    out = capsys.readouterr().out
    table = [ln for ln in out.splitlines() if ln.startswith("| ")]
    checks = {ln.split("|")[1].strip() for ln in table[1:]}
    assert checks == {"harness / bare loop", "step time", "decode b=1", "determinism", "scaling probe"}, out
    assert "error" not in checks
    det = [ln for ln in table if ln.startswith("| determinism")]
    assert len(det) == 2 and all("pass" in ln for ln in det)  # CPU trainings repeat bit for bit
    assert all(len(ln.split("|")) == len(table[0].split("|")) for ln in table)  # no stray column separators


def test_table_marks_goals():
    rows = [gpu.Row("a", "m", "f", 1.5, "<= 2", True), gpu.Row("b", "m", "g", None)]
    t = gpu.table(rows)
    assert "pass" in t and "–" in t and t.count("\n") == 3


def test_only_runs_the_checks_named(capsys):
    assert gpu.main(["--device", "cpu", "--quick", "--only", "determinism"]) == 0
    table = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| ")]
    assert {ln.split("|")[1].strip() for ln in table[1:]} == {"determinism"}


def test_the_determinism_check_does_not_slow_this_process():
    """Deterministic cuBLAS (CUBLAS_WORKSPACE_CONFIG) tripled the eager decode time of the other checks on a
    GPU: the determinism check sets it in its own process, never in this one."""
    import importlib
    import os

    before = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    importlib.reload(gpu)
    gpu.check_determinism(torch.device("cpu"), gpu.Scale.toy())
    assert os.environ.get("CUBLAS_WORKSPACE_CONFIG") == before


def test_a_check_that_raises_is_a_missed_row_and_the_rest_still_run(capsys, monkeypatch):
    def boom(dev, sc, quick):
        raise RuntimeError("planted\nsecond line")

    monkeypatch.setitem(gpu.CHECKS, "decode", boom)
    assert gpu.main(["--device", "cpu", "--quick", "--only", "decode,determinism"]) == 0
    out = capsys.readouterr().out
    error = [ln for ln in out.splitlines() if ln.startswith("| error")]
    assert len(error) == 1 and "decode: RuntimeError: planted" in error[0] and "MISS" in error[0] and "second" not in error[0]
    assert sum(ln.startswith("| determinism") for ln in out.splitlines()) == 2
