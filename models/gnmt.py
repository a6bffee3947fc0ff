"""GNMT-style deep LSTM encoder-decoder with attention (Wu et al. 2016, "Google's Neural Machine
Translation System", §3; book §8.5.1, with the deepening and skip connections of book §8.4.3).

Encoder (Wu et al. §3.2, Fig. 3): the bottom layer is bidirectional -- each source state then also knows the
characters after it (book §8.4.1) -- and the layers above are left-to-right. Residual connections start
at the third layer (``residual_from=2``, 0-based): Wu et al. found stacks deeper than four layers hard to
train without them (§3.1). Dropout is applied to every layer's input.

Decoder: a stack of LSTMs with attention over the top encoder states. Where the attention is fed
(``attention_feed``):

* ``"gnmt"`` -- Wu et al. §3 (and the ``gnmt_v2`` variant of the TensorFlow NMT tutorial): the attention
  is computed from the *bottom* decoder layer's output and the context is concatenated to the input of
  every upper layer. Because the bottom layer's input is only the previous token, teacher forcing runs
  with no Python loop over time: bottom layer fused over all steps, attention batched over all steps,
  then each upper layer fused with the context concatenated.
* ``"output"`` -- Luong et al. 2015 (global attention, no input feeding): the whole stack runs first, the
  top layer's output attends, and ``tanh(W_c [context; h])`` feeds the output projection. Also fused.

The decoder starts from zero states: encoder and decoder depths may differ, so there is no one-to-one
state bridge, and all source information reaches the decoder through attention.

``generate`` returns the weights of the (single) attention module at each step: one map, no heads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from models.attention import SCORES, Attention
from models.base import PACKS, Generation, Seq2Seq, greedy_decode
from models.options import DROPOUT, NONNEGATIVE, POSITIVE
from models.registry import ModelMeta, register

FEEDS = ("gnmt", "output")  # where the attention context enters the decoder (GNMTConfig.attention_feed)
State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [1,B,H]


@dataclass(frozen=True)
class GNMTConfig:
    vocab_size: int = 0
    embed: int = 32  # character embedding width; characters need few dimensions (the book uses 16)
    hidden: int = 128  # width of every LSTM layer (the bidirectional bottom layer: hidden/2 per direction)
    enc_layers: int = 4  # encoder depth including the bidirectional bottom layer (Wu et al.: 8)
    dec_layers: int = 4  # decoder depth (Wu et al.: 8); "gnmt" feeding needs >= 2
    attention_feed: str = "gnmt"  # "gnmt": bottom layer attends, context to upper layers | "output": Luong, top layer
    score: str = "additive"  # Wu et al. score with a one-hidden-layer feed-forward net, i.e. Bahdanau's additive
    residual_from: int = 2  # first 0-based layer with a residual connection; Wu et al. start at the third
    dropout: float = 0.1  # on every layer's input and the projection input (Wu et al. use 0.2-0.3 on big data)

    def host_sync(self) -> str | None:
        """Why a forward pass reads device values on the host (``models.host_sync``): no CUDA graph can hold it."""
        return f"the bidirectional bottom encoder layer {PACKS}"

    # models.options: the range or choices of each option (refused before anything runs)
    LIMITS: ClassVar[dict] = {"embed": POSITIVE, "hidden": POSITIVE, "enc_layers": POSITIVE, "dec_layers": POSITIVE,
                              "attention_feed": FEEDS, "score": SCORES, "residual_from": NONNEGATIVE, "dropout": DROPOUT}


class GNMT(Seq2Seq):
    """Deep residual LSTM encoder-decoder with attention (Wu et al. 2016)."""

    def __init__(self, cfg: GNMTConfig) -> None:
        super().__init__()
        if cfg.attention_feed not in FEEDS:
            raise ValueError(f"unknown attention_feed {cfg.attention_feed!r}; use gnmt or output")
        if cfg.hidden % 2:
            raise ValueError("the bidirectional bottom layer needs an even hidden size (hidden/2 per direction)")
        if cfg.enc_layers < 1 or cfg.dec_layers < (2 if cfg.attention_feed == "gnmt" else 1):
            raise ValueError("need >= 1 encoder layer and >= 1 decoder layer (>= 2 with attention_feed='gnmt')")
        self.cfg = cfg
        E, H, V = cfg.embed, cfg.hidden, cfg.vocab_size
        self.src_embed = nn.Embedding(V, E, padding_idx=0)
        self.tgt_embed = nn.Embedding(V, E, padding_idx=0)
        # Two directions of H/2 keep every encoder layer H wide, so residuals need no projection.
        enc = [nn.LSTM(E, H // 2, batch_first=True, bidirectional=True)]
        enc += [nn.LSTM(H, H, batch_first=True) for _ in range(cfg.enc_layers - 1)]
        self.encoder = nn.ModuleList(enc)
        if cfg.attention_feed == "gnmt":
            # Upper layers read [layer below; context] (H + H).
            dec = [nn.LSTM(E, H, batch_first=True)] + [nn.LSTM(2 * H, H, batch_first=True) for _ in range(cfg.dec_layers - 1)]
            self.combine = None
        else:
            dec = [nn.LSTM(E, H, batch_first=True)] + [nn.LSTM(H, H, batch_first=True) for _ in range(cfg.dec_layers - 1)]
            self.combine = nn.Linear(2 * H, H)  # Luong et al. eq. 5: h~ = tanh(W_c [c; h])
        self.decoder = nn.ModuleList(dec)
        self.attention = Attention(cfg.score, H, H)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(H, V)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        """src: [B,S], src_mask: [B,S] -> top encoder states [B,S,H], zero at padding."""
        x = self.drop(self.src_embed(src))  # [B,S,E]
        # The backward direction would read the padding first: pack so it starts at the last real token.
        # Packing needs CPU lengths -- the one host-device synchronisation in forward, accepted for packing.
        lengths = src_mask.sum(dim=1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.encoder[0](packed)
        x, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=src.size(1))  # [B,S,H], 0 at pads
        for i, layer in enumerate(self.encoder[1:], start=1):
            # Left-to-right over right-padded input: outputs at real positions never see the padding.
            y, _ = layer(self.drop(x))  # [B,S,H]
            x = y + x if i >= self.cfg.residual_from else y
        return x * src_mask.unsqueeze(-1)  # [B,S,H]

    def _decode(
        self, tgt: torch.Tensor, enc: torch.Tensor, keys: torch.Tensor, src_mask: torch.Tensor, states: list[State | None]
    ) -> tuple[torch.Tensor, torch.Tensor, list[State | None]]:
        """tgt: [B,T] ids, enc: [B,S,H], keys: attention keys of enc, states: per layer (h,c) or None (zeros)
        -> logits [B,T,V], attention weights [B,T,S], new states.

        Every layer runs fused over the T steps; the same code serves teacher forcing and T = 1 decoding.
        """
        res = self.cfg.residual_from
        new: list[State | None] = []
        x = self.tgt_embed(tgt)  # [B,T,E]
        if self.combine is None:  # "gnmt": bottom layer attends, context feeds every upper layer
            x, s = self.decoder[0](self.drop(x), states[0])  # [B,T,H]
            new.append(s)
            ctx, w = self.attention(x, enc, keys, src_mask)  # [B,T,H], [B,T,S] batched over all steps
            for i, layer in enumerate(self.decoder[1:], start=1):
                y, s = layer(self.drop(torch.cat([x, ctx], dim=-1)), states[i])  # [B,T,H]
                new.append(s)
                x = y + x if i >= res else y
        else:  # "output": Luong-style attention on the top layer's output
            for i, layer in enumerate(self.decoder):
                y, s = layer(self.drop(x), states[i])
                new.append(s)
                x = y + x if i >= res else y
            ctx, w = self.attention(x, enc, keys, src_mask)
            x = torch.tanh(self.combine(torch.cat([ctx, x], dim=-1)))  # [B,T,H]
        return self.out(self.drop(x)), w, new

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        enc = self.encode(src, src_mask)
        logits, _, _ = self._decode(tgt_in, enc, self.attention.keys(enc), src_mask, [None] * len(self.decoder))
        return logits  # [B,T,V]

    @torch.no_grad()
    def generate(self, src, src_mask, max_len, bos, eos, return_attention=False) -> Generation:
        enc = self.encode(src, src_mask)
        keys = self.attention.keys(enc)  # the encoder side of the scores, once per sequence
        states: list[State | None] = [None] * len(self.decoder)

        def step(tok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            nonlocal states
            logits, w, states = self._decode(tok, enc, keys, src_mask, states)  # [B,1,V], [B,1,S]
            return logits, w

        return greedy_decode(step, src.size(0), max_len, bos, eos, src.device, return_attention)

register(
    "gnmt",
    GNMT,
    GNMTConfig,
    {
        "tiny": GNMTConfig(embed=16, hidden=30, enc_layers=3, dec_layers=3),
        "small": GNMTConfig(embed=32, hidden=74, enc_layers=4, dec_layers=4),
        "base": GNMTConfig(embed=64, hidden=140, enc_layers=8, dec_layers=8),
        # GPU sizes: 7 + 7 layers, 5 of each stack residual; hidden a multiple of 128, so that each direction
        # of the bidirectional bottom layer is a multiple of 64 wide.
        "large": GNMTConfig(embed=256, hidden=384, enc_layers=7, dec_layers=7),
        "xl": GNMTConfig(embed=128, hidden=896, enc_layers=7, dec_layers=7),
    },
    "deep residual LSTM, bidirectional bottom encoder layer, attention fed to the decoder stack (GNMT)",
    ModelMeta(cost=15, attention=True),
)
