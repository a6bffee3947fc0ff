"""Attention seq2seq (book ch. 8) and its attention score functions.

The encoder returns *all* its hidden states; at every decoder step the decoder state scores each encoder
state, the softmax of the scores (over real source positions only) weights them into a context vector,
and context and decoder state together feed the output projection (book §8.2, Fig. 8-21). Scores:

* ``dot``      -- h_dec . h_enc (the book's choice; Luong et al. 2015 "dot");
* ``general``  -- h_dec . W h_enc (Luong et al. 2015 "general");
* ``additive`` -- v . tanh(W_d h_dec + W_e h_enc) (Bahdanau et al. 2015).

With teacher forcing the decoder LSTM runs fused over the whole target (no Python loop over time) and the
attention over all steps is one batched matmul.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from models.base import INITS, PACKS, Generation, Seq2Seq, greedy_decode, init_weights, last_valid, one_lstm_bias
from models.options import DROPOUT, POSITIVE
from models.registry import ModelMeta, register

SCORES = ("dot", "general", "additive")  # the score functions (module docstring)


class Attention(nn.Module):
    """Scores decoder states against encoder states and returns (context, weights).

    dec: [B,T,Hd], enc: [B,S,He], src_mask: [B,S] -> context [B,T,He], weights [B,T,S].
    """

    def __init__(self, score: str, dec_dim: int, enc_dim: int, attn_dim: int | None = None) -> None:
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"unknown attention score {score!r}; use dot, general or additive")
        if score == "dot" and dec_dim != enc_dim:
            raise ValueError(f"dot attention needs equal decoder and encoder widths ({dec_dim} != {enc_dim})")
        self.score = score
        if score == "general":
            self.w = nn.Linear(enc_dim, dec_dim, bias=False)
        elif score == "additive":
            a = attn_dim or dec_dim
            self.w_dec = nn.Linear(dec_dim, a, bias=False)
            self.w_enc = nn.Linear(enc_dim, a, bias=True)
            self.v = nn.Linear(a, 1, bias=False)

    def keys(self, enc: torch.Tensor) -> torch.Tensor:
        """Precompute the encoder side once per sequence (reused by every decoding step)."""
        if self.score == "general":
            return self.w(enc)  # [B,S,Hd]
        if self.score == "additive":
            return self.w_enc(enc)  # [B,S,A]
        return enc

    def forward(self, dec: torch.Tensor, enc: torch.Tensor, keys: torch.Tensor,
                src_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.score == "additive":
            # [B,T,1,A] + [B,1,S,A] -> [B,T,S]
            scores = self.v(torch.tanh(self.w_dec(dec).unsqueeze(2) + keys.unsqueeze(1))).squeeze(-1)
        else:
            scores = torch.bmm(dec, keys.transpose(1, 2))  # [B,T,S]
        scores = scores.masked_fill(~src_mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # [B,T,S]
        return torch.bmm(weights, enc), weights  # [B,T,He], [B,T,S]


@dataclass(frozen=True)
class AttentionConfig:
    vocab_size: int = 0
    embed: int = 16  # character embedding width; the book uses 16 (characters carry little meaning alone)
    hidden: int = 256  # LSTM width; the book uses 256
    bidirectional: bool = False  # book §8.4: each encoder state then also sees the characters after it
    score: str = "dot"  # dot (book) | general | additive
    dropout: float = 0.0
    # One embedding table read by encoder and decoder (the characters are the same on both sides); the book's
    # AttentionEncoder and AttentionDecoder each build their own (ch08/attention_seq2seq.py), as ch. 7's do.
    shared_embedding: bool = True
    # torch (PyTorch's defaults) | book (ch07/seq2seq.py, reused by ch. 8: N(0, 0.01^2) embeddings,
    # N(0, 1/fan_in) weights, zero biases)
    init: str = "torch"
    # The book's LSTM has one bias per gate; PyTorch's has two (b_ih + b_hh), which Adam moves twice as fast
    # together. True holds b_hh at zero (models.base.one_lstm_bias).
    one_bias: bool = False

    def host_sync(self) -> str | None:
        """Why a forward pass reads device values on the host (``models.host_sync``): no CUDA graph can hold it."""
        return f"the bidirectional encoder {PACKS}" if self.bidirectional else None

    # models.options: the range or choices of each option (--option score=cosine is refused before anything runs)
    LIMITS: ClassVar[dict] = {"embed": POSITIVE, "hidden": POSITIVE, "score": SCORES, "dropout": DROPOUT, "init": INITS}


class AttentionSeq2Seq(Seq2Seq):
    """Book ch. 8 ``AttentionSeq2seq`` in torch: LSTM encoder, LSTM decoder started from the encoder's last
    state (cell state zero, as the book does), attention over all encoder states.

    Size ``book`` is the book's code (ch08/attention_seq2seq.py): a separate embedding for each side
    (``shared_embedding=False``), the book's initialisation (``init="book"``) and one LSTM bias per gate
    (``one_bias=True``). The book's encoder also
    reads the padding spaces of its fixed-width lines and its attention weighs them: the data options
    ``keep_source_padding`` and ``fixed_length_target`` reproduce that (``bench.data.tasks.textfile``).

    ``generate`` returns the attention weights of each step: one map, no heads or layers to average.
    """

    def __init__(self, cfg: AttentionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        H = cfg.hidden
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed, padding_idx=0)  # the source's, and the target's if shared
        self.tgt_embed = None if cfg.shared_embedding else nn.Embedding(cfg.vocab_size, cfg.embed, padding_idx=0)
        if cfg.bidirectional:
            # Two directions of H/2 keep the encoder states H wide, so dot attention and the decoder fit.
            if H % 2:
                raise ValueError("a bidirectional encoder needs an even hidden size")
            self.encoder = nn.LSTM(cfg.embed, H // 2, batch_first=True, bidirectional=True)
        else:
            self.encoder = nn.LSTM(cfg.embed, H, batch_first=True)
        self.decoder = nn.LSTM(cfg.embed, H, batch_first=True)
        self.attention = Attention(cfg.score, H, H)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(2 * H, cfg.vocab_size)
        init_weights(self, cfg.init)
        if cfg.one_bias:
            one_lstm_bias(self)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """-> encoder states [B,S,H] (zero at padding) and the decoder's initial (h0, c0), each [1,B,H]."""
        x = self.drop(self.embed(src))  # [B,S,E]
        if self.cfg.bidirectional:
            # The backward direction would read the padding first: pack so it starts at the last real token.
            lengths = src_mask.sum(dim=1).clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, (h, _) = self.encoder(packed)
            hs, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
            h0 = torch.cat([h[0], h[1]], dim=-1)  # forward's last state || backward's state at position 0
        else:
            hs, _ = self.encoder(x)  # [B,S,H]
            h0 = last_valid(hs, src_mask)  # [B,H]
        hs = hs * src_mask.unsqueeze(-1)
        return hs, (h0.unsqueeze(0), torch.zeros_like(h0).unsqueeze(0))

    def _embed_target(self, ids: torch.Tensor) -> torch.Tensor:
        return (self.embed if self.tgt_embed is None else self.tgt_embed)(ids)

    def _project(self, dec_hs: torch.Tensor, enc: torch.Tensor, keys: torch.Tensor,
                 src_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        context, weights = self.attention(dec_hs, enc, keys, src_mask)
        return self.out(self.drop(torch.cat([context, dec_hs], dim=-1))), weights  # [B,T,V], [B,T,S]

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        enc, state = self.encode(src, src_mask)
        dec_hs, _ = self.decoder(self.drop(self._embed_target(tgt_in)), state)  # [B,T,H], fused over time
        logits, _ = self._project(dec_hs, enc, self.attention.keys(enc), src_mask)
        return logits

    @torch.no_grad()
    def generate(self, src, src_mask, max_len, bos, eos, return_attention=False) -> Generation:
        enc, state = self.encode(src, src_mask)
        keys = self.attention.keys(enc)

        def step(tok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            nonlocal state
            dec_h, state = self.decoder(self._embed_target(tok), state)  # [B,1,H]
            return self._project(dec_h, enc, keys, src_mask)  # [B,1,V], [B,1,S]

        return greedy_decode(step, src.size(0), max_len, bos, eos, src.device, return_attention)

    def decode_state(self, src: torch.Tensor, src_mask: torch.Tensor, max_len: int) -> tuple[torch.Tensor, ...]:
        """What ``generate`` carries between steps: the decoder LSTM's (h, c) and the encoder states it attends
        to, with their keys where the score has its own (``general``, ``additive``): O(source), not O(output)."""
        with torch.no_grad():
            enc, (h, c) = self.encode(src, src_mask)
            keys = self.attention.keys(enc)
            return (h, c, enc) if keys is enc else (h, c, enc, keys)

register(
    "attention",
    AttentionSeq2Seq,
    AttentionConfig,
    {
        "tiny": AttentionConfig(embed=16, hidden=64),
        "small": AttentionConfig(embed=32, hidden=200),
        "base": AttentionConfig(embed=64, hidden=576),
        "large": AttentionConfig(embed=256, hidden=1472),  # GPU sizes
        "xl": AttentionConfig(embed=256, hidden=3392),
        "book": AttentionConfig(embed=16, hidden=256, shared_embedding=False, init="book", one_bias=True),
    },
    "LSTM encoder-decoder with attention over all encoder states (book ch. 8)",
    ModelMeta(cost=10, attention=True, reference=True),
)
