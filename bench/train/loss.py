"""The training loss every step uses, whichever way it is launched."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from bench.data.vocab import PAD


def loss_fn(logits: torch.Tensor, tgt_out: torch.Tensor, reduction: str = "mean", label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy over non-pad targets, in fp32 whatever the autocast precision. logits [B,T,V], tgt_out [B,T].

    ``label_smoothing``: the target is ``(1 - e)`` on the right token plus ``e / V`` spread over every token (Szegedy
    et al. 2016, §7; Vaswani et al. 2017, §5.4), PyTorch's own ``cross_entropy(label_smoothing=e)``; padding positions
    still count for nothing. At 0 the call is exactly the unsmoothed one.
    """
    smooth = {"label_smoothing": label_smoothing} if label_smoothing else {}
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), tgt_out.reshape(-1), ignore_index=PAD, reduction=reduction,
                           **smooth)
