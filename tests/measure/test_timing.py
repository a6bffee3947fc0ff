"""Measurement: FLOPs of the fused LSTM kernels, and timers that synchronise the device."""

from __future__ import annotations

from unittest import mock

import pytest
import torch

from bench.measure.flops import counter, cudnn_rnn_backward_flops, cudnn_rnn_flops
from bench.measure.timing import Stopwatch, time_fn


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


def test_cudnn_lstm_formula_on_its_argument_shapes():
    """The cuDNN kernel's formula, checked here on the shapes it receives (the GPU test checks it on a real
    kernel): every layer and direction's two gate matmuls per token, the biases not counted; backward twice."""
    T, B, D, H = 5, 3, 8, 16
    layer0 = [[4 * H, D], [4 * H, H], [4 * H], [4 * H]]
    layer1 = [[4 * H, H], [4 * H, H], [4 * H], [4 * H]]
    forward = 2 * T * B * 4 * H * ((D + H) + (H + H))
    assert cudnn_rnn_flops([T, B, D], layer0 + layer1) == forward
    assert cudnn_rnn_backward_flops([T, B, D], layer0 + layer1) == 2 * forward


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
