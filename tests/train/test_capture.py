"""Launch modes: what the CUDA-graph step relies on is tested here on CPU (bucketing, padding rows and
columns, the same loss and gradients as the unpadded batch); compile mode gives eager's losses; the graph
capture itself is tested where CUDA is (``-m gpu``)."""

from __future__ import annotations

import pytest
import torch

import models
from bench.data.batching import batches, encode_split
from bench.data.tasks import TaskOptions, make
from bench.data.vocab import PAD, Vocab
from bench.spec.run import SpecError, TrainConfig
from bench.train.capture import bucket, pad_to
from bench.train.loop import fit, make_step
from bench.train.loss import loss_fn
from bench.train.seeding import seed_everything

CPU = torch.device("cpu")


def _data(n: int = 96, seed: int = 0):
    data = make("date", TaskOptions(seed=seed, train=n, valid=32, test=8))
    vocab = Vocab.from_texts(data.texts())
    return vocab, encode_split(data.train, vocab), encode_split(data.valid, vocab)


@pytest.mark.parametrize("n, b", [(1, 8), (8, 8), (9, 16), (16, 16), (17, 32), (1000, 1024), (1024, 1024)])
def test_bucket_is_the_next_power_of_two_from_eight(n, b):
    assert bucket(n) == b


def test_bucket_refuses_an_empty_width():
    with pytest.raises(ValueError):
        bucket(0)


def test_padding_rows_and_columns_leave_the_loss_and_gradients_unchanged():
    vocab, train, _ = _data()
    b = next(batches(train, 5, shuffle=False))
    seed_everything(0)
    m = models.build("transformer", len(vocab), "tiny", dropout=0.0)
    padded = pad_to(b, 8, bucket(b.src.size(1)), bucket(b.tgt_in.size(1)) + 8)
    assert padded.src.shape == (8, bucket(b.src.size(1))) and padded.tgt_out.size(1) == bucket(b.tgt_in.size(1)) + 8
    assert (padded.tgt_out[5:] == PAD).all()  # extra rows contribute no target
    assert not padded.src_mask[:, b.src.size(1):].any()  # extra columns are masked off

    def loss_and_grads(batch):
        m.zero_grad()
        loss = loss_fn(m(batch.src, batch.src_mask, batch.tgt_in), batch.tgt_out, reduction="sum")
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in m.parameters()]

    l0, g0 = loss_and_grads(b)
    l1, g1 = loss_and_grads(padded)
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-4)
    for a, c in zip(g0, g1):
        torch.testing.assert_close(c, a, rtol=1e-4, atol=1e-5)


def test_pad_to_refuses_to_shrink():
    vocab, train, _ = _data()
    b = next(batches(train, 4, shuffle=False))
    with pytest.raises(ValueError):
        pad_to(b, 2, b.src.size(1), b.tgt_in.size(1))


@pytest.mark.parametrize("capture", ["cudagraph", "compile-cudagraph"])
def test_graph_modes_need_cuda_and_refuse_fp16(capture):
    assert TrainConfig(capture=capture).graph and not TrainConfig(capture="compile").graph
    with pytest.raises(SpecError, match="capture"):
        TrainConfig(capture=capture, amp="fp16")
    with pytest.raises(SpecError, match="capture"):
        TrainConfig(capture="graphs")
    vocab, _, _ = _data()
    with pytest.raises(ValueError, match="CUDA"):
        make_step(models.build("attention", len(vocab), "tiny"), TrainConfig(capture=capture), CPU)


def _losses(capture: str, model: str) -> list[float]:
    # one fixed shape (copy, every source 8 long, two full batches): compile traces once, not once per width
    data = make("copy", TaskOptions(seed=0, train=64, valid=16, test=4, train_lengths=(8, 8), test_lengths=(8, 8)))
    vocab = Vocab.from_texts(data.texts())
    train, valid = encode_split(data.train, vocab), encode_split(data.valid, vocab)
    seed_everything(0)
    m = models.build(model, len(vocab), "tiny", **({"dropout": 0.0} if model == "transformer" else {}))
    r = fit(m, train, valid, TrainConfig(epochs=2, batch_size=32, target=None, capture=capture), CPU, seed=0)
    return [e.loss for e in r.epochs]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["transformer"])
def test_compile_mode_gives_eagers_losses(model):
    """torch.compile fuses and reorders floating-point work: equal within 1e-4 relative, not bit for bit."""
    pytest.importorskip("torch._inductor")
    eager, compiled = _losses("eager", model), _losses("compile", model)
    assert compiled == pytest.approx(eager, rel=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("capture", ["cudagraph", "compile-cudagraph"])
@pytest.mark.parametrize("model", [n for n in models.names() if models.host_sync(n, "tiny") is None])
def test_cudagraph_step_gives_eagers_losses_on_cuda(model, capture):
    """The captured step replays eager's arithmetic: same losses within 1e-3 relative (cuBLAS may pick
    other kernels inside a graph, inductor fuses and reorders), for several bucket shapes (date sources vary
    in length)."""
    dev = torch.device("cuda")
    vocab, train, valid = _data(192)
    out = {}
    for mode in ("eager", capture):
        seed_everything(0)
        m = models.build(model, len(vocab), "tiny", **({"dropout": 0.0} if model == "transformer" else {})).to(dev)
        r = fit(m, train, valid, TrainConfig(epochs=2, batch_size=32, target=None, capture=mode), dev, seed=0)
        out[mode] = [e.loss for e in r.epochs]
    assert out[capture] == pytest.approx(out["eager"], rel=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compile_mode_gives_eagers_losses_on_cuda():
    """On CUDA, compile mode is ``reduce-overhead`` (inductor's kernels replayed as CUDA graphs, one per batch
    shape): the same losses as eager within 1e-3 relative, over batches of several shapes."""
    pytest.importorskip("triton")
    dev = torch.device("cuda")
    vocab, train, valid = _data(192)
    out = {}
    for capture in ("eager", "compile"):
        seed_everything(0)
        m = models.build("transformer", len(vocab), "tiny", dropout=0.0).to(dev)
        r = fit(m, train, valid, TrainConfig(epochs=2, batch_size=32, target=None, capture=capture), dev, seed=0)
        out[capture] = [e.loss for e in r.epochs]
    assert out["compile"] == pytest.approx(out["eager"], rel=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("capture", ["cudagraph", "compile-cudagraph"])
@pytest.mark.parametrize("schedule", ["inverse-sqrt", "cosine"])
def test_a_scheduled_recipe_in_a_captured_step_gives_eagers_losses_on_cuda(capture, schedule):
    """The graph reads the learning rate from a device tensor the schedule refills before each replay: a rate
    frozen at capture time would train differently from eager, whose optimiser gets a new float every step."""
    dev = torch.device("cuda")
    vocab, train, valid = _data(192)
    cfg = dict(epochs=3, batch_size=32, target=None, schedule=schedule, lr_warmup=4, label_smoothing=0.1, weight_decay=0.01, lr=3e-3)
    out = {}
    for mode in ("eager", capture):
        seed_everything(0)
        m = models.build("attention", len(vocab), "tiny").to(dev)
        r = fit(m, train, valid, TrainConfig(capture=mode, **cfg), dev, seed=0)
        out[mode] = [e.loss for e in r.epochs]
    assert out[capture] == pytest.approx(out["eager"], rel=1e-3)
