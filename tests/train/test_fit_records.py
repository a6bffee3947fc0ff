"""The training loop's records on a clock and a validation score chosen by hand: time to target, wall time,
the stopping epoch and the tokens counted have one right value each; and an fp16 step goes through the
gradient scaler.

The model really trains (a tiny attention model, a few dozen examples); only the clock and the validation
score are stand-ins: every reading of the clock is 1 s after the last, and each evaluation takes 10 s more,
so an epoch trains for exactly 1 s and evaluates for exactly 11 s.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import torch

import models
from bench.data.batching import encode_split, make_batch
from bench.data.tasks import Example
from bench.data.vocab import Vocab
from bench.measure.timing import Precision
from bench.spec.run import TrainConfig
from bench.train import loop
from bench.train.loop import fit, make_step

CPU = torch.device("cpu")


def _data(n: int = 40):
    rng = random.Random(0)
    exs = [Example(s, s[::-1]) for s in sorted({"".join(rng.choice("abcdef") for _ in range(rng.randint(2, 7))) for _ in range(3 * n)})][:n]
    enc = encode_split(exs, Vocab.from_texts(e.src for e in exs))
    return exs, enc


class Clock:
    """time.perf_counter as the loop sees it: each reading 1 s after the last; ``skip`` jumps ahead."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t

    def skip(self, s: float) -> None:
        self.t += s


def _fit(monkeypatch, scores: list[float], target: float | None, epochs: int = 5):
    exs, enc = _data()
    clock = Clock()
    monkeypatch.setattr(loop.time, "perf_counter", clock)  # the Stopwatch and the loop read the same clock
    it = iter(scores)

    def evaluate(*a, **k):
        clock.skip(10.0)
        return SimpleNamespace(exact_match=next(it), token_accuracy=0.5)

    monkeypatch.setattr(loop, "evaluate", evaluate)
    torch.manual_seed(0)
    model = models.build("attention", len(Vocab.from_texts(e.src for e in exs)), "tiny")
    return exs, fit(model, enc, enc, TrainConfig(epochs=epochs, batch_size=16, target=target), CPU, seed=0)


def test_time_to_target_is_training_time_and_wall_time_adds_evaluation(monkeypatch):
    _, r = _fit(monkeypatch, [0.2, 0.5, 0.75, 0.9, 1.0], target=0.75)
    assert r.stopped == "target" and len(r.epochs) == 3  # the first epoch that reaches the target (0.75 >= 0.75) stops it
    assert [e.train_s for e in r.epochs] == [1.0, 1.0, 1.0] and [e.eval_s for e in r.epochs] == [11.0, 11.0, 11.0]
    assert r.time_to_target_s == 3.0 == r.epochs[-1].train_cum_s  # training only
    assert r.wall_to_target_s == 36.0 == r.epochs[-1].wall_cum_s  # training and evaluation (MLPerf's rule)
    assert [e.train_cum_s for e in r.epochs] == [1.0, 2.0, 3.0] and [e.wall_cum_s for e in r.epochs] == [12.0, 24.0, 36.0]


def test_no_time_to_target_when_the_target_is_never_reached(monkeypatch):
    _, r = _fit(monkeypatch, [0.2, 0.5, 0.7], target=0.75, epochs=3)
    assert r.stopped == "epochs" and len(r.epochs) == 3
    assert r.time_to_target_s is None and r.wall_to_target_s is None


def test_tokens_are_the_target_characters_and_eos_without_padding(monkeypatch):
    exs, r = _fit(monkeypatch, [0.1, 0.2], target=None, epochs=2)
    real = sum(len(e.tgt) + 1 for e in exs)  # every answer character and its EOS
    assert len({len(e.tgt) for e in exs}) > 1  # answers of several lengths: batches are padded
    for e in r.epochs:
        assert e.tokens == real and e.examples == len(exs)


def test_an_fp16_step_scales_the_loss_unscales_before_clipping_and_steps_through_the_scaler(monkeypatch):
    """fp16 gradients underflow without loss scaling (PyTorch AMP recipe): the step must scale, unscale (so
    clipping sees true gradients), step and update through a GradScaler. bf16 and fp32 need none."""
    calls: list[str] = []
    real = torch.amp.GradScaler
    for name in ("scale", "unscale_", "step", "update"):
        orig = getattr(real, name)
        monkeypatch.setattr(real, name, lambda self, *a, _o=orig, _n=name, **k: calls.append(_n) or _o(self, *a, **k))
    clipped: list[str] = []
    clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: clipped.append(calls[-1] if calls else "") or clip(*a, **k))
    exs, enc = _data()
    torch.manual_seed(0)
    model = models.build("transformer", len(Vocab.from_texts(e.src for e in exs)), "tiny")  # (no fp16 LSTM kernels on CPU)
    step = make_step(model, TrainConfig(amp="fp16"), CPU)
    loss = step(make_batch(enc, torch.arange(8)))
    assert torch.isfinite(loss)
    assert calls == ["scale", "unscale_", "step", "update"] and clipped == ["unscale_"]
    assert Precision("bf16").scaler(CPU) is None and Precision("off").scaler(CPU) is None
