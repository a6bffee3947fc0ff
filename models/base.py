"""The one interface every network in the zoo implements.

A model maps a padded source batch and a teacher-forced target prefix to logits (``forward``) and decodes
greedily on its own (``generate``). Decoding strategy, loss and metrics live outside the model (as in the
Annotated Transformer), so the harness treats every architecture the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Generation:
    """What greedy decoding returns.

    tokens:    LongTensor[B, T'] -- generated ids, without BOS; after a row's EOS it holds PAD.
    attention: FloatTensor[B, T', S] | None -- for each generated position, the weights over *source
               positions* (each row sums to 1 over the unpadded source); None for models without
               attention. Each model documents how it reduces heads/layers to this one map.
    """

    tokens: torch.Tensor
    attention: torch.Tensor | None = None


class Seq2Seq(nn.Module):
    """Encoder-decoder over token ids.

    Conventions shared by all models:
      * ``src_mask`` is True on real source tokens, False on padding; padding never influences outputs.
      * ``tgt_in`` starts with BOS; position t of the logits predicts ``tgt_in[:, t + 1]`` (the next token).
      * ``pad_id`` is 0 (``bench.data.vocab`` guarantees it); models use it only to embed padding as zeros.
    """

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """src: [B,S] long, src_mask: [B,S] bool, tgt_in: [B,T] long -> logits [B,T,V] float."""
        raise NotImplementedError

    @torch.no_grad()
    def generate(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor,
        max_len: int,
        bos: int,
        eos: int,
        return_attention: bool = False,
    ) -> Generation:
        """Greedy decoding of at most ``max_len`` tokens (EOS included).

        ``return_attention=False`` lets models skip collecting attention maps on the fast path.
        """
        raise NotImplementedError


def greedy_decode(
    step: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]],
    batch: int,
    max_len: int,
    bos: int,
    eos: int,
    device: torch.device,
    return_attention: bool = False,
) -> Generation:
    """The greedy loop the recurrent models share: ``step(tok [B,1]) -> (logits [B,1,V], weights [B,1,S] | None)``
    advances the model by one token (its closure carries the state). Always ``max_len`` steps: stopping when
    every row has emitted EOS would need a host-device sync per step.
    """
    tok = torch.full((batch, 1), bos, dtype=torch.long, device=device)
    tokens, maps = [], []
    for _ in range(max_len):
        logits, w = step(tok)
        tok = logits.argmax(-1)  # [B,1]
        tokens.append(tok)
        if return_attention and w is not None:
            maps.append(w)
    out = finish_tokens(torch.cat(tokens, dim=1), eos)
    return Generation(out, torch.cat(maps, dim=1) if maps else None)


def finish_tokens(tokens: torch.Tensor, eos: int, pad: int = 0) -> torch.Tensor:
    """Replace everything after each row's first EOS by PAD. tokens: [B,T] -> [B,T]."""
    is_eos = tokens == eos
    after = (is_eos.cumsum(dim=1) - is_eos.long()) > 0  # strictly after the first EOS
    return tokens.masked_fill(after, pad)


def last_valid(hs: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
    """hs: [B,S,H], src_mask: [B,S] -> the state at each row's last real position, [B,H].

    Right-padding keeps a left-to-right LSTM's outputs at real positions independent of padding, so the
    last real output is exactly the final state of the unpadded sequence (no packing needed).
    """
    idx = src_mask.long().sum(dim=1).clamp(min=1) - 1  # [B]
    return hs[torch.arange(hs.size(0), device=hs.device), idx]


INITS = ("torch", "book")


@torch.no_grad()
def init_weights(module: nn.Module, scheme: str) -> None:
    """Re-initialise ``module``'s embeddings, LSTMs and linear layers by ``scheme``.

    * ``torch``: leave PyTorch's defaults -- embeddings N(0, 1); LSTM and linear weights *and biases*
      U(-1/sqrt(fan), 1/sqrt(fan)) (the LSTM's fan is its hidden size, whatever its input).
    * ``book``: what "Deep Learning from Scratch 2" does in every ch. 7-8 model (``ch07/seq2seq.py``
      ``Encoder.__init__``/``Decoder.__init__``; ch. 8 and the peeky decoder copy it): embeddings
      ``randn(V, D) / 100``, i.e. N(0, 0.01^2); every weight matrix ``randn(fan_in, out) / sqrt(fan_in)``,
      i.e. N(0, 1/fan_in) (the "Xavier" scale the book uses since its RNN language model); every bias zero.
      An LSTM's input weights thus start 4x larger than PyTorch's at embedding 16, its embeddings 100x smaller.

    The embedding row of ``padding_idx`` stays zero either way (PyTorch's contract for it).
    """
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; use {' or '.join(INITS)}")
    if scheme == "torch":
        return
    for m in module.modules():
        if isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.01)
            if m.padding_idx is not None:
                m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LSTM):
            for name, p in m.named_parameters():
                if name.startswith("weight"):  # weight_ih [4H, in], weight_hh [4H, H]: fan_in is dim 1
                    nn.init.normal_(p, 0.0, 1.0 / math.sqrt(p.size(1)))
                else:  # b_ih and b_hh: the book has one bias, zero; two zeros sum to it
                    nn.init.zeros_(p)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 1.0 / math.sqrt(m.in_features))
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@torch.no_grad()
def one_lstm_bias(module: nn.Module) -> None:
    """Give every LSTM in ``module`` one bias per gate, as the book's LSTM has (``b`` in ``common/time_layers.py``).

    PyTorch's LSTM adds two, ``b_ih + b_hh`` (cuDNN's convention). They are redundant for the forward pass
    but not for Adam, which moves each parameter by about the learning rate whatever its gradient's scale:
    the two together move the effective bias about twice as fast as the book's one. Here ``b_hh`` is held at
    zero (no gradient), so ``b_ih`` alone is the book's ``b``.
    """
    for m in module.modules():
        if isinstance(m, nn.LSTM):
            for name, p in m.named_parameters():
                if name.startswith("bias_hh"):
                    p.zero_()
                    p.requires_grad_(False)
