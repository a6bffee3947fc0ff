"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?", arXiv:2410.01201): a GRU and an LSTM
stripped down until they train by a parallel scan.

The GRU's and LSTM's gates read the previous state ``h_{t-1}``, so time must be stepped through (book ch. 6;
§8.5's argument for the Transformer). Feng et al. drop that dependence -- every gate and candidate reads the
input ``x_t`` alone -- and the tanh on the candidate (§3.1.2, §3.2.2). What is left is a linear recurrence
``h_t = a_t * h_{t-1} + b_t`` with ``a_t``, ``b_t`` known for all t at once, which ``models.scan`` solves in
O(log n) depth; decoding runs the same recurrence one step at a time from a state of ``hidden`` numbers per
block:

* minGRU (§3.1): z_t = sigmoid(W_z x_t), h~_t = g(W_h x_t), h_t = (1 - z_t) * h_{t-1} + z_t * h~_t;
* minLSTM (§3.2): f_t = sigmoid(W_f x_t), i_t = sigmoid(W_i x_t), h~_t = g(W_h x_t), with the gates normalised
  so the state stays time-independent in scale (f'_t = f_t / (f_t + i_t), i'_t = i_t / (f_t + i_t)),
  h_t = f'_t * h_{t-1} + i'_t * h~_t.

``g`` (appendix B.3) keeps the candidate positive, so Heinsen's log-space scan applies (``scan=heinsen``, the
paper's appendix B); the gates are computed in log space there (log(1 - z) = -softplus(k), log z =
-softplus(-k); log f' = -softplus(softplus(-k_f) - softplus(-k_i))), as the paper does. A single minGRU layer
is elementwise over channels, so each block projects its ``hidden`` channels back to ``d_model`` (``proj``)
and mixes channels in the feed-forward after it; the blocks, forms and decoding are ``models.recurrence``'s.
Parameters per block: 3 d h (minGRU) or 4 d h (minLSTM), against the Transformer's 4 d^2 of self-attention.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from models.options import POSITIVE
from models.recurrence import Mixer, ScanConfig, ScanSeq2Seq, State, hold
from models.registry import ModelMeta, register
from models.scan import A_FLOOR, LOG_TINY, g, log_g, scan


@dataclass(frozen=True)
class MinRNNConfig(ScanConfig):
    hidden: int = 64  # recurrent state width per block (Feng et al.'s d_h): what decoding carries, per block

    LIMITS: ClassVar[dict] = {**ScanConfig.LIMITS, "hidden": POSITIVE}


def _masked(keep: torch.Tensor | None, log_a: torch.Tensor, b: torch.Tensor, log_b: torch.Tensor | None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Identity steps where ``keep`` [B,T] is False: decay 1 (log 0), nothing added (b 0, log b ``LOG_TINY``)."""
    if keep is None:
        return log_a, b, log_b
    k = keep.unsqueeze(-1)  # [B,T,1]
    log_a = log_a.masked_fill(~k, 0.0)
    b = b.masked_fill(~k, 0.0)
    return log_a, b, (log_b.masked_fill(~k, LOG_TINY) if log_b is not None else None)


class MinGRU(Mixer):
    """Feng et al. 2024 §3.1: h_t = (1 - z_t) h_{t-1} + z_t g(W_h x_t), z_t = sigmoid(W_z x_t)."""

    def __init__(self, d: int, hidden: int, method: str) -> None:
        super().__init__()
        self.gates = nn.Linear(d, 2 * hidden)  # candidate and update gate, from the input alone
        self.proj = nn.Linear(hidden, d)
        self.method, self.hidden = method, hidden

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None, with_state: bool = False) -> tuple[torch.Tensor, State | None]:
        k_h, k_z = self.gates(x).chunk(2, dim=-1)  # [B,T,H] each
        log_a = -F.softplus(k_z)  # log(1 - z)
        log_b = -F.softplus(-k_z) + log_g(k_h) if self.method == "heinsen" else None  # log z + log h~
        b = torch.sigmoid(k_z) * g(k_h)
        log_a, b, log_b = _masked(keep, log_a, b, log_b)
        h = scan(log_a, b, self.method, log_b)  # [B,T,H]
        return self.proj(h.to(x.dtype)), ((h[:, -1],) if with_state else None)

    def start(self, batch: int, like: torch.Tensor) -> State:
        return (torch.zeros(batch, self.hidden, dtype=torch.promote_types(like.dtype, torch.float32), device=like.device),)

    def step(self, x: torch.Tensor, state: State, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        (h,) = state  # [B,H]
        k_h, k_z = self.gates(x).to(h.dtype).chunk(2, dim=-1)
        new = hold(keep, (torch.sigmoid(-k_z).clamp_min(A_FLOOR) * h + torch.sigmoid(k_z) * g(k_h),), state)
        return self.proj(new[0].to(x.dtype)), new


class MinLSTM(Mixer):
    """Feng et al. 2024 §3.2: h_t = f'_t h_{t-1} + i'_t g(W_h x_t), with f', i' the normalised forget and input gates."""

    def __init__(self, d: int, hidden: int, method: str) -> None:
        super().__init__()
        self.gates = nn.Linear(d, 3 * hidden)  # candidate, forget and input gates, from the input alone
        self.proj = nn.Linear(hidden, d)
        self.method, self.hidden = method, hidden

    @staticmethod
    def _diff(k_f: torch.Tensor, k_i: torch.Tensor) -> torch.Tensor:
        """log i - log f: f' = sigmoid(-diff) = f / (f + i), i' = sigmoid(diff)."""
        return F.softplus(-k_f) - F.softplus(-k_i)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None, with_state: bool = False) -> tuple[torch.Tensor, State | None]:
        k_h, k_f, k_i = self.gates(x).chunk(3, dim=-1)  # [B,T,H] each
        diff = self._diff(k_f, k_i)
        log_a = -F.softplus(diff)  # log f'
        log_b = -F.softplus(-diff) + log_g(k_h) if self.method == "heinsen" else None  # log i' + log h~
        b = torch.sigmoid(diff) * g(k_h)
        log_a, b, log_b = _masked(keep, log_a, b, log_b)
        h = scan(log_a, b, self.method, log_b)  # [B,T,H]
        return self.proj(h.to(x.dtype)), ((h[:, -1],) if with_state else None)

    def start(self, batch: int, like: torch.Tensor) -> State:
        return (torch.zeros(batch, self.hidden, dtype=torch.promote_types(like.dtype, torch.float32), device=like.device),)

    def step(self, x: torch.Tensor, state: State, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        (h,) = state  # [B,H]
        k_h, k_f, k_i = self.gates(x).to(h.dtype).chunk(3, dim=-1)
        diff = self._diff(k_f, k_i)
        new = hold(keep, (torch.sigmoid(-diff).clamp_min(A_FLOOR) * h + torch.sigmoid(diff) * g(k_h),), state)
        return self.proj(new[0].to(x.dtype)), new


class MinGRUSeq2Seq(ScanSeq2Seq):
    """minGRU blocks in either form (``models.recurrence``)."""

    def mixer(self, cfg: MinRNNConfig) -> Mixer:
        return MinGRU(cfg.d_model, cfg.hidden, cfg.scan)


class MinLSTMSeq2Seq(ScanSeq2Seq):
    """minLSTM blocks in either form (``models.recurrence``)."""

    def mixer(self, cfg: MinRNNConfig) -> Mixer:
        return MinLSTM(cfg.d_model, cfg.hidden, cfg.scan)


# Parameter counts at vocab 60 (models.BUDGET_VOCAB) are checked against models.BUDGETS in the tests, in both forms.
# cost: measured beside attention (10) and the Transformer (24) at size small on date batches, 1 CPU thread.
GRU_META = ModelMeta(cost=45, attention=False, recurrent=True, scan=True)
register(
    "mingru",
    MinGRUSeq2Seq,
    MinRNNConfig,
    {
        # The Transformer's depth at each size (its encoder + decoder blocks), hidden = d_model, the width and
        # feed-forward that meet the budget. GPU sizes: widths multiples of 64, heads 64 wide.
        "tiny": MinRNNConfig(d_model=32, hidden=32, layers=4, ff=128, heads=4),
        "small": MinRNNConfig(d_model=80, hidden=80, layers=6, ff=288, heads=4),
        "base": MinRNNConfig(d_model=224, hidden=224, layers=6, ff=768, heads=4),
        "large": MinRNNConfig(d_model=576, hidden=576, layers=6, ff=2048, heads=9),
        "xl": MinRNNConfig(d_model=896, hidden=896, layers=12, ff=3328, heads=14),
    },
    "minGRU blocks (Feng et al. 2024): gates from the input alone, trained by a parallel scan, decoded by recurrence",
    GRU_META,
)
register(
    "minlstm",
    MinLSTMSeq2Seq,
    MinRNNConfig,
    {
        # As minGRU's; its gates take d h more parameters per block, which the feed-forward gives back.
        "tiny": MinRNNConfig(d_model=32, hidden=32, layers=4, ff=112, heads=4),
        "small": MinRNNConfig(d_model=80, hidden=80, layers=6, ff=240, heads=4),
        "base": MinRNNConfig(d_model=224, hidden=224, layers=6, ff=640, heads=4),
        "large": MinRNNConfig(d_model=576, hidden=576, layers=6, ff=1728, heads=9),
        "xl": MinRNNConfig(d_model=832, hidden=832, layers=12, ff=3328, heads=13),
    },
    "minLSTM blocks (Feng et al. 2024): normalised input-only gates, trained by a parallel scan, decoded by recurrence",
    replace(GRU_META, cost=55),
)
