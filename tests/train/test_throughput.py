"""Throughput runs: fixed-shape batches, warm-up excluded, per-step times, the budget; hand-checked figures."""

from __future__ import annotations

import pytest
import torch

from bench.data.batching import encode_split
from bench.data.tasks import TaskOptions, make
from bench.data.vocab import PAD, Vocab
from bench.train import throughput
from bench.train.throughput import OverBudget, StepTimes, fixed_batches, time_steps

CPU = torch.device("cpu")


def _enc(lo: int, hi: int, n: int = 40):
    data = make("copy", TaskOptions(seed=0, train=n, valid=1, test=1, train_lengths=(lo, hi), test_lengths=(lo, hi)))
    return encode_split(data.train, Vocab.from_texts(data.texts()))


def test_fixed_batches_all_have_the_split_s_longest_shape():
    enc = _enc(3, 9)
    bs = fixed_batches(enc, 8, 5, torch.Generator().manual_seed(0))
    S, T = int(enc.src_len.max()), int(enc.tgt_len.max())
    assert len(bs) == 5
    for b in bs:
        assert b.src.shape == (8, S) and b.tgt_in.shape == (8, T) and b.tgt_out.shape == (8, T)
        assert (b.src_mask.sum(1) == enc.src_len[b.index]).all()  # padding is masked, real tokens are not
        assert ((b.tgt_out != PAD).sum(1) == enc.tgt_len[b.index]).all()


def test_fixed_batches_repeat_rows_of_a_small_split():
    enc = _enc(4, 4, n=3)
    (b,) = fixed_batches(enc, 8, 1, torch.Generator().manual_seed(0))
    assert b.src.shape == (8, 4)


def test_time_steps_excludes_warm_up_and_counts_target_tokens(monkeypatch):
    enc = _enc(5, 5)
    todo = fixed_batches(enc, 4, 2, torch.Generator().manual_seed(0))
    calls = []
    clock = iter(range(0, 10_000))
    monkeypatch.setattr(throughput.time, "perf_counter", lambda: float(next(clock)))  # every reading is 1 s later
    t = time_steps(lambda b: calls.append(b) or torch.zeros(()), todo, CPU, warmup=3, steps=4)
    assert len(calls) == 7 and len(t.seconds) == 4
    assert t.seconds == [1.0, 1.0, 1.0, 1.0]
    assert t.tokens_per_step == 4 * 6  # 4 rows x (5 characters + EOS), no padding
    assert t.tokens_per_s == pytest.approx(24.0)


def test_step_time_statistics_on_hand_made_times():
    t = StepTimes([0.4, 0.1, 0.2, 0.3, 0.5], tokens_per_step=10)
    assert t.median == 0.3 and t.quantile(0.0) == 0.1 and t.quantile(1.0) == 0.5
    assert t.tokens_per_s == pytest.approx(50 / 1.5)


def test_a_run_over_its_budget_stops_after_warm_up(monkeypatch):
    enc = _enc(5, 5)
    todo = fixed_batches(enc, 4, 1, torch.Generator().manual_seed(0))
    clock = iter(range(0, 10_000, 2))  # each step seems to take 2 s
    monkeypatch.setattr(throughput.time, "perf_counter", lambda: float(next(clock)))
    calls = []
    with pytest.raises(OverBudget, match="over the budget of 10 s"):
        time_steps(lambda b: calls.append(b), todo, CPU, warmup=2, steps=100, budget_s=10)
    assert len(calls) == 2  # no timed step ran


def test_tokens_per_step_leave_the_padding_out():
    enc = _enc(2, 9)  # lengths 2..9: every batch padded to the split's longest
    todo = fixed_batches(enc, 4, 3, torch.Generator().manual_seed(0))
    real = [int(enc.tgt_len[b.index].sum()) for b in todo]
    assert sum(real) < sum(b.tgt_out.numel() for b in todo)  # there is padding to leave out
    t = time_steps(lambda b: torch.zeros(()), todo, CPU, warmup=0, steps=6)  # each batch twice
    assert t.tokens_per_step == pytest.approx(sum(real) / 3)


def test_on_cuda_step_times_are_read_from_events_only_after_synchronising(monkeypatch):
    """CUDA events are recorded around each step without waiting; reading one before the device has passed it
    is an error (or, worse, a time of work not done). The read must follow a synchronisation after the last step."""
    log: list[str] = []

    class FakeEvent:
        def __init__(self, enable_timing: bool = False):
            assert enable_timing

        def record(self):
            log.append("record")

        def elapsed_time(self, end):
            last_record = len(log) - 1 - log[::-1].index("record")
            assert "sync" in log[last_record:], "an event read before the device was synchronised after the last step"
            log.append("read")
            return 5.0  # ms

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append("sync"))
    enc = _enc(5, 5)
    todo = fixed_batches(enc, 4, 2, torch.Generator().manual_seed(0))
    t = time_steps(lambda b: log.append("step"), todo, torch.device("cuda"), warmup=2, steps=3)
    assert t.seconds == [0.005, 0.005, 0.005] and log.count("read") == 3
