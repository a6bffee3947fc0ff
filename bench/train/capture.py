"""How a training step is launched: eager, ``torch.compile``, or captured as a CUDA graph and replayed.

At the sizes of the book's tasks a GPU step is a few hundred small kernels, and a report that times eager
PyTorch ranks models by how many kernels they launch (docs/design.md, "On a GPU: measure the architecture,
not the launches"). The launch mode is therefore a dimension of the run, like the precision (docs/design.md,
"Launch overhead is a dimension of the run"):

* ``eager`` -- :func:`bench.train.loop.make_step` as written.
* ``compile`` -- the model through ``torch.compile`` (``mode="reduce-overhead"`` on CUDA, which adds
  CUDA graphs of the compiled regions; the default mode on CPU).
* ``cudagraph`` -- the whole step (forward, loss, backward, gradient clipping, Adam) captured once per
  batch shape with ``torch.cuda.graph`` and replayed (PyTorch's "whole-network capture"): one launch per
  step. CUDA graphs need fixed shapes and fixed addresses, so batches are padded to a few bucket shapes
  (:func:`bucket`, :func:`pad_to`), each bucket gets its own graph and static input tensors, and Adam runs
  with ``capturable=True`` (its step counter lives on the device); a learning-rate schedule writes the rate
  into a device tensor the graph reads (``bench.train.optim``). Nothing inside the step reads a value
  back to the host. The warm-up steps a capture needs (on a side stream, as the documentation requires)
  would move the weights; they are undone after capture, so the captured run starts where eager starts.

* ``compile-cudagraph`` -- the same capture, of the model through ``torch.compile`` (default mode):
  inductor's fused kernels replayed with the optimiser as one graph (``GraphStep(compiled=True)``).

Padding rows are copies of a real row with every target set to PAD: the loss ignores them, and since no
model mixes rows, the real rows' logits and gradients are those of the unpadded batch. Padding columns are
PAD with the source mask off, which every model ignores (tests/models check padding invariance).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from bench.data.batching import Batch
from bench.data.vocab import PAD
from bench.measure.timing import Precision
from bench.spec.run import TrainConfig
from bench.train.loss import loss_fn
from bench.train.optim import optimizer, schedule

# Bucket lengths: powers of two from 8. A batch of width w runs at the smallest bucket >= w, so at most
# half the columns of a batch are padding and a split of lengths up to 1024 needs at most 8 graphs.
MIN_BUCKET = 8


def bucket(n: int, minimum: int = MIN_BUCKET) -> int:
    """The bucket length a width of ``n`` is padded to: the smallest power of two >= max(n, minimum)."""
    if n < 1:
        raise ValueError(f"width must be positive, got {n}")
    b = minimum
    while b < n:
        b *= 2
    return b


def pad_to(b: Batch, rows: int, src_len: int, tgt_len: int) -> Batch:
    """``b`` padded to ``rows`` x ``src_len`` (source) and ``rows`` x ``tgt_len`` (target).

    Extra rows repeat row 0 with all targets PAD (the loss ignores them); extra columns are PAD, masked off.
    """
    B, S = b.src.shape
    T = b.tgt_in.size(1)
    if rows < B or src_len < S or tgt_len < T:
        raise ValueError(f"cannot pad a {B}x{S}/{T} batch down to {rows}x{src_len}/{tgt_len}")

    def grow(x: torch.Tensor, width: int, fill: int | bool) -> torch.Tensor:  # [B,w] -> [rows,width]
        out = torch.full((rows, width), fill, dtype=x.dtype, device=x.device)
        out[:B, : x.size(1)] = x
        if rows > B:
            out[B:, : x.size(1)] = x[:1]
        return out

    tgt_out = grow(b.tgt_out, tgt_len, PAD)
    tgt_out[B:] = PAD
    index = torch.cat([b.index, b.index[:1].expand(rows - B)]) if rows > B else b.index
    return Batch(index, grow(b.src, src_len, PAD), grow(b.src_mask, src_len, False), grow(b.tgt_in, tgt_len, PAD), tgt_out)


Step = Callable[..., torch.Tensor]  # (batch, denom=None) -> summed loss of the batch (a device tensor)


def compile_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``torch.compile`` as the run's ``compile`` mode uses it."""
    return torch.compile(model, mode="reduce-overhead" if device.type == "cuda" else None)


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: Batch  # static input tensors, refilled before each replay
    loss_sum: torch.Tensor  # static output, cloned after each replay


class GraphStep:
    """The training step captured as one CUDA graph per bucket shape (module docstring). CUDA only.

    ``warmup``: eager iterations on a side stream before each capture (cuDNN/cuBLAS workspaces, Adam's
    state); their effect on the weights and the optimiser is undone, so replays start from the same state
    an eager run would. Adam is the fused implementation (one kernel for every parameter; measured on an
    H200 the graph of a small model's step is a few hundred kernels of a few microseconds each, so each
    kernel saved shows), which computes what eager's foreach Adam does up to rounding.

    ``compiled``: the model's forward (and so its backward) goes through ``torch.compile`` in its default
    mode before capture: inductor's fused kernels, replayed as one graph with the optimiser. Compilation
    happens in the warm-up, outside the capture.
    """

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, device: torch.device, rows: int, warmup: int = 3,
                 compiled: bool = False, total_steps: int | None = None) -> None:
        if device.type != "cuda":
            raise ValueError("cudagraph capture needs a CUDA device")
        self.model, self.cfg, self.device, self.rows, self.warmup = model, cfg, device, rows, warmup
        self.forward = torch.compile(model, dynamic=False) if compiled else model
        # A changing rate must be read inside the graph: a device tensor (PyTorch supports a tensor lr with
        # capturable/fused Adam), refilled in place before each replay. A constant rate stays the float it was.
        lr = torch.tensor(cfg.lr, dtype=torch.float32, device=device) if cfg.scheduled else None
        self.opt = optimizer(model.parameters(), cfg, lr=lr, capturable=True, fused=True)
        self.schedule = schedule(self.opt, cfg, total_steps)
        self.smooth = {"label_smoothing": cfg.label_smoothing} if cfg.label_smoothing else {}
        self.autocast = Precision(cfg.amp).autocast(device)
        self.graphs: dict[tuple[int, int], _Graph] = {}
        self.replays = 0

    def _body(self, b: Batch) -> torch.Tensor:
        with self.autocast():
            logits = self.forward(b.src, b.src_mask, b.tgt_in)
        loss_sum = loss_fn(logits, b.tgt_out, reduction="sum", **self.smooth)
        n = (b.tgt_out != PAD).sum().clamp(min=1)
        (loss_sum / n).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
        self.opt.step()
        return loss_sum.detach()

    def _capture(self, static: Batch) -> _Graph:
        params = [p.detach().clone() for p in self.model.parameters()]
        state = {k: {n: v.clone() for n, v in s.items() if torch.is_tensor(v)} for k, s in self.opt.state.items()}
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.opt.zero_grad(set_to_none=True)
                self._body(static)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            loss_sum = self._body(static)
        with torch.no_grad():  # undo the warm-up in place (the captured graphs keep these very tensors)
            for p, saved in zip(self.model.parameters(), params):
                p.copy_(saved)
            for k, s in self.opt.state.items():
                for n, v in s.items():
                    if torch.is_tensor(v):
                        v.copy_(state[k][n]) if k in state else v.zero_()  # no state before: Adam as fresh
        return _Graph(graph, static, loss_sum)

    def __call__(self, b: Batch, denom: float | None = None) -> torch.Tensor:
        if denom is not None:
            raise ValueError("cudagraph capture does not run data-parallel (DDP) steps")
        shape = (bucket(b.src.size(1)), bucket(b.tgt_in.size(1)))
        padded = pad_to(b, self.rows, *shape)
        g = self.graphs.get(shape)
        if g is None:
            static = Batch(*(t.clone() for t in (padded.index, padded.src, padded.src_mask, padded.tgt_in, padded.tgt_out)))
            g = self.graphs[shape] = self._capture(static)
        for dst, src in zip((g.inputs.src, g.inputs.src_mask, g.inputs.tgt_in, g.inputs.tgt_out),
                            (padded.src, padded.src_mask, padded.tgt_in, padded.tgt_out)):
            dst.copy_(src, non_blocking=True)
        if self.schedule is not None:
            self.schedule.step()  # fills the lr tensor on the current stream, ahead of the replay that reads it
        g.graph.replay()
        self.replays += 1
        return g.loss_sum.clone()  # the next replay overwrites the static output
