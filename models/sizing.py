"""The parameter budgets every model's sizes are held to, and how a model's parameters are counted."""

from __future__ import annotations

from torch import nn

# Parameter budget per size, for a character vocabulary of about 60 symbols.
BUDGETS: dict[str, int] = {"tiny": 50_000, "small": 400_000, "base": 3_000_000, "large": 20_000_000, "xl": 100_000_000}
BUDGET_VOCAB = 60


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
