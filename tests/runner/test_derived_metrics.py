"""What a run reports is derived from its epochs correctly: tokens/s, examples/s, FLOPs per token, MFU, time
to target and seconds per epoch, from a hand-made training history with known answers.

``execute`` trains with ``fit`` and counts FLOPs with ``train_step_flops``; both are replaced here by stand-ins
whose numbers are chosen by hand, so every figure the run stores has one right value. The rest of the run
(evaluation, decode timing) is real, on a tiny model. The figures then go through the store and the tidy
frame, which is what reports and ``compare`` read.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bench.results.store import Store
from bench.results.tidy import runs_frame
from bench.runner import execute as ex
from bench.runner.cache import DataCache
from bench.spec.run import SessionConfig
from bench.train.loop import Epoch, FitResult
from tests.factories import run_record

CPU = torch.device("cpu")
STEP_FLOPS = 6.0e6  # FLOPs of the probe batch's training step, as the stand-in counts them
PEAKS = (("off", 1.0e9), ("bf16", 4.0e9))  # matmul FLOP/s measured per precision: bf16 four times fp32


def history() -> FitResult:
    """Three epochs; the first carries the warm-up (10 s for a tenth of the tokens) and must not count."""
    e = [Epoch(1, 10.0, 1.0, 2.0, 1000, 100, 0.2, 0.3, 10.0, 11.0),
         Epoch(2, 2.0, 1.0, 1.0, 3000, 100, 0.6, 0.7, 12.0, 14.0),
         Epoch(3, 3.0, 1.0, 0.5, 7000, 100, 0.9, 0.95, 15.0, 18.0)]
    return FitResult(e, time_to_target_s=15.0, wall_to_target_s=18.0, stopped="target")


@pytest.fixture
def run(monkeypatch, make_spec):
    """-> run(amp) = (metrics, the batch execute counted FLOPs on, the run's data, its spec)."""
    seen = {}

    def fake_flops(model, batch):
        seen["probe"] = batch
        return STEP_FLOPS

    monkeypatch.setattr(ex, "fit", lambda *a, **k: history())
    monkeypatch.setattr(ex, "train_step_flops", fake_flops)

    def go(amp: str = "off", model: str = "attention") -> tuple:
        spec = make_spec(model, task="addition", train=64)  # answers of different lengths: padded targets
        spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, amp=amp))
        prep = DataCache().get(spec.data)
        metrics, hist, _ = ex.execute(spec, prep, CPU, SessionConfig(device="cpu", peaks=PEAKS))
        assert hist == history().history()
        return metrics, seen["probe"], prep, spec

    return go


def test_rates_flops_and_mfu_come_from_the_steady_epochs_and_real_tokens(run):
    m, probe, prep, _ = run()
    n = min(32, len(prep.train))  # the probe: the first batch_size training examples
    tokens = int(prep.train.tgt_len[:n].sum())  # target tokens with EOS, no padding
    assert probe.target_tokens == tokens and probe.tgt_out.numel() > tokens  # the probe is padded: the two counts differ
    assert m["train_tokens_per_s"] == pytest.approx((3000 + 7000) / (2.0 + 3.0))  # 2000, not 11000 / 15
    assert m["train_examples_per_s"] == pytest.approx(200 / 5.0)
    assert m["flops_per_token"] == pytest.approx(STEP_FLOPS / tokens)
    assert m["mfu"] == pytest.approx(STEP_FLOPS / tokens * 2000 / 1.0e9)
    assert m["epoch_seconds"] == [10.0, 2.0, 3.0] and m["epochs"] == 3 and m["stopped"] == "target"
    assert (m["time_to_target_s"], m["wall_to_target_s"]) == (15.0, 18.0)
    assert m["final_loss"] == 0.5 and m["valid_exact_match"] == 0.9


def test_mfu_divides_by_the_peak_of_the_precision_used(run):
    m, _, _, _ = run("bf16", "transformer")  # (the CPU's LSTM kernels have no bf16 path)
    assert m["mfu"] == pytest.approx(m["flops_per_token"] * m["train_tokens_per_s"] / 4.0e9)  # bf16's peak, not fp32's


def test_the_tidy_frame_reports_what_the_history_says(run, tmp_path):
    """Through the store and the tidy frame (what reports and compare read): s/epoch is the median of the
    steady epochs, 2.5 s, and tokens/s and time to target are unchanged."""
    m, _, _, spec = run()
    store = Store(str(tmp_path / "s.sqlite"))
    store.add_session("s", "t0", None, "test", {})
    store.add_run(run_record(spec, task="addition", metrics=m, history=history().history()))
    (row,) = runs_frame(store, ["s"]).to_dict("records")
    store.close()
    assert row["s_per_epoch"] == pytest.approx(2.5)
    assert row["train_tokens_per_s"] == pytest.approx(2000.0)
    assert row["time_to_target_s"] == 15.0 and row["mfu"] == pytest.approx(m["mfu"])

