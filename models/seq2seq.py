"""Plain and peeky LSTM encoder-decoder (book "Deep Learning from Scratch 2", ch. 7; Sutskever et al. 2014).

* ``seq2seq`` (book §7.3): the encoder reads the source and hands its last state -- the
  fixed-length vector -- to the decoder as its initial state. That state is the *only* thing the decoder
  learns about the source, which is the bottleneck that motivates attention (book §8.1).
* ``peeky`` (book §7.4.2): the same, but the encoder's last hidden state is also concatenated
  to the decoder's input at every step and to the input of the output projection, so the source vector
  is not diluted as the decoder runs.

By default both start the decoder from the encoder's (h, c) at each row's last *real* token, and the
encoder is packed so its final state is the state after the last real token, not after the padding.

Size ``book`` is the book's code as it is, each difference a named option so that a benchmark can measure
what it buys (``bench/spec/suites/book_ablation.toml``):

* ``carry_cell=False``: the book's ``Decoder.forward`` calls ``lstm.set_state(h)``, so the decoder starts
  from the encoder's h with its cell state c at *zero*; ``True`` (the default) hands over c too, as
  Sutskever et al. do, at no cost.
* ``init="book"``: the book's initialisation (``models.base.init_weights``) instead of PyTorch's.
* ``one_bias=True``: one LSTM bias per gate, as the book's, instead of PyTorch's two (``models.base.one_lstm_bias``).

What the book's data does (its encoder reads the padding spaces as characters; its decoder writes a fixed
number of characters, padding spaces included) is not the model's business: the data options
``keep_source_padding`` and ``fixed_length_target`` of a run reproduce it (``bench.data.tasks.textfile``).

With teacher forcing the decoder LSTM runs fused over the whole target (no Python loop over time);
``generate`` runs the very same decoding function one step at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from models.base import INITS, PACKS, Generation, Seq2Seq, greedy_decode, init_weights, one_lstm_bias
from models.options import DROPOUT, POSITIVE
from models.registry import ModelMeta, register


@dataclass(frozen=True)
class Seq2SeqConfig:
    vocab_size: int = 0
    embed: int = 16  # character embedding width; the book uses 16 (a character carries little meaning alone)
    hidden: int = 128  # LSTM width = size of the fixed-length source vector; the book's ch. 7 uses 128
    dropout: float = 0.0  # on embeddings and the projection input; the book trains without it
    # Book §7.3 (ch07/seq2seq.py, Decoder.forward: lstm.set_state(h)) starts the decoder from the encoder's h
    # with c = 0; True also hands over the encoder's cell state, which carries most of an LSTM's memory.
    carry_cell: bool = True
    # torch (PyTorch's defaults) | book (ch07/seq2seq.py: N(0, 0.01^2) embeddings, N(0, 1/fan_in) weights, zero biases)
    init: str = "torch"
    # The book's LSTM has one bias per gate; PyTorch's has two (b_ih + b_hh), which Adam moves twice as fast
    # together. True holds b_hh at zero (models.base.one_lstm_bias).
    one_bias: bool = False

    def host_sync(self) -> str | None:
        """Why a forward pass reads device values on the host (``models.host_sync``): no CUDA graph can hold it."""
        return f"the encoder {PACKS}"

    # models.options: the range of each option (--option hidden=0 is refused before anything runs)
    LIMITS: ClassVar[dict] = {"embed": POSITIVE, "hidden": POSITIVE, "dropout": DROPOUT, "init": INITS}


class LSTMSeq2Seq(Seq2Seq):
    """Book §7.3 ``Seq2seq``: separate source/target embeddings (as the book's Encoder and Decoder have),
    one LSTM layer each, an affine output layer. ``generate`` returns no attention (there is none).
    """

    peeky = False  # book §7.4.2: overridden by PeekySeq2Seq

    def __init__(self, cfg: Seq2SeqConfig) -> None:
        super().__init__()
        self.cfg = cfg
        E, H, V = cfg.embed, cfg.hidden, cfg.vocab_size
        self.src_embed = nn.Embedding(V, E, padding_idx=0)
        self.tgt_embed = nn.Embedding(V, E, padding_idx=0)
        self.encoder = nn.LSTM(E, H, batch_first=True)
        # Peeky: the source vector joins the input of every decoder step (E + H) and the projection (2H).
        self.decoder = nn.LSTM(E + H if self.peeky else E, H, batch_first=True)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(2 * H if self.peeky else H, V)
        init_weights(self, cfg.init)
        if cfg.one_bias:
            one_lstm_bias(self)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src: [B,S], src_mask: [B,S] -> the decoder's initial (h, c), each [1,B,H]: the encoder's state after
        each row's last real token (c zero unless ``carry_cell``)."""
        x = self.drop(self.src_embed(src))  # [B,S,E]
        # Packing makes the LSTM stop at each row's length, so (h_n, c_n) never read padding. It needs the
        # lengths on the CPU: the one host-device synchronisation in forward, accepted for packing.
        lengths = src_mask.sum(dim=1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, (h, c) = self.encoder(packed)  # [1,B,H] each, back in the batch's order
        return h, (c if self.cfg.carry_cell else torch.zeros_like(c))

    def _decode(
        self, tgt: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], h_enc: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """tgt: [B,T] ids, state: (h, c) [1,B,H], h_enc: [B,H] -> logits [B,T,V] and the new state.

        The same code serves teacher forcing (T = target length, fused) and greedy decoding (T = 1).
        """
        x = self.drop(self.tgt_embed(tgt))  # [B,T,E]
        if self.peeky:
            hs = h_enc.unsqueeze(1).expand(-1, x.size(1), -1)  # [B,T,H]: the source vector at every step
            x = torch.cat([x, hs], dim=-1)  # [B,T,E+H]
        y, state = self.decoder(x, state)  # [B,T,H]
        if self.peeky:
            y = torch.cat([y, hs], dim=-1)  # [B,T,2H]
        return self.out(self.drop(y)), state

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        h, c = self.encode(src, src_mask)
        logits, _ = self._decode(tgt_in, (h, c), h[0])
        return logits  # [B,T,V]

    @torch.no_grad()
    def generate(self, src, src_mask, max_len, bos, eos, return_attention=False) -> Generation:
        state = self.encode(src, src_mask)
        h_enc = state[0][0]  # [B,H]

        def step(tok: torch.Tensor) -> tuple[torch.Tensor, None]:
            nonlocal state
            logits, state = self._decode(tok, state, h_enc)  # [B,1,V]
            return logits, None

        # No attention to report: the decoder only ever sees the fixed-length source vector.
        return greedy_decode(step, src.size(0), max_len, bos, eos, src.device)

    def decode_state(self, src: torch.Tensor, src_mask: torch.Tensor, max_len: int) -> tuple[torch.Tensor, ...]:
        """What ``generate`` carries between steps: the decoder LSTM's (h, c), [1,B,H] each -- the fixed-length
        vector (book §7.1), whatever ``max_len``; the peeky decoder's source vector is the encoder's h, counted once."""
        with torch.no_grad():
            return self.encode(src, src_mask)

class PeekySeq2Seq(LSTMSeq2Seq):
    """Book §7.4.2 ``PeekySeq2seq``: the encoder's last hidden state is concatenated to every decoder input
    and to the output projection's input, besides starting the decoder.
    """

    peeky = True


# Parameter counts at vocab 60 (models.BUDGET_VOCAB): see tests/models/test_models.py for the +-10 % check.
register(
    "seq2seq",
    LSTMSeq2Seq,
    Seq2SeqConfig,
    {
        "tiny": Seq2SeqConfig(embed=16, hidden=64),
        "small": Seq2SeqConfig(embed=32, hidden=204),
        "base": Seq2SeqConfig(embed=64, hidden=576),
        "large": Seq2SeqConfig(embed=256, hidden=1472),  # GPU sizes: one wide layer each side, as the book's model
        "xl": Seq2SeqConfig(embed=256, hidden=3392),
        "book": Seq2SeqConfig(embed=16, hidden=128, carry_cell=False, init="book", one_bias=True),
    },
    "LSTM encoder-decoder; the encoder's last state is all the decoder sees (book §7.3)",
    ModelMeta(cost=10),
)

register(
    "peeky",
    PeekySeq2Seq,
    Seq2SeqConfig,
    {
        "tiny": Seq2SeqConfig(embed=16, hidden=54),
        "small": Seq2SeqConfig(embed=32, hidden=168),
        "base": Seq2SeqConfig(embed=64, hidden=476),
        "large": Seq2SeqConfig(embed=256, hidden=1216),
        "xl": Seq2SeqConfig(embed=256, hidden=2816),
        "book": Seq2SeqConfig(embed=16, hidden=128, carry_cell=False, init="book", one_bias=True),
    },
    "seq2seq whose encoder vector also feeds every decoder step and the output layer (book §7.4.2)",
    ModelMeta(cost=10),
)
