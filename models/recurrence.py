"""Recurrences that train in parallel over time: the two forms every one of them comes in, around any mixer.

A *mixer* is the layer that moves information along the sequence -- minGRU, minLSTM (``models.minrnn``), a
selective state-space layer (``models.ssm``). Each has two ways to run, which compute the same function:

* ``forward(x, keep)``: all positions at once, by a parallel scan (``models.scan``) -- training and prefill;
* ``step(x, state, keep)``: one position, from the state of the one before -- decoding. The state is a few
  tensors of fixed size per layer (O(1) in the length), where a Transformer's KV cache grows by one
  position per token.

``keep`` [B,T] marks the positions that count: a position with ``keep`` False is an identity step (the state
passes through unchanged, nothing is read), which is how padding is skipped without packing.

Around the mixer, the blocks are the Transformer's (``models.transformer``), pre-norm residual (Xiong et al.
2020), so that the mixer is the one difference between these models and the Transformer: ``x + mixer(LN(x))``,
then in the ``cross`` form ``x + cross-attention(LN(x), encoder)``, then ``x + FF(LN(x))``. Two forms, the
model option ``form``:

* ``prefix`` (the default) -- one causal stack reads the source, then the target after its BOS, as one
  sequence (a decoder-only model reading its prompt): whatever the source says reaches the answer only
  through the recurrent state at the separator. It is the book's fixed-length-vector question (§8.1) asked
  of a gated, wide, deep state, and the setting of Jelassi et al. 2024 ("Repeat After Me: Transformers are
  Better than State Space Models at Copying"), who show that a fixed-size state fails to copy strings longer
  than it can hold. The source is *right-justified* first (its padding moved in front of it, as identity
  steps), so that every row's separator sits in the same column and a short source's padding never comes
  between it and its answer. ``generate`` returns no attention maps: there is no attention.
* ``cross`` -- an encoder stack over the source and a decoder stack whose every block also attends to the
  encoder's outputs (Vaswani et al. 2017's cross-attention; the hybrid most recent recurrent models use).
  The decoder state is then the recurrent state plus the encoder's keys and values, fixed while decoding.
  ``generate`` returns the last decoder block's cross-attention, averaged over heads (as the Transformer).
  Parameters: its cross-attention's 4 d^2 per decoder block come out of that block's feed-forward (width
  ``ff - 2 d_model``), so both forms have the size's budget.

The stack depth is ``layers`` blocks in the prefix form, ``layers / 2`` encoder and ``layers / 2`` decoder
blocks in the cross form: the same number of blocks, the same parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from models.base import DecodeStep, Generation, Seq2Seq, greedy_decode
from models.options import DROPOUT, NONNEGATIVE, POSITIVE
from models.scan import SCANS
from models.transformer import FeedForward, MultiHeadAttention

FORMS = ("prefix", "cross")  # the model option ``form`` (module docstring)

State = tuple[torch.Tensor, ...]  # one mixer's decoding state: a few tensors of fixed size


@dataclass(frozen=True)
class ScanConfig:
    """What the three models share; each adds its mixer's own fields."""

    vocab_size: int = 0
    d_model: int = 64  # residual stream width
    layers: int = 4  # blocks: all in one stack (prefix), or half encoder, half decoder (cross); even
    ff: int = 256  # feed-forward width after each mixer; in the cross form's decoder blocks ff - 2 d_model
    heads: int = 4  # cross-attention heads (cross form only); d_model / heads is each head's width
    dropout: float = 0.1  # on embeddings and sublayer outputs, as the Transformer (Vaswani §5.4)
    form: str = "prefix"  # prefix | cross (module docstring)
    scan: str = "chunked"  # chunked | heinsen: how training runs the recurrence (models.scan); same function

    LIMITS: ClassVar[dict] = {"d_model": POSITIVE, "layers": POSITIVE, "ff": NONNEGATIVE, "heads": POSITIVE, "dropout": DROPOUT,
                              "form": FORMS, "scan": SCANS}

    def attention_maps(self) -> bool:
        """Whether ``generate`` returns cross-attention maps (``models.attention_maps``): in the cross form only."""
        return self.form == "cross"

    def decoder_ff(self) -> int:
        """Feed-forward width of a cross-form decoder block: its cross-attention's 4 d^2 come out of it."""
        return self.ff - 2 * self.d_model

    def check(self) -> None:
        """What ties fields together (raised as ValueError before anything is built, ``models.options``)."""
        if self.form not in FORMS:
            raise ValueError(f"unknown form {self.form!r}; use {' or '.join(FORMS)}")
        if self.scan not in SCANS:
            raise ValueError(f"unknown scan {self.scan!r}; use {' or '.join(SCANS)}")
        if self.form == "cross":
            if self.layers % 2:
                raise ValueError(f"form cross splits layers into encoder and decoder halves: layers must be even, got {self.layers}")
            if self.d_model % self.heads:
                raise ValueError(f"d_model {self.d_model} is not divisible by {self.heads} heads")
            if self.ff and self.decoder_ff() < 0:
                raise ValueError(f"form cross takes its cross-attention out of the decoder's feed-forward: ff must be 0 or "
                                 f">= 2 d_model = {2 * self.d_model}, got {self.ff}")


class Mixer(nn.Module):
    """A recurrence over time, run in parallel (``forward``) or one step at a time (``step``): same function."""

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None, with_state: bool = False) -> tuple[torch.Tensor, State | None]:
        """x: [B,T,d], keep: [B,T] bool | None (None: every position) -> y [B,T,d] and, with ``with_state``, the
        state after the last position (what ``step`` would hold there)."""
        raise NotImplementedError

    def start(self, batch: int, like: torch.Tensor) -> State:
        """The state before the first position (zeros), on ``like``'s device."""
        raise NotImplementedError

    def step(self, x: torch.Tensor, state: State, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        """x: [B,d] one position, keep: [B] bool | None -> y [B,d] and the next state (unchanged where not kept)."""
        raise NotImplementedError


def hold(keep: torch.Tensor | None, new: State, old: State) -> State:
    """The next state where ``keep`` [B] is True, the old one elsewhere (an identity step)."""
    if keep is None:
        return new
    return tuple(torch.where(keep.view(-1, *([1] * (n.dim() - 1))), n, o) for n, o in zip(new, old, strict=True))


class Block(nn.Module):
    """Pre-norm residual block: mixer, then (cross form's decoder) cross-attention, then feed-forward."""

    def __init__(self, cfg: ScanConfig, mixer: Mixer, cross: bool) -> None:
        super().__init__()
        d = cfg.d_model
        self.ln_mix = nn.LayerNorm(d)
        self.mixer = mixer
        self.cross = MultiHeadAttention(d, cfg.heads, cfg.dropout, cross=True) if cross else None
        self.ln_cross = nn.LayerNorm(d) if cross else None
        ff = cfg.decoder_ff() if cross and cfg.ff else cfg.ff
        self.ff = FeedForward(d, ff, cfg.dropout) if ff else None
        self.ln_ff = nn.LayerNorm(d) if ff else None
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None, memory: Memory | None = None,
                with_state: bool = False) -> tuple[torch.Tensor, State | None]:
        """x: [B,T,d] -> [B,T,d] and the mixer's final state (``with_state``)."""
        y, state = self.mixer(self.ln_mix(x), keep, with_state)
        x = x + self.drop(y)
        if self.cross is not None:
            x = x + self.drop(self._attend(x, memory)[0])
        if self.ff is not None:
            x = x + self.drop(self.ff(self.ln_ff(x)))
        return x, state

    def step(self, x: torch.Tensor, state: State, keep: torch.Tensor | None = None, memory: Memory | None = None,
             weights: bool = False) -> tuple[torch.Tensor, State, torch.Tensor | None]:
        """x: [B,d] one position -> [B,d], the next state, and (``weights``) the cross-attention [B,1,S]."""
        y, state = self.mixer.step(self.ln_mix(x), state, keep)
        x = x + self.drop(y)
        w = None
        if self.cross is not None:
            a, w = self._attend(x.unsqueeze(1), memory, weights)
            x = x + self.drop(a.squeeze(1))
        if self.ff is not None:
            x = x + self.drop(self.ff(self.ln_ff(x)))
        return x, state, w

    def _attend(self, x: torch.Tensor, memory: Memory | None, weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: [B,T,d] -> cross-attention output [B,T,d] and (``weights``) its weights averaged over heads [B,T,S]."""
        assert memory is not None and self.cross is not None and self.ln_cross is not None
        k, v = memory.kv[self]
        q = self.cross.split(self.cross.q(self.ln_cross(x)))  # [B,h,T,dh]
        out = self.cross.attend(q, k, v, bias=memory.bias)
        return out, MultiHeadAttention.weights(q, k, memory.bias).mean(dim=1) if weights else None


@dataclass
class Memory:
    """What a cross-form decoder attends to: each decoder block's keys and values [B,h,S,dh] of the encoder's
    outputs (projected once per source), and the source padding as an additive bias [B,1,1,S] (0 or -inf)."""

    kv: dict[Block, tuple[torch.Tensor, torch.Tensor]]
    bias: torch.Tensor

    def tensors(self) -> Iterator[torch.Tensor]:
        for k, v in self.kv.values():
            yield from (k, v)
        yield self.bias


@dataclass
class DecodeState:
    """Everything greedy decoding carries from one step to the next: each block's recurrent state and, in the
    cross form, the encoder memory. Its size does not depend on how many tokens have been decoded."""

    layers: list[State]
    memory: Memory | None = None

    def tensors(self) -> tuple[torch.Tensor, ...]:
        out = [t for s in self.layers for t in s]
        if self.memory is not None:
            out += list(self.memory.tensors())
        return tuple(out)


def right_justify(src: torch.Tensor, src_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's padding in front of its tokens: src, src_mask [B,S] (right-padded) -> the same [B,S]
    left-padded. A gather by device-side lengths: no host sync, any batch."""
    B, S = src.shape
    shift = S - src_mask.sum(dim=1, keepdim=True)  # [B,1] padding of each row
    idx = torch.arange(S, device=src.device).unsqueeze(0) - shift  # [B,S] where each column's token comes from
    keep = idx >= 0
    return src.gather(1, idx.clamp(min=0)).masked_fill(~keep, 0), keep


class ScanSeq2Seq(Seq2Seq):
    """A stack of ``Block``s around a mixer, in either form (module docstring). Subclasses give ``mixer``."""

    def __init__(self, cfg: ScanConfig) -> None:
        super().__init__()
        cfg.check()
        self.cfg = cfg
        d, V = cfg.d_model, cfg.vocab_size
        self.embed = nn.Embedding(V, d, padding_idx=0)  # one table: source and target share the characters
        if cfg.form == "prefix":
            self.stack = nn.ModuleList(Block(cfg, self.mixer(cfg), cross=False) for _ in range(cfg.layers))
            self.encoder = self.decoder = None
            self.enc_norm = None
        else:
            self.stack = None
            self.encoder = nn.ModuleList(Block(cfg, self.mixer(cfg), cross=False) for _ in range(cfg.layers // 2))
            self.decoder = nn.ModuleList(Block(cfg, self.mixer(cfg), cross=True) for _ in range(cfg.layers // 2))
            self.enc_norm = nn.LayerNorm(d)
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(d, V)

    def mixer(self, cfg: ScanConfig) -> Mixer:
        raise NotImplementedError

    # --- the parallel path: training (teacher forcing) and prefill ------------------------------------------

    @staticmethod
    def _run(blocks: nn.ModuleList, x: torch.Tensor, keep: torch.Tensor | None, memory: Memory | None = None,
             with_state: bool = False) -> tuple[torch.Tensor, list[State]]:
        states = []
        for blk in blocks:
            x, s = blk(x, keep, memory, with_state)
            states.append(s)
        return x, states

    def _memory(self, src: torch.Tensor, src_mask: torch.Tensor, parallel: bool = True) -> Memory:
        """Cross form: encode the source (by scan, or step by step) -> each decoder block's keys/values and the bias."""
        assert self.encoder is not None and self.decoder is not None and self.enc_norm is not None
        x = self.drop(self.embed(src))  # [B,S,d]
        if parallel:
            x, _ = self._run(self.encoder, x, src_mask)
        else:
            x, _ = self._steps(self.encoder, x, src_mask, [blk.mixer.start(src.size(0), x) for blk in self.encoder])
        mem = self.enc_norm(x)  # padded positions hold finite values no one reads: every attention masks them
        bias = torch.zeros(src_mask.shape, dtype=mem.dtype, device=mem.device).masked_fill(~src_mask, float("-inf"))[:, None, None, :]
        return Memory({blk: blk.cross.project_kv(mem) for blk in self.decoder}, bias)

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """src: [B,S], src_mask: [B,S], tgt_in: [B,T] (BOS first) -> logits [B,T,V]."""
        T = tgt_in.size(1)
        if self.stack is not None:
            src, keep = right_justify(src, src_mask)  # [B,S]: padding first, as identity steps
            keep = torch.cat([keep, torch.ones_like(tgt_in, dtype=torch.bool)], dim=1)  # [B,S+T]
            x, _ = self._run(self.stack, self.drop(self.embed(torch.cat([src, tgt_in], dim=1))), keep)
            return self.out(self.norm(x[:, -T:]))
        memory = self._memory(src, src_mask)
        x, _ = self._run(self.decoder, self.drop(self.embed(tgt_in)), None, memory)
        return self.out(self.norm(x))

    # --- the recurrent path: decoding ----------------------------------------------------------------------

    def _steps(self, blocks: nn.ModuleList, x: torch.Tensor, keep: torch.Tensor | None, states: list[State],
               memory: Memory | None = None) -> tuple[torch.Tensor, list[State]]:
        """The stack run one position after another: x [B,T,d] -> [B,T,d] and the states after the last position."""
        ys = []
        for t in range(x.size(1)):
            y = x[:, t]
            k = keep[:, t] if keep is not None else None
            for i, blk in enumerate(blocks):
                y, states[i], _ = blk.step(y, states[i], k, memory)
            ys.append(y)
        return torch.stack(ys, dim=1), states

    def prefill(self, src: torch.Tensor, src_mask: torch.Tensor, parallel: bool = True) -> DecodeState:
        """The decoding state after reading the source, ready for BOS: prefix form, the stack's state after the
        source; cross form, the encoder memory and the decoder's zero state. ``parallel``: by scan (what
        ``generate`` does), else one position at a time (the recurrence alone; tests compare the two)."""
        B = src.size(0)
        if self.stack is None:
            memory = self._memory(src, src_mask, parallel)
            like = memory.bias
            return DecodeState([blk.mixer.start(B, like) for blk in self.decoder], memory)
        src, keep = right_justify(src, src_mask)
        x = self.drop(self.embed(src))  # [B,S,d]
        if parallel:
            _, states = self._run(self.stack, x, keep, with_state=True)
        else:
            _, states = self._steps(self.stack, x, keep, [blk.mixer.start(B, x) for blk in self.stack])
        return DecodeState(states)

    def step(self, tok: torch.Tensor, state: DecodeState, weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """tok: [B] or [B,1] the previous token -> logits [B,1,V] and (cross form, ``weights``) the last decoder
        block's cross-attention [B,1,S]; ``state`` advances in place (its list of layer states)."""
        x = self.drop(self.embed(tok.view(-1)))  # [B,d]
        blocks = self.stack if self.stack is not None else self.decoder
        w = None
        for i, blk in enumerate(blocks):
            x, state.layers[i], w = blk.step(x, state.layers[i], None, state.memory, weights and i == len(blocks) - 1)
        return self.out(self.norm(x)).unsqueeze(1), w

    @torch.no_grad()
    def generate(self, src, src_mask, max_len, bos, eos, return_attention=False) -> Generation:
        """Greedy decoding by the recurrence: prefill by scan, then one ``step`` per token (``greedy_decode``)."""
        state = self.prefill(src, src_mask)
        maps = return_attention and self.stack is None
        return greedy_decode(lambda tok: self.step(tok, state, maps), src.size(0), max_len, bos, eos, src.device, maps)

    def decode_step(self, batch: int, src_len: int, max_len: int, return_attention: bool = False) -> ScanStep:
        """The recurrent decoding of ``generate`` as a fixed-shape step (:class:`ScanStep`): its state is fixed in size
        already, so it needs no cache to preallocate -- the harness can replay it as CUDA graphs (``bench.train.decode``)."""
        return ScanStep(self, batch, src_len, max_len, return_attention)

    def decode_state(self, src: torch.Tensor, src_mask: torch.Tensor, max_len: int) -> tuple[torch.Tensor, ...]:
        """The tensors ``generate`` carries between steps: per block its recurrent state, plus (cross form) the
        encoder's keys, values and padding bias. The same for any ``max_len``: O(1) in the output length."""
        with torch.no_grad():
            return self.prefill(src, src_mask).tensors()


class ScanStep(DecodeStep):
    """Greedy decoding of a :class:`ScanSeq2Seq` as a fixed-shape step (``models.base.DecodeStep``).

    The recurrence already decodes from a state of fixed size, so the buffers are that state (per block, as the
    mixer's ``start`` shapes it), in the cross form the encoder's keys and values for ``src_len`` columns and
    their padding bias, the input token, the position and the outputs. ``load`` prefills by scan (as ``generate``
    does) and copies the result in; ``step`` runs the model's ``step`` and writes its new state back into the
    same buffers: no shape or address changes from one step to the next, no host sync.
    """

    def __init__(self, model: ScanSeq2Seq, batch: int, src_len: int, max_len: int, return_attention: bool = False) -> None:
        if min(batch, src_len, max_len) < 1:
            raise ValueError(f"batch, src_len and max_len must be >= 1, got {batch}, {src_len}, {max_len}")
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.model, self.batch, self.src_len, self.max_len = model, batch, src_len, max_len
        cfg = model.cfg
        blocks = model.stack if model.stack is not None else model.decoder
        # Plain tensors even when built under inference mode, so that eager code outside it may copy into them.
        with torch.inference_mode(False), torch.no_grad():
            like = torch.zeros(1, dtype=self.dtype, device=self.device)
            self.states = [blk.mixer.start(batch, like) for blk in blocks]  # each block's recurrent state
            self.memory: Memory | None = None
            if model.decoder is not None:
                h, dh = cfg.heads, cfg.d_model // cfg.heads
                new = dict(device=self.device, dtype=self.dtype)
                kv = {blk: (torch.zeros(batch, h, src_len, dh, **new), torch.zeros(batch, h, src_len, dh, **new)) for blk in model.decoder}
                self.memory = Memory(kv, torch.zeros(batch, 1, 1, src_len, **new))
            self.position = torch.zeros(1, dtype=torch.long, device=self.device)
            self.tok = torch.zeros(batch, 1, dtype=torch.long, device=self.device)
            self.tokens = torch.zeros(batch, max_len, dtype=torch.long, device=self.device)
            maps = return_attention and self.memory is not None  # the prefix form has no attention to map
            self.attention = torch.zeros(batch, max_len, src_len, dtype=self.dtype, device=self.device) if maps else None

    @torch.no_grad()
    def load(self, src: torch.Tensor, src_mask: torch.Tensor, bos: int) -> None:
        """Prefill a batch by scan and copy its decoding state into the buffers; reset position and token."""
        B0, S0 = src.shape
        if B0 > self.batch or S0 > self.src_len:
            raise ValueError(f"batch of {B0} x {S0} does not fit a decoder built for {self.batch} x {self.src_len}")
        state = self.model.prefill(src, src_mask)
        rows = torch.cat([torch.arange(B0, device=self.device), torch.zeros(self.batch - B0, dtype=torch.long, device=self.device)])
        for buf, new in zip(self.states, state.layers, strict=True):
            for b, n in zip(buf, new, strict=True):
                b.copy_(n.index_select(0, rows))
        if self.memory is not None and state.memory is not None:
            self.memory.bias.fill_(float("-inf"))  # padded columns: never attended
            self.memory.bias[..., :S0].copy_(state.memory.bias.index_select(0, rows))
            for blk, (bk, bv) in self.memory.kv.items():
                k, v = state.memory.kv[blk]
                bk[:, :, :S0].copy_(k.index_select(0, rows))
                bv[:, :, :S0].copy_(v.index_select(0, rows))
        self.tok.fill_(bos)
        self.position.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One greedy step on the buffers: fixed shapes, no host sync, every output written in place."""
        state = DecodeState(list(self.states), self.memory)
        logits, w = self.model.step(self.tok, state, weights=self.attention is not None)  # [B,1,V], [B,1,S] | None
        for buf, new in zip(self.states, state.layers, strict=True):
            for b, n in zip(buf, new, strict=True):
                b.copy_(n)
        nxt = logits[:, -1].argmax(-1, keepdim=True)  # [B,1]
        self.tokens.index_copy_(1, self.position, nxt)
        if self.attention is not None and w is not None:
            self.attention.index_copy_(1, self.position, w.to(self.attention.dtype))
        self.tok.copy_(nxt)
        self.position.add_(1)
