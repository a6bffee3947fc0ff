"""Throughput runs end to end: stored with their own metrics and mode, never with quality metrics; sweep
points a model cannot hold, and launch modes the device cannot run, are refused before anything runs."""

from __future__ import annotations

import os

import pytest

from bench.results.store import Store
from bench.results.tidy import runs_frame
from bench.spec import suite
from tests.conftest import run_cli, snapshot

TP = ["--task", "copy", "--size", "tiny", "--steps", "3", "--warmup-steps", "1", "--length", "12", "--train-size", "32",
      "--device", "cpu", "--threads", "1"]


def test_a_throughput_run_stores_step_times_and_no_quality(tmp_path):
    store = str(tmp_path / "s.sqlite")
    rc, out, err = run_cli(["run", "--model", "transformer,attention", *TP, "--store", store])
    assert rc == 0, err
    s = Store.open_existing(store)
    runs = s.runs()
    df = runs_frame(s, [runs[0].session])
    s.close()
    assert [r.status for r in runs] == ["ok", "ok"]
    for r in runs:
        m = r.metrics
        assert m["mode"] == "throughput" and r.config["throughput"]["steps"] == 3
        assert len(m["step_seconds"]) == 3 and m["step_s_p10"] <= m["step_s"] <= m["step_s_p90"]
        assert m["src_len"] == 12 and m["tgt_len"] == 13 and m["decode_len"] == 13
        assert m["train_tokens_per_s"] == pytest.approx(m["tokens_per_step"] * 3 / sum(m["step_seconds"]))
        assert m["decode_s_per_token_b1"] == pytest.approx(m["decode_latency_b1_s"] / 13)
        assert "test_exact_match" not in m and r.history == []
        assert m["decode_capture"] == "eager"
    assert set(df["mode"]) == {"throughput"} and set(df["capture"]) == {"eager"}


def test_throughput_and_quality_runs_have_different_keys(tmp_path):
    from bench.spec.run import RunSpec, ThroughputSpec

    q, t = RunSpec("attention", "tiny", 0), RunSpec("attention", "tiny", 0, throughput=ThroughputSpec(steps=5))
    assert q.key() != t.key() and q.mode == "quality" and t.mode == "throughput"
    assert "throughput" not in q.config() and "capture" not in q.config()["train"]  # keys of earlier stores hold


@pytest.mark.parametrize("args, words", [
    (["--model", "transformer", "--length", "5000"], ["--length", "5000", "transformer"]),
    (["--model", "attention", "--capture", "cudagraph"], ["--capture", "cudagraph", "CUDA"]),
    (["--model", "attention", "--capture", "compile", "--compile", "--capture", "eager"], ["--compile"]),
])
def test_impossible_points_are_refused_before_anything_runs(tmp_path, args, words):
    store = str(tmp_path / "s.sqlite")
    run_cli(["run", "--model", "attention", *TP, "--store", store])
    before = snapshot(store)
    base = TP[: TP.index("--length")] + TP[TP.index("--length") + 2:]
    rc, out, err = run_cli(["run", *base, *args, "--store", store])
    assert rc == 2, (out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for w in words:
        assert w in err
    assert snapshot(store) == before


def test_a_suite_sweep_point_beyond_the_table_names_the_file_and_key(tmp_path):
    p = tmp_path / "sweep.toml"
    p.write_text('[[runs]]\ntasks = ["copy"]\nmodels = ["transformer"]\nsizes = ["tiny"]\nsteps = 2\nlengths = [8, 9000]\n')
    rc, out, err = run_cli(["run", "--suite", str(p), "--device", "cpu", "--store", str(tmp_path / "s.sqlite")])
    assert rc == 2 and str(p) in err and "key 'lengths'" in err and "9000" in err
    assert not os.path.exists(tmp_path / "s.sqlite")


def test_the_scaling_suites_sweep_every_model_over_lengths_and_sizes():
    from tests.conftest import builtin_models

    _, _, specs = suite.load("scaling")
    assert {s.model for s in specs} == set(builtin_models())
    assert {s.data.train_lengths for s in specs} == {(L, L) for L in (16, 64, 256, 1024)}
    assert {s.size for s in specs} == {"small", "base", "large"}
    assert all(s.mode == "throughput" and s.train.amp == "bf16" for s in specs)
    _, _, cpu = suite.load("scaling-cpu")
    assert {s.model for s in cpu} == set(builtin_models()) and all(s.mode == "throughput" for s in cpu)


def test_an_over_budget_point_is_stored_as_failed_with_its_reason(tmp_path):
    p = tmp_path / "b.toml"
    p.write_text('[[runs]]\ntasks = ["copy"]\nmodels = ["ntm"]\nsizes = ["tiny"]\nsteps = 100000\nwarmup_steps = 1\n'
                 'run_budget_s = 0.001\nlengths = [8]\ntrain = 16\nvalid = 1\ntest = 1\nbatch_size = 4\n')
    store = str(tmp_path / "s.sqlite")
    rc, out, err = run_cli(["run", "--suite", str(p), "--device", "cpu", "--threads", "1", "--store", store])
    assert rc == 1, err  # the session ran, and no run of it succeeded: run's exit code 1
    s = Store.open_existing(store)
    (r,) = s.runs()
    s.close()
    assert r.status == "failed" and r.error.startswith("over budget:")


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("capture", ["eager", "cudagraph", "compile-cudagraph"])
def test_throughput_runs_of_every_model_run_on_cuda(tmp_path, capture):
    """Every model a mode can run, end to end on CUDA: model, batches and the FLOP probe on one device
    (a probe on host batches failed every run of the first GPU sweep)."""
    import models

    names = [n for n in models.names() if capture == "eager" or models.host_sync(n, "tiny") is None]
    store = str(tmp_path / "s.sqlite")
    args = [a if a != "cpu" else "cuda" for a in TP]
    rc, out, err = run_cli(["run", "--model", ",".join(names), *args, "--amp", "bf16", "--capture", capture, "--store", store])
    s = Store.open_existing(store)
    runs = s.runs()
    s.close()
    assert rc == 0 and [r.status for r in runs] == ["ok"] * len(names), [r.error for r in runs]
    assert all(r.metrics["flops_per_token"] > 0 for r in runs)
