"""Neural Turing Machine seq2seq (Graves, Wayne & Danihelka 2014, "Neural Turing Machines", arXiv:1410.5401).

An LSTM controller (stepped with ``nn.LSTMCell``) reads from and writes to an external memory of N slots
of width M through differentiable *heads*. Each head turns the controller output into an addressing
weighting over the slots in four stages (paper §3.3, Fig. 2):

1. content addressing  -- ``w_c = softmax(beta * cos(k, M[i]))``, key strength ``beta = softplus(.) >= 0``;
2. interpolation       -- ``w_g = g * w_c + (1 - g) * w_prev``, gate ``g = sigmoid(.)``;
3. convolutional shift -- ``w~[i] = sum_j w_g[j] s[i - j]`` (circular), ``s = softmax(.)`` over the allowed
   shifts ``-shift..+shift`` (the paper's -1, 0, +1);
4. sharpening          -- ``w[i] = w~[i]^gamma / sum_j w~[j]^gamma``, ``gamma = 1 + softplus(.) >= 1``.

A read head returns ``r = sum_i w[i] M[i]``; the write head erases then adds (§3.2):
``M[i] <- M[i] * (1 - w[i] e) + w[i] a`` with erase ``e = sigmoid(.)`` and add ``a = tanh(.)``.

Numerical choices follow Collier & Beel 2018 ("Implementing Neural Turing Machines", ICANN), who made the
NTM train reliably: memory initialised to a small constant (their best initialisation), learned initial
read vectors and weightings, head parameters clipped to ``[-clip, clip]``; and epsilons wherever the paper
divides (cosine similarity) or takes the log of a weighting that may be zero (sharpening, done as a softmax).
Each step reads ``M_{t-1}`` and then writes, as their implementation does. Under autocast only the controller
and the projections run in low precision; addressing and memory stay in float32.

As a seq2seq: the *encoder phase* feeds the embedded source tokens to the controller, one per step, with
the heads reading and writing -- the source is stored in memory; padded source steps leave every piece of
state (controller, memory, weightings, read vectors) untouched, row by row, so padding cannot change an
output. The *decoder phase* continues the same machine on ``tgt_in`` (BOS, then the previous target
token), and the logits come from the controller output and the read vectors (paper Fig. 1: the output is
a function of both). One input bit tells the controller which phase it is in, standing in for the paper's
delimiter channel (§4.1: the copy sequence is followed by a delimiter flag).

Attention maps (``generate(return_attention=True)``): an NTM has no attention over source positions, only
read weightings over memory slots. We map them back through the encoder's writes: with ``ww[b, s, n]`` the
write weighting at source step ``s``, renormalised per slot over the real source steps
(``ww_norm[b, s, n] = ww[b, s, n] / sum_s' ww[b, s', n]``: which source positions slot ``n`` was written
from), ``attention[b, t, s] = mean over read heads of sum_n read_w[b, t, n] * ww_norm[b, s, n]``, then each
row renormalised to sum to 1 over the real source positions (zero on padding; uniform if a row has no mass
at all). This ignores that later writes overwrite earlier ones (erase), so it reads "which source steps
wrote to the slots the head is reading", which is what a copy/reverse/sort alignment asks about.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from models.base import STOP_CHECK_EVERY, Generation, Seq2Seq, all_ended, check_step, finish
from models.options import NONNEGATIVE, POSITIVE, Range
from models.registry import ModelMeta, register

EPS = 1e-8  # cosine-similarity denominator, attention renormalisation
W_FLOOR = 1e-12  # weightings are floored before the sharpening's log: d(w^gamma)/d(gamma) = w^gamma log w


# --- addressing, as pure functions over a batch of heads ---------------------------------------------
# Shapes: memory [B,N,M]; K heads per call; keys [B,K,M]; weightings [B,K,N]; scalars [B,K,1].


def content_weights(memory: torch.Tensor, key: torch.Tensor, beta: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Content addressing (paper eq. 5-6): softmax over slots of beta * cosine(key, memory row).

    memory [B,N,M], key [B,K,M], beta [B,K,1] (>= 0) -> [B,K,N].
    """
    dot = torch.bmm(key, memory.transpose(1, 2))  # [B,K,N]
    # sqrt(sum x^2 + tiny) instead of .norm(): the norm's gradient is NaN at an all-zero vector.
    nk = key.pow(2).sum(-1, keepdim=True).add(eps * eps).sqrt()  # [B,K,1]
    nm = memory.pow(2).sum(-1).add(eps * eps).sqrt().unsqueeze(1)  # [B,1,N]
    cos = dot / (nk * nm).clamp_min(eps)
    return torch.softmax(beta * cos, dim=-1)


def interpolate(w_content: torch.Tensor, w_prev: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Interpolation gate (eq. 7): g = 1 takes the content weighting, g = 0 keeps the previous one.

    w_content, w_prev [B,K,N], g [B,K,1] in [0, 1] -> [B,K,N].
    """
    return g * w_content + (1 - g) * w_prev


def shift(w: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Circular convolution with the shift distribution (eq. 8): w~[i] = sum_k s[k] w[i - k].

    w [B,K,N], s [B,K,2r+1] over shifts -r..+r (sums to 1) -> [B,K,N]. A shift of +1 moves a one-hot
    weighting one slot up, the last slot wrapping to the first. Done as a 1-D convolution with a per-head
    kernel: circular padding by r on both sides, sliding windows (``unfold``, a view), and the flipped
    kernel (window position d holds w[i - r + d], the term of shift k = r - d).
    """
    r = (s.size(-1) - 1) // 2
    if r == 0:
        return w * s
    padded = torch.cat([w[..., -r:], w, w[..., :r]], dim=-1)  # [B,K,N+2r]
    windows = padded.unfold(-1, 2 * r + 1, 1)  # [B,K,N,2r+1]
    return (windows * s.flip(-1).unsqueeze(-2)).sum(dim=-1)


def sharpen(w: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Sharpening (eq. 9): w^gamma renormalised; undoes the blur of the shift. gamma >= 1.

    w [B,K,N], gamma [B,K,1] -> [B,K,N]. Computed as ``softmax(gamma * log w)``, which is exactly
    ``w^gamma / sum_j w_j^gamma`` but renormalised stably (the softmax subtracts the maximum, so no sum can
    underflow and no eps is needed in the division); w is floored at ``W_FLOOR`` first because the
    gradient in gamma involves log w. It is also cheaper to differentiate than ``pow`` with a tensor exponent.
    """
    return torch.softmax(gamma * w.clamp_min(W_FLOOR).log(), dim=-1)


def address(
    memory: torch.Tensor, w_prev: torch.Tensor, key: torch.Tensor, beta: torch.Tensor, g: torch.Tensor, s: torch.Tensor, gamma: torch.Tensor
) -> torch.Tensor:
    """The full addressing pipeline (Fig. 2): content -> interpolation -> shift -> sharpening. -> [B,K,N]."""
    return sharpen(shift(interpolate(content_weights(memory, key, beta), w_prev, g), s), gamma)


def read(memory: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Read (eq. 2): memory [B,N,M], w [B,K,N] -> read vectors [B,K,M]."""
    return torch.bmm(w, memory)


def write(memory: torch.Tensor, w: torch.Tensor, erase: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    """Erase then add (eq. 3-4) for one write head: memory [B,N,M], w [B,N], erase/add [B,M] -> [B,N,M]."""
    w = w.unsqueeze(-1)  # [B,N,1]
    return memory * (1 - w * erase.unsqueeze(1)) + w * add.unsqueeze(1)


# --- the model ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NTMConfig:
    vocab_size: int = 0
    embed: int = 16  # character embedding width, as the book's models use
    hidden: int = 100  # LSTM controller width (the paper's LSTM-controller copy runs use 100)
    slots: int = 64  # N: memory locations (paper: 128); at least the longest source for one slot per token
    width: int = 20  # M: width of a memory location (paper: 20 for copy)
    read_heads: int = 1  # the paper's copy setting; the write head is always one
    shift: int = 1  # allowed location shifts -shift..+shift (paper: -1, 0, +1)
    init_memory: float = 1e-6  # constant initial memory (Collier & Beel 2018: the initialisation that trains best)
    clip: float = 20.0  # head parameters clipped to [-clip, clip] before their activations (Collier & Beel 2018)

    # models.options: the range of each option (refused before anything runs); init_memory: any finite number
    LIMITS: ClassVar[dict] = {"embed": POSITIVE, "hidden": POSITIVE, "slots": POSITIVE, "width": POSITIVE, "read_heads": POSITIVE,
                              "shift": NONNEGATIVE, "clip": Range(0, low_open=True)}


class NTMState(NamedTuple):
    h: torch.Tensor  # [B,H] controller output
    c: torch.Tensor  # [B,H] controller cell
    memory: torch.Tensor  # [B,N,M]
    read_w: torch.Tensor  # [B,R,N] read weightings of the last step
    write_w: torch.Tensor  # [B,N] write weighting of the last step
    reads: torch.Tensor  # [B,R*M] read vectors of the last step (the controller's next extra input)


class NTMSeq2Seq(Seq2Seq):
    """NTM with an LSTM controller run over the source (storing it) and then over the target (recalling it).

    ``generate`` returns the decoder's read weightings mapped to source positions through the encoder's
    write weightings (module docstring: attention maps), averaged over read heads.
    """

    def __init__(self, cfg: NTMConfig) -> None:
        super().__init__()
        if cfg.slots < 2 * cfg.shift + 1:
            raise ValueError(f"an NTM with shifts -{cfg.shift}..{cfg.shift} needs at least {2 * cfg.shift + 1} slots, got {cfg.slots}")
        if cfg.read_heads < 1 or cfg.width < 1 or cfg.hidden < 1:
            raise ValueError("an NTM needs read_heads, width and hidden >= 1")
        self.cfg = cfg
        H, N, M, R = cfg.hidden, cfg.slots, cfg.width, cfg.read_heads
        S = 2 * cfg.shift + 1
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed, padding_idx=0)
        self.controller = nn.LSTMCell(cfg.embed + 1 + R * M, H)  # token, phase bit, previous reads
        # Per head: key M, beta 1, g 1, shift S, gamma 1; the write head also erase M and add M.
        self._head = M + 3 + S
        self.heads = nn.Linear(H, (R + 1) * self._head + 2 * M)
        self.out = nn.Linear(H + R * M, cfg.vocab_size)
        self.init_reads = nn.Parameter(torch.randn(R * M) * 0.01)
        # Initial weightings: learned, starting focused on slot 0 (weight ~ N / (N + 1)) so that location
        # addressing has a definite place to start from (Collier & Beel 2018 learn them too).
        init_w = torch.zeros(R + 1, N)
        init_w[:, 0] = 2 * math.log(N)
        self.init_w_logits = nn.Parameter(init_w)

    # -- state ----------------------------------------------------------------------------------------------

    def initial_state(self, batch: int, device: torch.device) -> NTMState:
        cfg = self.cfg
        H, N, M, R = cfg.hidden, cfg.slots, cfg.width, cfg.read_heads
        zeros = torch.zeros(batch, H, device=device)
        w0 = torch.softmax(self.init_w_logits, dim=-1)  # [R+1,N]
        return NTMState(
            h=zeros,
            c=zeros,
            memory=torch.full((batch, N, M), cfg.init_memory, device=device),
            read_w=w0[:R].unsqueeze(0).expand(batch, R, N),
            write_w=w0[R].unsqueeze(0).expand(batch, N),
            reads=self.init_reads.unsqueeze(0).expand(batch, R * M),
        )

    def step(self, x: torch.Tensor, phase: float, st: NTMState) -> NTMState:
        """One NTM step. x: [B,E] embedded token; phase 0 (encoder) or 1 (decoder). -> the new state."""
        cfg = self.cfg
        B, M, R = x.size(0), cfg.width, cfg.read_heads
        inp = torch.cat([x, x.new_full((B, 1), phase), st.reads], dim=-1)
        h, c = self.controller(inp, (st.h, st.c))
        p = self.heads(h).float().clamp(-cfg.clip, cfg.clip)
        # Addressing and memory stay in float32 under autocast: cosine norms, powers and renormalisations
        # underflow in half precision (an eps of 1e-16 is 0 in fp16), and the memory accumulates over steps.
        off = torch.autocast(device_type=x.device.type, enabled=False) if torch.amp.is_autocast_available(x.device.type) else nullcontext()
        with off:  # (no autocast to turn off on a device without one, e.g. meta: shapes only)
            heads = p[:, : (R + 1) * self._head].view(B, R + 1, self._head)  # [B,R+1,head]; read heads first
            key = heads[..., :M]  # [B,R+1,M]
            beta = F.softplus(heads[..., M : M + 1])  # [B,R+1,1]
            g = torch.sigmoid(heads[..., M + 1 : M + 2])
            gamma = 1 + F.softplus(heads[..., M + 2 : M + 3])
            s = torch.softmax(heads[..., M + 3 :], dim=-1)  # [B,R+1,2r+1]
            w_prev = torch.cat([st.read_w, st.write_w.unsqueeze(1)], dim=1)  # [B,R+1,N]
            w = address(st.memory, w_prev, key, beta, g, s, gamma)  # [B,R+1,N]
            read_w, write_w = w[:, :R], w[:, R]
            reads = read(st.memory, read_w).reshape(B, R * M)  # reads see M_{t-1}
            erase = torch.sigmoid(p[:, -2 * M : -M])
            add = torch.tanh(p[:, -M:])
            memory = write(st.memory, write_w, erase, add)
        return NTMState(h, c, memory, read_w, write_w, reads)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> tuple[NTMState, torch.Tensor]:
        """Run the source through the machine. -> (state after the last real token, write weightings [B,S,N],
        zero at padding)."""
        st = self.initial_state(src.size(0), src.device)
        x = self.embed(src)  # [B,S,E]
        writes = []
        # Columns without padding skip the masking (same values, fewer kernels). Reading that off the mask is
        # free on the CPU; on an accelerator it would be a host sync, which a CUDA graph cannot hold: mask all.
        full = src_mask.all(dim=0).tolist() if src.device.type == "cpu" else [False] * src.size(1)
        for s in range(src.size(1)):
            new = self.step(x[:, s], 0.0, st)
            if full[s]:
                st = new
                writes.append(new.write_w)
                continue
            m = src_mask[:, s]  # [B]
            # Padding leaves the row's whole state untouched (exactly: where, not a blend).
            st = NTMState(*(torch.where(m.view(-1, *([1] * (a.dim() - 1))), a, b) for a, b in zip(new, st, strict=True)))
            writes.append(new.write_w * m.unsqueeze(-1))
        ww = torch.stack(writes, dim=1) if writes else src.new_zeros((src.size(0), 0, self.cfg.slots), dtype=torch.float)
        return st, ww

    def _features(self, st: NTMState) -> torch.Tensor:
        return torch.cat([st.h, st.reads], dim=-1)  # [B,H+R*M]: what the output layer sees (paper Fig. 1)

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        st, _ = self.encode(src, src_mask)
        x = self.embed(tgt_in)  # [B,T,E]
        feats = []
        for t in range(tgt_in.size(1)):
            st = self.step(x[:, t], 1.0, st)
            feats.append(self._features(st))
        return self.out(torch.stack(feats, dim=1))  # [B,T,V], one projection for all steps

    @staticmethod
    def source_attention(read_w: torch.Tensor, write_w: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        """Map read weightings over slots to weights over source positions (module docstring).

        read_w [B,T,R,N], write_w [B,S,N] (zero at padding), src_mask [B,S] -> [B,T,S], rows summing to 1
        over the real source positions, zero on padding.
        """
        with torch.autocast(device_type=read_w.device.type, enabled=False):  # float32, like the addressing
            ww = write_w.float() * src_mask.unsqueeze(-1)
            ww_norm = ww / (ww.sum(dim=1, keepdim=True) + EPS)  # per slot, over source steps
            att = torch.einsum("btrn,bsn->bts", read_w.float(), ww_norm) / read_w.size(2)
            att = att * src_mask.unsqueeze(1)
            total = att.sum(dim=-1, keepdim=True)
            uniform = src_mask.unsqueeze(1).float() / src_mask.sum(-1).clamp(min=1).view(-1, 1, 1)
            return torch.where(total > EPS, att / total.clamp_min(EPS), uniform)

    @torch.no_grad()
    def generate(self, src, src_mask, max_len, bos, eos, return_attention=False) -> Generation:
        st, ww = self.encode(src, src_mask)
        B = src.size(0)
        tok = torch.full((B,), bos, dtype=torch.long, device=src.device)
        ended = torch.zeros(B, dtype=torch.bool, device=src.device)
        tokens, reads_w = [], []
        for t in range(max_len):
            st = self.step(self.embed(tok), 1.0, st)
            tok = self.out(self._features(st)).argmax(-1)  # [B]
            tokens.append(tok)
            if return_attention:
                reads_w.append(st.read_w)
            if check_step(t, max_len) and all_ended(torch.stack(tokens[-STOP_CHECK_EVERY:], dim=1), eos, ended):
                break  # every row has ended: the remaining steps would only add PAD (base.STOP_CHECK_EVERY)
        out = torch.stack(tokens, dim=1) if tokens else src.new_zeros(B, 0)
        att = self.source_attention(torch.stack(reads_w, dim=1), ww, src_mask) if return_attention and reads_w else None
        return finish(out, att, eos, max_len)


register(
    "ntm",
    NTMSeq2Seq,
    NTMConfig,
    {
        "tiny": NTMConfig(embed=16, hidden=80, slots=32, width=16),
        "small": NTMConfig(embed=32, hidden=256, slots=64, width=32),
        "base": NTMConfig(embed=64, hidden=768, slots=128, width=64),
        # GPU sizes: the budget goes to the controller (one LSTM cell: 4 H^2 weights), as it must -- the memory
        # holds no parameters. 256 slots of 128 hold a 256-token source one slot per token.
        "large": NTMConfig(embed=256, hidden=1984, slots=256, width=128),
        "xl": NTMConfig(embed=256, hidden=4736, slots=256, width=128),
    },
    "Neural Turing Machine: LSTM controller with content + location addressed memory (Graves et al. 2014)",
    ModelMeta(cost=45, attention=True),
)
