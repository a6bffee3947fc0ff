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

    tokens:    LongTensor[B, T'] -- generated ids, without BOS; after a row's EOS it holds PAD. T' is the
               ``max_len`` asked for, also when decoding stopped early because every row had ended.
    attention: FloatTensor[B, T', S] | None -- for each generated position up to and including the row's
               EOS, the weights over *source positions* (summing to 1 over the unpadded source); zero
               after the row's EOS, as the tokens there are PAD. None for models without attention.
               Each model documents how it reduces heads/layers to this one map.
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

    def decode_step(self, batch: int, src_len: int, max_len: int, return_attention: bool = False) -> DecodeStep | None:
        """Greedy decoding as a fixed-shape step over buffers allocated once (:class:`DecodeStep`), or None.

        For batches of at most ``batch`` rows and ``src_len`` source columns, ``max_len`` tokens; built once,
        loaded and stepped for many batches. Optional: a model without one (the default) decodes through
        ``generate`` alone. A model that offers one can be decoded by a harness that replays the step with
        fixed kernels on fixed addresses (``bench.train.decode``: captured CUDA graphs), which is how its
        decoding is timed without the launch overhead of a step issued from Python (docs/design.md, "On a
        GPU: measure the architecture, not the launches"). The step must give ``generate``'s tokens.
        """
        return None

    def decode_state(self, src: torch.Tensor, src_mask: torch.Tensor, max_len: int) -> tuple[torch.Tensor, ...] | None:
        """The tensors greedy decoding of ``max_len`` tokens carries from one step to the next, as they stand once
        the source is read: a KV cache, a recurrent state, the encoder memory the decoder attends to -- not the
        weights, not the tokens emitted. ``None`` where a model does not say (the default).

        Their bytes (``state_bytes``) are what decoding holds per batch beyond the weights: flat in ``max_len`` for
        a recurrence (O(1) per layer), growing with it for a KV cache (Vaswani et al. 2017, Table 1's O(n) memory
        per layer at inference).
        """
        return None


def state_bytes(tensors: tuple[torch.Tensor, ...]) -> int:
    """Bytes of the tensors of a decoding state (``Seq2Seq.decode_state``): elements x element size, summed."""
    return sum(t.numel() * t.element_size() for t in tensors)


class DecodeStep:
    """Greedy decoding as one fixed-shape step over buffers allocated once: what ``Seq2Seq.decode_step`` returns.

    Pure torch: nothing here captures, compiles or times. The contract is what replaying a step needs
    (static shapes, static addresses, no host sync: PyTorch, "CUDA Graphs"), and run eagerly the same
    step gives ``generate``'s tokens:

    * every tensor ``step`` reads or writes is allocated when the object is built -- for ``batch`` rows,
      ``src_len`` source columns and ``max_len`` steps -- and is never replaced, only written in place;
    * ``load(src, src_mask, bos)`` encodes a batch of B0 <= ``batch`` rows and S0 <= ``src_len`` columns
      into those buffers and sets the position to 0. Rows B0.. repeat row 0 and columns S0.. are masked, so
      the first B0 rows of the outputs are the batch's own;
    * ``step()`` advances every row by one greedy token: it writes the token at the current position of
      ``tokens`` (and, built with ``return_attention``, the row's weights over source positions at the same
      position of ``attention``), feeds it to the next step and increments ``position``. The position lives
      on the device, so one step serves every position; nothing in it reads a value back to the host;
    * the model is in eval mode (a step that drops out at random is not greedy decoding).

    tokens:    LongTensor[batch, max_len] -- the token each step chose. Rows are not finished: after a row's
               EOS it holds what the step went on decoding (``finish`` turns it into PAD, as ``generate`` does).
    attention: FloatTensor[batch, max_len, src_len] | None -- the maps ``generate(return_attention=True)``
               returns, per step; None unless asked for.
    position:  LongTensor[1] -- the index of the next step.
    """

    batch: int
    src_len: int
    max_len: int
    tokens: torch.Tensor
    attention: torch.Tensor | None
    position: torch.Tensor

    def load(self, src: torch.Tensor, src_mask: torch.Tensor, bos: int) -> None:
        """src: [B0,S0] long, src_mask: [B0,S0] bool (B0 <= batch, S0 <= src_len): encode into the buffers, position 0."""
        raise NotImplementedError

    def step(self) -> None:
        """One greedy step on the buffers: fixed shapes, no host sync, every output written in place."""
        raise NotImplementedError


STOP_CHECK_EVERY = 8
"""Greedy loops ask "has every row emitted EOS?" once per this many steps, not at every step.

The answer lives on the device; reading it (``bool(...)``) is a host-device sync, which on a GPU stalls the
launch queue that keeps the device busy. Asking every 8 steps costs one sync per 8 tokens and at most 7
steps past the last row's EOS -- steps whose tokens are PAD anyway, so the result is the fixed-length
loop's exactly (``finish``). Shorter decodes (``max_len`` <= 8) never sync.
"""


def check_step(t: int, max_len: int) -> bool:
    """Whether a greedy loop asks for the end after its 0-based step ``t``: every ``STOP_CHECK_EVERY`` steps,
    never after the last one (the loop ends there anyway)."""
    return (t + 1) % STOP_CHECK_EVERY == 0 and t + 1 < max_len


def all_ended(recent: torch.Tensor, eos: int, ended: torch.Tensor) -> bool:
    """recent: [B,k] the tokens of the steps since the last check; ended: [B] bool, updated in place.

    -> every row has emitted ``eos``. The ``bool`` is the loop's one host sync; between checks no kernel
    runs for the test at all (the window is scanned here, at once).
    """
    ended |= (recent == eos).any(dim=1)
    return bool(ended.all())


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
    advances the model by one token (its closure carries the state). Stops once every row has emitted EOS,
    checked every ``STOP_CHECK_EVERY`` steps (one host sync per check, none in between); the result is the
    same as running all ``max_len`` steps.
    """
    tok = torch.full((batch, 1), bos, dtype=torch.long, device=device)
    ended = torch.zeros(batch, dtype=torch.bool, device=device)
    tokens, maps = [], []
    for t in range(max_len):
        logits, w = step(tok)
        tok = logits.argmax(-1)  # [B,1]
        tokens.append(tok)
        if return_attention and w is not None:
            maps.append(w)
        if check_step(t, max_len) and all_ended(torch.cat(tokens[-STOP_CHECK_EVERY:], dim=1), eos, ended):
            break
    return finish(torch.cat(tokens, dim=1), torch.cat(maps, dim=1) if maps else None, eos, max_len)


def after_eos(tokens: torch.Tensor, eos: int) -> torch.Tensor:
    """tokens: [B,T] -> BoolTensor [B,T], True strictly after each row's first EOS."""
    is_eos = tokens == eos
    return (is_eos.cumsum(dim=1) - is_eos.long()) > 0


def finish_tokens(tokens: torch.Tensor, eos: int, pad: int = 0) -> torch.Tensor:
    """Replace everything after each row's first EOS by PAD. tokens: [B,T] -> [B,T]."""
    return tokens.masked_fill(after_eos(tokens, eos), pad)


def finish(tokens: torch.Tensor, attention: torch.Tensor | None, eos: int, max_len: int, pad: int = 0) -> Generation:
    """What every greedy loop returns, whether it ran ``max_len`` steps or stopped early.

    tokens: [B,T] generated (T <= max_len; T < max_len only when every row has emitted EOS), attention:
    [B,T,S] | None. Tokens after each row's first EOS become PAD and their maps zero; the steps not run
    are PAD and zero too -- exactly what running them and finishing would give. -> Generation [B,max_len].
    """
    B, T = tokens.shape
    if T < max_len:
        tokens = torch.cat([tokens, tokens.new_full((B, max_len - T), pad)], dim=1)
        if attention is not None:
            attention = torch.cat([attention, attention.new_zeros(B, max_len - T, attention.size(2))], dim=1)
    after = after_eos(tokens, eos)
    if attention is not None:
        attention = attention.masked_fill(after.unsqueeze(-1), 0.0)
    return Generation(tokens.masked_fill(after, pad), attention)


def last_valid(hs: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
    """hs: [B,S,H], src_mask: [B,S] -> the state at each row's last real position, [B,H].

    Right-padding keeps a left-to-right LSTM's outputs at real positions independent of padding, so the
    last real output is exactly the final state of the unpadded sequence (no packing needed).
    """
    B, S, H = hs.shape
    idx = src_mask.long().sum(dim=1).clamp(min=1) - 1  # [B]
    # index_select on the flattened rows, not hs[arange, idx]: the same values, but advanced indexing's
    # backward is index_put, which torch.compile cannot trace under bf16 autocast on CUDA ("Unexpected
    # floating ScalarType in at::autocast::prioritize", torch 2.11); index_select's backward is index_add.
    return hs.reshape(B * S, H).index_select(0, torch.arange(B, device=hs.device) * S + idx)  # [B,H]


INITS = ("torch", "book")

# Why the LSTM encoders that pack cannot be captured as a CUDA graph (their configs' ``host_sync``).
PACKS = "packs each source to stop at its length (pack_padded_sequence reads the lengths on the host)"


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
