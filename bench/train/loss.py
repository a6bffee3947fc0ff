"""The training loss every step uses, whichever way it is launched."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from bench.data.vocab import PAD


def loss_fn(logits: torch.Tensor, tgt_out: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy over non-pad targets, in fp32 whatever the autocast precision. logits [B,T,V], tgt_out [B,T]."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), tgt_out.reshape(-1), ignore_index=PAD, reduction=reduction)
