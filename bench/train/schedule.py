"""Learning-rate schedules: the factor the peak learning rate (``TrainConfig.lr``) is multiplied by at each update.

Steps count updates from 1 (the first ``optimizer.step()`` is step 1); ``total`` is the number of updates
the run is budgeted for (epochs x batches per epoch). With ``w = lr_warmup``:

* warm-up (every schedule, when ``w > 0``): ``step / w`` for ``step <= w`` -- linear, the first update at
  ``lr / w`` rather than at zero, the ``w``-th at the peak;
* ``constant``: 1 after the warm-up;
* ``inverse-sqrt``: ``sqrt(w / step)`` after the warm-up (``sqrt(1 / step)`` without one). This is Vaswani et
  al. 2017, §5.3, ``d^-0.5 * min(step^-0.5, step * w^-1.5)``, divided by its peak ``d^-0.5 * w^-0.5`` so that
  ``lr`` is the peak rate whatever the model width;
* ``cosine``: ``(1 + cos(pi * p)) / 2`` after the warm-up, with ``p = (step - w - 1) / (total - w)`` the
  fraction of the decay done before this update: the first update after the warm-up runs at the peak and the
  last just above zero (Loshchilov & Hutter 2017, SGDR, one cycle and no restart). Past ``total`` it stays at 0.

Pure Python: the training step (``bench.train.loop``, ``bench.train.capture``) writes ``lr * factor`` into the
optimiser before each update.
"""

from __future__ import annotations

import math


def lr_factor(schedule: str, warmup: int, step: int, total: int) -> float:
    """The multiplier of the peak learning rate for update number ``step`` (1-based) of ``total``."""
    if step < 1:
        raise ValueError(f"steps count from 1, got {step}")
    if warmup > 0 and step <= warmup:
        return step / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "inverse-sqrt":
        return math.sqrt(max(warmup, 1) / step)
    if schedule == "cosine":
        p = min((step - warmup - 1) / max(total - warmup, 1), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * p))
    raise ValueError(f"unknown schedule {schedule!r}")


def total_steps(epochs: int, examples: int, batch_size: int) -> int:
    """Updates a run is budgeted for: every epoch's batches (the last one may be short)."""
    return epochs * -(-examples // batch_size)
