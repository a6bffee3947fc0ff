"""Encoder-decoder Transformer (Vaswani et al. 2017, "Attention Is All You Need"; book §8.5.2) with
pre-layer-norm residual blocks and KV-cached incremental decoding.

* Pre-norm (``x + f(LN(x))``, Xiong et al. 2020 "On Layer Normalization in the Transformer
  Architecture"; Wang et al. 2019): trains without learning-rate warm-up, which matters for a benchmark
  that trains every model with the same optimiser. A final LayerNorm closes each stack.
* Attention runs through ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels on GPU
  and CPU). Masks: source key padding in encoder self-attention and in cross-attention; a causal mask
  in decoder self-attention. Targets are right-padded, so under the causal mask no real target position
  ever attends to target padding -- padded target positions produce logits the loss ignores.
* Positions: sinusoidal (Vaswani §3.5; no parameters) or learned (Gehring et al. 2017), from a table of
  ``max_positions`` rows: 4096 by default for sinusoids (a buffer; enough for 1024-token sweeps tested at
  twice the length), 512 for learned positions (parameters). ``models.longest_sequence`` reports it, so a
  harness can refuse a longer sweep point before running it.
* Embeddings are scaled by sqrt(d_model) (Vaswani §3.4) and initialised with std d_model^-1/2. The
  output projection is not tied to the embedding: with a character vocabulary the saving is negligible.

``generate`` decodes greedily with a cache (Ott et al. 2019 fairseq; the standard incremental decoding):
the self-attention keys/values of every decoder layer are written into preallocated buffers one step at
a time, and the cross-attention keys/values are projected from the encoder memory once. Step t then
computes one new position (attending over t cached ones) instead of re-running the decoder over all t
positions and re-projecting the memory; ``generate(..., use_cache=False)`` is that uncached
re-decoding, kept for tests and the benchmark (tests/benchmarks/test_transformer_cache.py).

``decode_step`` (:class:`TransformerStep`, the optional ``models.base.DecodeStep``) is the same cached
decoding with fixed shapes -- a cache preallocated at the full length, the position a device tensor,
attention over the whole cache under a mask -- so that a harness can replay one decoder step with fixed
kernels on fixed addresses (``bench.train.decode`` captures it as a CUDA graph), one launch per token
(docs/design.md, "On a GPU: measure the architecture, not the launches"). Same tokens.

Attention maps (``return_attention=True``): the cross-attention weights of the *last* decoder layer,
averaged over heads -- the layer closest to the prediction, as in the usual Transformer alignment
visualisations; averaging over heads gives one map that sums to 1 over the real source positions. SDPA
returns no weights, so they are computed explicitly, and only when asked: the fast path stays fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from models.base import STOP_CHECK_EVERY, DecodeStep, Generation, Seq2Seq, all_ended, check_step, finish
from models.options import DROPOUT, POSITIVE
from models.registry import ModelMeta, register

POSITIONS = ("sinusoidal", "learned")  # position encodings (TransformerConfig.positions)
SINUSOIDAL_POSITIONS = 4096  # default table length for sinusoids: 4096 x d_model floats, no parameters
LEARNED_POSITIONS = 512  # default for learned positions: 512 x d_model parameters


@dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int = 0
    d_model: int = 64  # residual stream width
    heads: int = 4  # attention heads; d_model / heads is each head's width
    enc_layers: int = 2  # encoder blocks (Vaswani: 6)
    dec_layers: int = 2  # decoder blocks (Vaswani: 6)
    ff: int = 256  # feed-forward hidden width; Vaswani use 4 * d_model
    dropout: float = 0.1  # on attention weights, sublayer outputs and embeddings (Vaswani §5.4: 0.1)
    positions: str = "sinusoidal"  # "sinusoidal" (no parameters) | "learned" (adds max_positions * d_model)
    # Longest source or target (BOS/EOS included) the position table covers. None: SINUSOIDAL_POSITIONS for
    # sinusoids -- a buffer, no parameters, long enough for the 1024-token sweeps and their 2x test lengths --
    # and LEARNED_POSITIONS for a learned table, whose rows are parameters (kept at its old size, so a
    # learned variant's parameter count did not move). Set it to cover longer sequences.
    max_positions: int | None = None

    def position_table(self) -> int:
        """Rows of the position table: ``max_positions``, or the default for the kind of positions."""
        if self.max_positions is not None:
            return self.max_positions
        return LEARNED_POSITIONS if self.positions == "learned" else SINUSOIDAL_POSITIONS

    def longest_sequence(self) -> int:
        """The registry's limit (``models.longest_sequence``): no source, teacher-forced target or
        ``generate(max_len=...)`` may be longer than the position table."""
        return self.position_table()

    # models.options: the range or choices of each option (refused before anything runs)
    LIMITS: ClassVar[dict] = {"d_model": POSITIVE, "heads": POSITIVE, "enc_layers": POSITIVE, "dec_layers": POSITIVE, "ff": POSITIVE,
                              "dropout": DROPOUT, "positions": POSITIONS, "max_positions": POSITIVE}


def sinusoids(n: int, d: int) -> torch.Tensor:
    """Vaswani §3.5: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(...) -> [n, d]."""
    pos = torch.arange(n, dtype=torch.float32).unsqueeze(1)  # [n,1]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10_000.0) / d))  # [d/2]
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: d // 2])
    return pe


class MultiHeadAttention(nn.Module):
    """Multi-head attention on SDPA.

    Self-attention projects queries, keys and values from ``x`` in one matmul (``qkv``); cross-attention
    projects queries from ``x`` (``q``) and keys/values from the memory (``kv``), so the memory side can
    be projected once per sequence. Masks are *additive* float biases [B,1,1,S] (0 = may attend, -inf =
    padding), built once per batch: a boolean mask would be converted inside SDPA at every call.
    """

    def __init__(self, d: int, heads: int, dropout: float, cross: bool) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"d_model {d} is not divisible by {heads} heads")
        self.heads, self.dropout = heads, dropout
        if cross:
            self.q = nn.Linear(d, d)
            self.kv = nn.Linear(d, 2 * d)
        else:
            self.qkv = nn.Linear(d, 3 * d)
        self.o = nn.Linear(d, d)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """[B,T,d] -> [B,h,T,d/h]."""
        B, T, d = x.shape
        return x.view(B, T, self.heads, d // self.heads).transpose(1, 2)

    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Self-attention: x [B,T,d] -> q, k, v [B,h,T,d/h]."""
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.split(q), self.split(k), self.split(v)

    def project_kv(self, mem: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-attention: mem [B,S,d] -> keys, values [B,h,S,d/h]."""
        k, v = self.kv(mem).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None, causal: bool = False
    ) -> torch.Tensor:
        """q: [B,h,T,dh], k/v: [B,h,S,dh], bias: [B,1,1,S] additive mask -> out [B,T,d]."""
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p, is_causal=causal)  # [B,h,T,dh]
        B, h, T, dh = y.shape
        return self.o(y.transpose(1, 2).reshape(B, T, h * dh))

    @staticmethod
    def weights(q: torch.Tensor, k: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """The softmax SDPA computes internally, made explicit: q [B,h,T,dh], k [B,h,S,dh] -> [B,h,T,S]."""
        return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)) + bias, dim=-1)


class FeedForward(nn.Sequential):
    """Position-wise feed-forward block (Vaswani §3.3): Linear -> ReLU -> dropout -> Linear."""

    def __init__(self, d: int, ff: int, dropout: float) -> None:
        super().__init__(nn.Linear(d, ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff, d))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = MultiHeadAttention(d, cfg.heads, cfg.dropout, cross=False)
        self.ff = FeedForward(d, cfg.ff, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """x: [B,S,d], bias: [B,1,1,S] (source key padding) -> [B,S,d]."""
        x = x + self.drop(self.attn.attend(*self.attn.project_qkv(self.ln1(x)), bias=bias))
        return x + self.drop(self.ff(self.ln2(x)))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = MultiHeadAttention(d, cfg.heads, cfg.dropout, cross=False)
        self.cross_attn = MultiHeadAttention(d, cfg.heads, cfg.dropout, cross=True)
        self.ff = FeedForward(d, cfg.ff, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        mem_kv: tuple[torch.Tensor, torch.Tensor],
        bias: torch.Tensor,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
        step: int | torch.Tensor = 0,
        cache_bias: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [B,T,d]; mem_kv: cross-attention keys/values [B,h,S,dh]; bias: [B,1,1,S] source key padding.

        Without ``cache``: the whole prefix at once under the causal mask. With ``cache`` (buffers
        [B,h,L,dh]): x is the single position ``step`` (T = 1); its key/value are written into the
        buffers and it attends to positions 0..step -- all in the past, so no mask is needed. When ``step``
        is a device tensor [1] (``TransformerStep``), it attends to all L positions instead, with
        ``cache_bias`` [1,1,1,L] (-inf after ``step``) masking the ones not written yet: fixed shapes, and no
        Python int that a CUDA graph would have to be captured again for.
        Returns the new x [B,T,d] and the cross-attention queries [B,h,T,dh] (for the attention maps).
        """
        q, k, v = self.self_attn.project_qkv(self.ln1(x))  # [B,h,T,dh] each
        if cache is None:
            a = self.self_attn.attend(q, k, v, causal=True)
        elif isinstance(step, torch.Tensor):
            ck, cv = cache
            ck.index_copy_(2, step, k)  # [B,h,L,dh] <- [B,h,1,dh] at position step
            cv.index_copy_(2, step, v)
            a = self.self_attn.attend(q, ck, cv, bias=cache_bias)
        else:
            ck, cv = cache
            ck[:, :, step : step + 1] = k
            cv[:, :, step : step + 1] = v
            a = self.self_attn.attend(q, ck[:, :, : step + 1], cv[:, :, : step + 1])
        x = x + self.drop(a)
        q = self.cross_attn.split(self.cross_attn.q(self.ln2(x)))  # [B,h,T,dh]
        x = x + self.drop(self.cross_attn.attend(q, *mem_kv, bias=bias))
        return x + self.drop(self.ff(self.ln3(x))), q


class Transformer(Seq2Seq):
    """Pre-norm encoder-decoder Transformer (Vaswani et al. 2017; Xiong et al. 2020) on SDPA."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        if cfg.positions not in POSITIONS:
            raise ValueError(f"unknown positions {cfg.positions!r}; use sinusoidal or learned")
        self.cfg = cfg
        d, V = cfg.d_model, cfg.vocab_size
        self.src_embed = nn.Embedding(V, d, padding_idx=0)
        self.tgt_embed = nn.Embedding(V, d, padding_idx=0)
        for emb in (self.src_embed, self.tgt_embed):  # times sqrt(d) below -> unit-variance inputs
            nn.init.normal_(emb.weight, std=d**-0.5)
            with torch.no_grad():
                emb.weight[0].zero_()
        if cfg.position_table() < 1:
            raise ValueError(f"max_positions must be >= 1, got {cfg.max_positions}")
        if cfg.positions == "learned":
            self.pos = nn.Embedding(cfg.position_table(), d)  # shared by encoder and decoder
            nn.init.normal_(self.pos.weight, std=0.02)
        else:
            self.register_buffer("pe", sinusoids(cfg.position_table(), d), persistent=False)  # [L,d]
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.dec_layers))
        self.enc_norm, self.dec_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(d, V)

    def _positions(self, start: int, n: int) -> torch.Tensor:
        """Position encodings for positions start..start+n-1 -> [n,d]."""
        if start + n > self.cfg.position_table():
            raise ValueError(f"sequence of {start + n} positions exceeds max_positions={self.cfg.position_table()}")
        if self.cfg.positions == "learned":
            return self.pos.weight[start : start + n]
        return self.pe[start : start + n]

    def _embed(self, emb: nn.Embedding, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        """ids [B,T] -> [B,T,d]: scaled token embedding + position encoding, dropout."""
        return self.drop(emb(ids) * math.sqrt(self.cfg.d_model) + self._positions(start, ids.size(1)))

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src, src_mask: [B,S] -> memory [B,S,d] and the source key-padding bias [B,1,1,S] (0 or -inf)."""
        x = self._embed(self.src_embed, src)
        bias = torch.zeros(src_mask.shape, dtype=x.dtype, device=x.device).masked_fill(~src_mask, float("-inf"))
        bias = bias[:, None, None, :]
        for layer in self.encoder:
            x = layer(x, bias)
        # Padded positions hold finite values no one reads: every attention over them is key-masked.
        return self.enc_norm(x), bias

    def _memory_kv(self, mem: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Cross-attention keys/values of every decoder layer, [B,h,S,dh] each."""
        return [layer.cross_attn.project_kv(mem) for layer in self.decoder]

    def _decode(self, tgt: torch.Tensor, mem: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The decoder over a whole target prefix: tgt [B,T], memory [B,S,d] -> logits [B,T,V], the last
        layer's cross-attention queries [B,h,T,dh] and keys [B,h,S,dh] (for the attention maps)."""
        x = self._embed(self.tgt_embed, tgt)
        mem_kv = self._memory_kv(mem)
        for layer, kv in zip(self.decoder, mem_kv, strict=True):
            x, q = layer(x, kv, bias)
        return self.out(self.dec_norm(x)), q, mem_kv[-1][0]

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        mem, bias = self.encode(src, src_mask)
        return self._decode(tgt_in, mem, bias)[0]  # [B,T,V]

    def position_table(self) -> torch.Tensor:
        """The position encodings of every position the model covers, [max_positions, d]."""
        return self.pos.weight if self.cfg.positions == "learned" else self.pe

    def decode_step(self, batch: int, src_len: int, max_len: int, return_attention: bool = False) -> TransformerStep:
        """The cached greedy decoding of ``generate`` as a fixed-shape step (:class:`TransformerStep`)."""
        return TransformerStep(self, batch, src_len, max_len, return_attention=return_attention)

    def _new_caches(self, mem: torch.Tensor, max_len: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The self-attention KV cache of cached decoding: keys and values [B,h,max_len,dh] per decoder layer."""
        B, h, dh = mem.size(0), self.cfg.heads, self.cfg.d_model // self.cfg.heads
        return [(mem.new_empty(B, h, max_len, dh), mem.new_empty(B, h, max_len, dh)) for _ in self.decoder]

    def decode_state(self, src: torch.Tensor, src_mask: torch.Tensor, max_len: int) -> tuple[torch.Tensor, ...]:
        """What cached ``generate`` carries between steps: the KV cache of ``max_len`` positions per decoder layer
        (growing with the output length), the cross-attention keys/values of the source and its padding bias."""
        with torch.no_grad():
            mem, bias = self.encode(src, src_mask)
            kv = [t for pair in self._memory_kv(mem) for t in pair]
            return (*kv, *[t for pair in self._new_caches(mem, max_len) for t in pair], bias)

    def generate(self, src, src_mask, max_len, bos, eos, return_attention=False, use_cache=True) -> Generation:
        """Greedy decoding, with the KV cache (default) or without.

        ``use_cache=False`` is the textbook loop (the Annotated Transformer's ``greedy_decode``): encode
        once, then at every step run the forward decoder over the whole prefix -- self-attention over all
        positions again and the cross-attention keys/values projected from the memory again. Same tokens,
        O(t) positions of work at step t instead of one; it exists to test and benchmark the cache.
        """
        if max_len > self.cfg.longest_sequence():  # refuse before any work, not at step max_positions
            raise ValueError(f"max_len {max_len} exceeds max_positions={self.cfg.longest_sequence()}")
        mem, bias = self.encode(src, src_mask)
        B = src.size(0)
        out = torch.empty(B, max_len + 1, dtype=torch.long, device=src.device)
        out[:, 0] = bos
        ended = torch.zeros(B, dtype=torch.bool, device=src.device)
        maps = []
        if use_cache:
            mem_kv = self._memory_kv(mem)  # cross-attention K/V: once per sequence, not per step
            caches = self._new_caches(mem, max_len)
        for t in range(max_len):
            if use_cache:
                x = self._embed(self.tgt_embed, out[:, t : t + 1], start=t)  # [B,1,d]
                for layer, kv, cache in zip(self.decoder, mem_kv, caches, strict=True):
                    x, q = layer(x, kv, bias, cache=cache, step=t)
                logits, k = self.out(self.dec_norm(x[:, -1])), mem_kv[-1][0]  # [B,V]
            else:
                logits, q, k = self._decode(out[:, : t + 1], mem, bias)
                logits, q = logits[:, -1], q[:, :, -1:]
            out[:, t + 1] = logits.argmax(-1)
            if return_attention:
                # Last decoder layer's cross-attention at this step, mean over heads: [B,1,S].
                maps.append(MultiHeadAttention.weights(q, k, bias).mean(dim=1))
            if check_step(t, max_len) and all_ended(out[:, t + 2 - STOP_CHECK_EVERY : t + 2], eos, ended):
                break  # every row has ended: the remaining steps would only add PAD (base.STOP_CHECK_EVERY)
        steps = t + 1 if max_len else 0
        return finish(out[:, 1 : steps + 1], torch.cat(maps, dim=1) if return_attention and maps else None, eos, max_len)


class TransformerStep(DecodeStep):
    """The Transformer's cached greedy decoding as a fixed-shape step (``models.base.DecodeStep``).

    The same computation as ``generate``'s cached loop, with what varies from step to step moved into
    tensors so that the shapes and addresses stay put:

    * the self-attention KV cache is preallocated for ``max_len`` positions, [B,h,L,dh] per layer; a step
      writes its key/value at the current position (``index_copy_``) and attends over the whole cache with
      an additive mask, -inf at the positions not written yet -- the softmax gives them weight exactly 0,
      so this is attention over the positions written so far;
    * the position is a device tensor ``position`` [1] that the step increments itself, and the position
      encoding is looked up by it (``index_select``): no Python int depends on it;
    * the cross-attention keys/values and the source bias are buffers that ``load`` fills from a batch's
      encoding; each step writes its token into the input of the next step and into ``tokens`` at the
      position (and, with maps, into ``attention``).

    The step runs in whatever precision the parameters and the caller's autocast give; the buffers are in
    the parameters' dtype. It reads the parameters where they are: updated in place (an optimizer step), it
    sees the new values; moved or replaced (``.to``), it needs building again.
    """

    def __init__(self, model: Transformer, batch: int, src_len: int, max_len: int, return_attention: bool = False) -> None:
        if max_len > model.cfg.longest_sequence():
            raise ValueError(f"max_len {max_len} exceeds max_positions={model.cfg.longest_sequence()}")
        if min(batch, src_len, max_len) < 1:
            raise ValueError(f"batch, src_len and max_len must be >= 1, got {batch}, {src_len}, {max_len}")
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.model, self.batch, self.src_len, self.max_len = model, batch, src_len, max_len
        cfg = model.cfg
        h, dh, L = cfg.heads, cfg.d_model // cfg.heads, max_len
        # Plain tensors even when built under inference mode, so that eager code outside it may copy into them.
        with torch.inference_mode(False), torch.no_grad():
            new = dict(device=self.device, dtype=self.dtype)
            # Zeros, not empty: a masked position's weight is exactly 0, but 0 * NaN (uninitialised memory) is NaN.
            self.caches = [(torch.zeros(batch, h, L, dh, **new), torch.zeros(batch, h, L, dh, **new)) for _ in model.decoder]
            self.mem_kv = [(torch.zeros(batch, h, src_len, dh, **new), torch.zeros(batch, h, src_len, dh, **new)) for _ in model.decoder]
            self.bias = torch.zeros(batch, 1, 1, src_len, **new)  # source key padding, 0 or -inf
            self.slots = torch.arange(L, device=self.device)  # [L] cache positions
            self.no_bias = torch.zeros(L, **new)  # [L] the cache mask before masking
            self.position = torch.zeros(1, dtype=torch.long, device=self.device)  # the step's position
            self.tok = torch.zeros(batch, 1, dtype=torch.long, device=self.device)  # the step's input token
            self.tokens = torch.zeros(batch, L, dtype=torch.long, device=self.device)  # output: token at each step
            self.attention = torch.zeros(batch, L, src_len, **new) if return_attention else None  # output: maps

    @torch.no_grad()
    def step(self) -> None:
        """One decoder step on the buffers: fixed shapes, no host sync, every output written in place."""
        m, pos = self.model, self.position
        x = m.tgt_embed(self.tok) * math.sqrt(m.cfg.d_model) + m.position_table().index_select(0, pos)  # [B,1,d]
        cache_bias = self.no_bias.masked_fill(self.slots > pos, float("-inf")).view(1, 1, 1, -1)  # [1,1,1,L]
        for layer, kv, cache in zip(m.decoder, self.mem_kv, self.caches, strict=True):
            x, q = layer(x, kv, self.bias, cache=cache, step=pos, cache_bias=cache_bias)
        nxt = m.out(m.dec_norm(x[:, -1])).argmax(-1, keepdim=True)  # [B,1]
        self.tokens.index_copy_(1, pos, nxt)
        if self.attention is not None:  # last decoder layer's cross-attention, mean over heads: [B,1,S]
            self.attention.index_copy_(1, pos, MultiHeadAttention.weights(q, self.mem_kv[-1][0], self.bias).mean(dim=1))
        self.tok.copy_(nxt)
        pos.add_(1)

    @torch.no_grad()
    def load(self, src: torch.Tensor, src_mask: torch.Tensor, bos: int) -> None:
        """Encode a batch and copy what the step reads into the buffers; reset position and token."""
        B0, S0 = src.shape
        if B0 > self.batch or S0 > self.src_len:
            raise ValueError(f"batch of {B0} x {S0} does not fit a decoder built for {self.batch} x {self.src_len}")
        m = self.model
        mem, bias = m.encode(src, src_mask)  # [B0,S0,d], [B0,1,1,S0]
        kvs = m._memory_kv(mem)
        rows = torch.cat([torch.arange(B0, device=self.device), torch.zeros(self.batch - B0, dtype=torch.long, device=self.device)])
        self.bias.fill_(float("-inf"))  # padded columns: never attended
        self.bias[..., :S0].copy_(bias.index_select(0, rows))
        for (bk, bv), (k, v) in zip(self.mem_kv, kvs, strict=True):
            bk[:, :, :S0].copy_(k.index_select(0, rows))
            bv[:, :, :S0].copy_(v.index_select(0, rows))
        self.tok.fill_(bos)
        self.position.zero_()


# Parameter counts at vocab 60 (models.BUDGET_VOCAB) are checked against models.BUDGETS in the tests.
register(
    "transformer",
    Transformer,
    TransformerConfig,
    {
        "tiny": TransformerConfig(d_model=32, heads=4, enc_layers=2, dec_layers=2, ff=64),
        "small": TransformerConfig(d_model=64, heads=4, enc_layers=3, dec_layers=3, ff=288),
        "base": TransformerConfig(d_model=192, heads=6, enc_layers=3, dec_layers=3, ff=768),
        # GPU sizes, heads 64 wide. large: Vaswani's base width with half the depth (ff 3.5 d keeps it in
        # budget); xl: 768 wide, 12 heads, 6 + 6 blocks, ff 4 d (Vaswani's layout at BERT-base width).
        "large": TransformerConfig(d_model=512, heads=8, enc_layers=3, dec_layers=3, ff=1792),
        "xl": TransformerConfig(d_model=768, heads=12, enc_layers=6, dec_layers=6, ff=3072),
    },
    "pre-norm encoder-decoder Transformer, SDPA attention, KV-cached greedy decoding",
    ModelMeta(cost=20, attention=True, recurrent=False),
)
