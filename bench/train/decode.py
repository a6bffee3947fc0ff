"""How greedy decoding is launched: eagerly through ``generate``, or as a model's fixed-shape step
(``Seq2Seq.decode_step``) replayed as CUDA graphs.

A cached decode step launches about a dozen kernels per decoder layer from Python; at benchmark sizes a GPU
spends longer on the launches than on the work, and a report that times eager decoding ranks models by how
many kernels they launch (docs/design.md, "On a GPU: measure the architecture, not the launches"). As for
the training step (``bench.train.capture``), the launch is the harness's business, not the model's: a model
that offers a fixed-shape step (pure torch: buffers allocated once, the position on the device, no host
sync) is decoded here through :class:`StaticDecoder`, which captures that step as CUDA graphs on CUDA and
replays them; a model that offers none decodes eagerly (``static_decoder`` returns None). Same tokens either
way (tests/train/test_decode.py). Figures: docs/results-gpu.md.
"""

from __future__ import annotations

import torch

from models.base import STOP_CHECK_EVERY, Generation, Seq2Seq, all_ended, check_step, finish


class NoDecodeStep(ValueError):
    """The model offers no fixed-shape decoding step (``Seq2Seq.decode_step`` returned None)."""


class StaticDecoder:
    """Greedy decoding through a model's fixed-shape step (``Seq2Seq.decode_step``), captured as CUDA graphs.

    A CUDA graph replays fixed kernels on fixed addresses with one launch (PyTorch, "CUDA Graphs",
    ``torch.cuda.graph``; constraints: static shapes, no host sync, no CPU-side work inside the step), which
    is what the model's step promises (``models.base.DecodeStep``). ``__call__`` loads a batch into the step's
    buffers, replays, and clones the results out before returning, as the next decode replays over the same
    buffers.

    The decoder serves any batch of at most ``batch`` rows and ``src_len`` source columns: columns are
    padded (masked, so nothing changes) and missing rows are copies of the first row (dropped from the
    result), which lets a harness keep one decoder per bucket of shapes.

    One replay runs ``base.STOP_CHECK_EVERY`` steps (a graph of that many steps in a row; a second graph
    of ``max_len mod k`` steps finishes the length), and decoding stops once every row has emitted EOS,
    checked between replays: the host launches one graph per k tokens, not one per token, and reads the
    device once per k tokens. (At batch 1 the GPU's own time per step is the limit, not the host: replaying
    one step per graph was hardly slower; docs/results-gpu.md.)

    ``compile=True`` runs the step through ``torch.compile`` (inductor fuses the layer norms, residual adds
    and mask arithmetic into fewer kernels) before it is captured; the first build compiles (seconds).

    ``graph=None`` captures on CUDA and runs the very same step eagerly elsewhere (or with ``graph=False``),
    which is what the CPU tests compare with ``generate``. The step runs in the model's parameter dtype
    with autocast off (a graph cannot follow autocast's changing casts); cast the model to bf16 for a
    half-precision decode. The graph reads the parameters where they are: update them in place (an
    optimizer step) and it sees the new values; move or replace them (``.to``) and build a new decoder.
    The model must be in eval mode (a replayed step cannot drop out at random).
    """

    def __init__(
        self,
        model: Seq2Seq,
        batch: int,
        src_len: int,
        max_len: int,
        return_attention: bool = False,
        graph: bool | None = None,
        compile: bool = False,
    ) -> None:
        if model.training:
            raise ValueError("StaticDecoder needs the model in eval mode (no dropout in a replayed step)")
        state = model.decode_step(batch, src_len, max_len, return_attention=return_attention)
        if state is None:
            raise NoDecodeStep(f"{type(model).__name__} has no fixed-shape decoding step (Seq2Seq.decode_step)")
        self.state = state
        self.device = state.tokens.device
        self.graph = self.device.type == "cuda" if graph is None else graph
        if self.graph and self.device.type != "cuda":
            raise ValueError("a CUDA graph needs the model on a CUDA device")
        self.batch, self.src_len, self.max_len = batch, src_len, max_len
        self.chunk = STOP_CHECK_EVERY  # steps per replay
        self._step = torch.compile(self._one, fullgraph=True, dynamic=False) if compile else self._one
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}  # steps -> the graph that runs that many
        if self.graph:
            for n in sorted({min(self.chunk, max_len), max_len % self.chunk} - {0}, reverse=True):
                self._graphs[n] = self._capture(n)

    def _one(self) -> None:
        """One step with autocast off: a graph replays the kernels it captured, whatever autocast says later."""
        with torch.autocast(self.device.type, enabled=False):
            self.state.step()

    def _steps(self, n: int) -> None:
        for _ in range(n):
            self._step()

    def _capture(self, n: int) -> torch.cuda.CUDAGraph:
        """Warm up on a side stream, then capture ``n`` steps in a row (PyTorch's documented recipe for
        torch.cuda.graph).

        Warm-up runs let lazy initialisation (cuBLAS handles, kernel selection, allocator growth, and the
        compilation of a compiled step) happen outside the capture; the buffers hold valid values (zeros)
        throughout, and the position is reset so the warm-up never writes past the cache.
        """
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self.state.position.zero_()
                self._steps(n)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self.state.position.zero_()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._steps(n)
        return graph

    @torch.no_grad()
    def __call__(self, src: torch.Tensor, src_mask: torch.Tensor, bos: int, eos: int, max_len: int | None = None) -> Generation:
        """Greedy decoding of ``src`` [B0,S0] (B0 <= batch, S0 <= src_len) for at most ``max_len`` tokens
        (default: the decoder's). -> Generation as the model's ``generate`` returns it."""
        L = self.max_len if max_len is None else max_len
        if not 1 <= L <= self.max_len:
            raise ValueError(f"max_len {L} is not in 1..{self.max_len}, the length this decoder was built for")
        B0, S0 = src.shape
        with torch.autocast(self.device.type, enabled=False):
            self.state.load(src, src_mask, bos)
        ended = torch.zeros(B0, dtype=torch.bool, device=self.device)
        done = 0
        while done < L:
            n = min(self.chunk, L - done)  # whole chunks, then the rest: the steps a captured graph runs
            if n in self._graphs:
                self._graphs[n].replay()
            else:  # eager, or a shorter max_len than the decoder's: step by step
                self._steps(n)
            done += n
            if check_step(done - 1, L) and all_ended(self.state.tokens[:B0, done - STOP_CHECK_EVERY : done], eos, ended):
                break
        tokens = self.state.tokens[:B0, :done].clone()  # cloned: the next decode overwrites the buffers
        maps = self.state.attention[:B0, :done, :S0].clone() if self.state.attention is not None else None
        return finish(tokens, maps, eos, L)


def static_decoder(model: Seq2Seq, batch: int, src_len: int, max_len: int, compile: bool = False) -> StaticDecoder | None:
    """A :class:`StaticDecoder` of ``model`` for batches of at most ``batch`` x ``src_len``, or None for a model
    without a fixed-shape decoding step (it decodes eagerly, through ``generate``)."""
    try:
        return StaticDecoder(model, batch, src_len, max_len, compile=compile)
    except NoDecodeStep:
        return None
