"""A GRU encoder-decoder with attention (Cho et al. 2014's gated unit; Luong et al. 2015's "general" score), as a
plugin registers it: the same ``models.register`` the built-in models use, with its sizes given as a function of
one width (``models.ByWidth``) that s2sbench fits to each parameter budget.

The encoder GRU reads the right-padded source; its state at each row's last real token starts the decoder GRU
(a left-to-right recurrence never reads the padding after a row's end, so nothing needs packing and the forward
pass never waits for the host). At every decoder step the state scores each encoder state (``h_dec . W h_enc``),
the softmax over real source positions weighs them into a context vector, and context and state together give
the logits. Teacher forcing runs the decoder fused over the whole target; ``generate`` runs the same
decoding one step at a time through s2sbench's shared greedy loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from models import ByWidth, Generation, ModelMeta, Seq2Seq, register
from models.base import greedy_decode, last_valid
from models.options import DROPOUT, POSITIVE


@dataclass(frozen=True)
class GRUConfig:
    vocab_size: int = 0  # set by s2sbench for each task's vocabulary
    embed: int = 32  # character embedding width, shared by source and target
    hidden: int = 128  # GRU width, encoder and decoder
    dropout: float = 0.0  # on embeddings and the projection input

    # models.options: the range of each option (--option hidden=0 is refused before anything runs)
    LIMITS: ClassVar[dict] = {"embed": POSITIVE, "hidden": POSITIVE, "dropout": DROPOUT}


class GRUSeq2Seq(Seq2Seq):
    """GRU encoder, GRU decoder started from the encoder's last real state, general attention over all encoder states.

    ``generate`` returns the attention weights of each step: one map, no heads or layers to average.
    """

    def __init__(self, cfg: GRUConfig) -> None:
        super().__init__()
        self.cfg = cfg
        E, H, V = cfg.embed, cfg.hidden, cfg.vocab_size
        self.embed = nn.Embedding(V, E, padding_idx=0)
        self.encoder = nn.GRU(E, H, batch_first=True)
        self.decoder = nn.GRU(E, H, batch_first=True)
        self.score = nn.Linear(H, H, bias=False)  # Luong et al. 2015, "general": h_dec . W h_enc
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(2 * H, V)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> encoder states [B,S,H] (zero at padding), their keys W h_enc [B,S,H], the decoder's first state [1,B,H]."""
        hs, _ = self.encoder(self.drop(self.embed(src)))  # [B,S,H]
        h0 = last_valid(hs, src_mask).unsqueeze(0)  # [1,B,H]: the state after each row's last real token
        hs = hs * src_mask.unsqueeze(-1)
        return hs, self.score(hs), h0

    def _project(self, dec: torch.Tensor, enc: torch.Tensor, keys: torch.Tensor,
                 src_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """dec [B,T,H] -> logits [B,T,V] and attention weights [B,T,S] (zero on padding)."""
        scores = torch.bmm(dec, keys.transpose(1, 2)).masked_fill(~src_mask.unsqueeze(1), float("-inf"))  # [B,T,S]
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights, enc)  # [B,T,H]
        return self.out(self.drop(torch.cat([context, dec], dim=-1))), weights

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        enc, keys, h = self.encode(src, src_mask)
        dec, _ = self.decoder(self.drop(self.embed(tgt_in)), h)  # [B,T,H], fused over time
        return self._project(dec, enc, keys, src_mask)[0]

    @torch.no_grad()
    def generate(self, src, src_mask, max_len, bos, eos, return_attention=False) -> Generation:
        enc, keys, h = self.encode(src, src_mask)

        def step(tok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            nonlocal h
            dec, h = self.decoder(self.embed(tok), h)  # [B,1,H]
            return self._project(dec, enc, keys, src_mask)  # [B,1,V], [B,1,S]

        return greedy_decode(step, src.size(0), max_len, bos, eos, src.device, return_attention)


register(
    "gru",
    GRUSeq2Seq,
    GRUConfig,
    # No size table: every budget's width is searched (multiples of 8 between 16 and 4096), embeddings a quarter of it.
    ByWidth(lambda width: GRUConfig(embed=max(16, width // 4), hidden=width), low=16, high=4096, step=8),
    "GRU encoder-decoder with general attention (Cho et al. 2014; Luong et al. 2015) -- the example plugin",
    ModelMeta(cost=10, attention=True),
)
