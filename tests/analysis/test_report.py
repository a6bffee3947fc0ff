"""Reports: table values equal the store's, intervals over seeds, winners, warnings, filters, rendering."""

from __future__ import annotations

import math
import os

import pytest

from bench.analysis import report
from bench.analysis.stats import t95
from bench.results.store import RunRecord, Store
from tests.conftest import run_cli

SAMPLE = {"row": 0, "src": list("3/4/95"), "reversed_source": False, "pred": list("1995-03-04") + ["<eos>"], "target": "1995-03-04",
          "attention": [[1.0 if j == k else 0.0 for j in range(6)] for k in (4, 5, 4, 5, 0, 0, 0, 0, 2, 2, 2)]}


def metrics(em: float, tok_s: float, params: int = 1000, mem: int = 2**20) -> dict:
    return {"params": params, "epochs": 2, "epoch_seconds": [3.0, 2.0, 2.0], "train_tokens_per_s": tok_s, "time_to_target_s": 4.0,
            "test_exact_match": em, "test_token_accuracy": min(1.0, em + 0.1), "alignment": 0.5, "decode_latency_b1_s": 0.01,
            "decode_latency_batch_s": 0.1, "peak_memory_bytes": mem, "flops_per_token": 1e6, "test_by_length": {"5": [8, 10], "6": [5, 10]}}


def add(store: Store, sid: str, model: str, seed: int, m: dict | None, status: str = "ok", key: str | None = None) -> None:
    store.add_run(RunRecord(sid, key or f"date/{model}/small/{seed}/h", "date", model, "small", seed, {"model_options": {}, "train": {"amp": "off"}}, "h",
                            status, None if status == "ok" else "diverged: loss is nan", "t0", "t1", m or {},
                            [{"epoch": 1, "valid_exact_match": 0.5, "wall_cum_s": 1.0, "train_s": 1.0}], [SAMPLE] if m else []))


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(str(tmp_path / "r.sqlite"))
    s.add_session("s1", "2026-01-01T00:00:00", "quick", "test", {"device_name": "CPU A", "device_type": "cpu", "torch": "2.13.0", "threads": 2, "commit": "abc123"})
    for seed, em in enumerate((0.90, 0.92, 0.97)):
        add(s, "s1", "attention", seed, metrics(em, 1000.0 + seed))
    for seed, em in enumerate((0.50, 0.60, 0.70)):
        add(s, "s1", "seq2seq", seed, metrics(em, 3000.0))
    return s


def test_summary_table_equals_the_stores_numbers_with_intervals_over_seeds(store):
    runs = report.runs_frame(store, ["s1"])
    t = report.summary_table(runs, reference="attention").set_index("model")
    att = t.loc["attention"]
    assert att["params"] == 1000 and att["seeds"] == 3
    assert att["test_exact_match"] == pytest.approx(93.0)
    std = math.sqrt(((90 - 93) ** 2 + (92 - 93) ** 2 + (97 - 93) ** 2) / 2)
    assert att["test_exact_match_ci"] == pytest.approx(t95(2) * std / math.sqrt(3))
    assert att["train_tokens_per_s"] == pytest.approx(1001.0)  # median over seeds
    assert att["s_per_epoch"] == pytest.approx(2.0)  # median of the epochs after the first
    assert att["peak_memory_bytes"] == pytest.approx(1.0)
    assert t.loc["seq2seq", "test_exact_match"] == pytest.approx(60.0)
    assert t.loc["seq2seq", "train_tokens_per_s_vs_ref"] == pytest.approx(3000.0 / 1001.0)
    assert t.loc["attention", "reached_target"] == "3/3"


def test_winners_are_the_best_of_each_column(store):
    t = report.summary_table(report.runs_frame(store, ["s1"]))
    win = report.winners(t)
    by_model = dict(zip(t["model"], t.index))
    assert win.get((by_model["attention"], "test_exact_match"))
    assert not win.get((by_model["seq2seq"], "test_exact_match"))
    assert win.get((by_model["seq2seq"], "train_tokens_per_s"))
    md = report.markdown_table(t, report.QUALITY_COLS)
    assert "**93.0 ±" in md


def test_a_failed_run_retried_on_resume_is_not_counted_as_failed(store):
    add(store, "s1", "transformer", 0, None, status="failed", key="date/transformer/small/0/h")
    add(store, "s1", "transformer", 0, metrics(0.8, 500.0), key="date/transformer/small/0/h")
    add(store, "s1", "gnmt", 0, None, status="failed")
    t = report.summary_table(report.runs_frame(store, ["s1"])).set_index("model")
    assert t.loc["transformer", "failed"] == 0
    r = report.build(store, ["s1"])
    assert list(r["failures"]["model"]) == ["gnmt"]


def test_report_files_and_the_different_device_warning(store, tmp_path):
    store.add_session("s2", "2026-01-02T00:00:00", "quick", "test", {"device_name": "GPU B", "device_type": "cuda", "torch": "2.13.0", "threads": 2})
    add(store, "s2", "attention", 0, metrics(0.95, 9000.0))
    paths = report.write(store, ["s1"], str(tmp_path / "one"))
    html = open(paths["html"], encoding="utf-8").read()
    assert "different devices" not in html
    paths = report.write(store, ["s1", "s2"], str(tmp_path / "two"))
    html = open(paths["html"], encoding="utf-8").read()
    md = open(paths["md"], encoding="utf-8").read()
    assert "different devices (CPU A, GPU B)" in html and "different devices" in md
    assert html.count("data:image/png;base64,") >= 4  # curves, speed-accuracy, length, heatmaps
    for name in ("learning_curves", "speed_accuracy", "accuracy_by_length", "attention_date"):
        assert os.path.getsize(os.path.join(tmp_path, "two", name + ".png")) > 1000


def test_report_filters_by_device_task_and_commit(store, tmp_path):
    store.add_session("s2", "2026-01-02T00:00:00", "quick", "test", {"device_name": "GPU B", "device_type": "cuda", "torch": "2.13.0", "commit": "def456"})
    add(store, "s2", "attention", 0, metrics(0.95, 9000.0))
    store.close()
    path = str(tmp_path / "r.sqlite")
    rc, out, err = run_cli(["report", "--store", path, "--device", "cuda", "--out", str(tmp_path / "gpu")])
    assert rc == 0, err
    assert "GPU B" in open(tmp_path / "gpu" / "index.html", encoding="utf-8").read()
    assert "CPU A" not in open(tmp_path / "gpu" / "index.html", encoding="utf-8").read()
    rc, _, err = run_cli(["report", "--store", path, "--commits", "abc", "--out", str(tmp_path / "c")])
    assert rc == 0, err
    assert "GPU B" not in open(tmp_path / "c" / "index.html", encoding="utf-8").read()
    rc, _, err = run_cli(["report", "--store", path, "--device", "tpu", "--out", str(tmp_path / "none")])
    assert rc == 2 and "no session matches" in err
    rc, _, err = run_cli(["report", "--store", path, "--session", "s1", "--task", "addition", "--out", str(tmp_path / "t")])
    assert rc == 2 and "no runs" in err


def test_length_bins_are_equal_width_centres():
    import pandas as pd

    got = report.bin_centres(pd.Series([1, 2, 3, 4, 16]), bins=4)  # width ceil(16/4) = 4
    assert list(got) == [2.5, 2.5, 2.5, 2.5, 14.5]

