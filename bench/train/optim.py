"""The optimiser of a run's recipe, and the schedule that sets its learning rate before each update.

Plain Adam (Kingma & Ba 2015), as the book trains, unless the recipe asks for weight decay: then AdamW
(Loshchilov & Hutter 2019, decoupled weight decay, on every parameter as in their paper). Adam is kept, not
AdamW at decay 0, so that the default recipe runs exactly the optimiser it always ran (its stored results and the
CI baselines were made with it). The schedule (``bench.train.schedule``) writes ``lr * factor`` into every
parameter group before each update -- a float in eager and compiled steps, and in place into a device tensor for a
captured CUDA graph, which reads the rate inside the graph (``bench.train.capture.GraphStep``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from bench.spec.run import TrainConfig
from bench.train.schedule import lr_factor


def optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig, lr: float | torch.Tensor | None = None,
              **kw: Any) -> torch.optim.Optimizer:
    """Adam at ``cfg.lr`` (or ``lr``: a device tensor for a captured step), AdamW when ``cfg.weight_decay`` > 0.

    ``kw``: passed on (``capturable``, ``fused``).
    """
    rate = cfg.lr if lr is None else lr
    if cfg.weight_decay:
        return torch.optim.AdamW(params, lr=rate, weight_decay=cfg.weight_decay, **kw)
    return torch.optim.Adam(params, lr=rate, **kw)


class Schedule:
    """Sets the learning rate of ``opt`` for each update; call :meth:`step` once before every ``opt.step()``.

    ``total``: the updates the run is budgeted for (the cosine schedule decays over them).
    """

    def __init__(self, opt: torch.optim.Optimizer, cfg: TrainConfig, total: int) -> None:
        self.opt, self.cfg, self.total = opt, cfg, total
        self.steps = 0
        self.lr = cfg.lr  # the rate of the latest update

    def step(self) -> float:
        self.steps += 1
        self.lr = self.cfg.lr * lr_factor(self.cfg.schedule, self.cfg.lr_warmup, self.steps, self.total)
        for g in self.opt.param_groups:
            if isinstance(g["lr"], torch.Tensor):
                g["lr"].fill_(self.lr)  # in place: a captured graph holds this tensor's address
            else:
                g["lr"] = self.lr
        return self.lr


def schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, total: int | None) -> Schedule | None:
    """The run's schedule, or None when its rate never changes (the default recipe: nothing is touched)."""
    if not cfg.scheduled:
        return None
    if total is None or total < 1:
        raise ValueError(f"a {cfg.schedule} schedule with {cfg.lr_warmup} warm-up steps needs the run's number of updates")
    return Schedule(opt, cfg, total)
