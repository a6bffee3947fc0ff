"""Does ``--deterministic`` give the same run twice? Train each model twice, as a session would, and compare.

On a CPU the same run twice is identical anyway (a test compares the per-epoch losses bit for bit). On a GPU
it is what ``--deterministic`` promises: deterministic algorithms on (``torch.use_deterministic_algorithms``),
cuDNN's autotuner off, and cuBLAS given a fixed workspace -- ``CUBLAS_WORKSPACE_CONFIG=:4096:8``, which PyTorch
documents must be set before CUDA initialises (cuBLAS reads it when it creates its handle). So the check
refuses to run in a process whose CUDA started without it; run it in a fresh process
(``python -m bench.checks.determinism``), where it is set first.

:func:`determinism_check` is what the GPU self-check and the ``gpu`` test call: one row per model -- the
per-epoch training losses of both runs, their validation and test exact match, and ``identical`` when every
one of them is equal bit for bit (no tolerance: a deterministic run has none to give).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from bench.errors import UserError
from bench.measure.device import resolve_device
from bench.runner.cache import DataCache
from bench.runner.execute import execute
from bench.spec.run import DataSpec, MeasureSpec, RunSpec, SessionConfig, TrainConfig
from bench.train.seeding import set_deterministic

CUBLAS_WORKSPACE = ":4096:8"  # PyTorch's reproducibility notes: ":4096:8" (or ":16:8", slower, less memory)


def prepare(device: torch.device) -> None:
    """Set what deterministic CUDA needs, or refuse when it is too late: CUDA already up without the cuBLAS setting."""
    if device.type == "cuda" and "CUBLAS_WORKSPACE_CONFIG" not in os.environ:
        if torch.cuda.is_initialized():
            raise UserError("CUDA was initialised before CUBLAS_WORKSPACE_CONFIG was set, so cuBLAS may not be deterministic: "
                            "run the check in a fresh process (python -m bench.checks.determinism)")
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    set_deterministic(True)


def spec_for(model: str, epochs: int, size: str = "tiny", task: str = "date", train: int = 2000, seed: int = 0) -> RunSpec:
    """A short time-to-quality run: ``epochs`` epochs, no early stop (every epoch's loss is compared)."""
    return RunSpec(model=model, size=size, seed=seed, data=DataSpec(task=task, seed=0, train=train, valid=200, test=200),
                   train=TrainConfig(epochs=epochs, batch_size=64, target=None, eval_batch_size=200),
                   measure=MeasureSpec(decode_batch=32, decode_repeats=1, samples=0))


def determinism_check(device: str | torch.device, models: Sequence[str] = ("attention", "transformer"), epochs: int = 2, *,
                      size: str = "tiny", task: str = "date", train: int = 2000, seed: int = 0,
                      run: Callable[..., tuple[dict, list, list]] = execute) -> list[dict[str, Any]]:
    """Each of ``models`` trained twice with deterministic kernels on ``device``. -> one row per model.

    ``run``: what executes one run (``bench.runner.execute.execute``; a test passes a perturbed one to see the
    check fail). Kernels PyTorch has no deterministic version of only warn (as in a ``--deterministic``
    session); their warnings are listed in the row (``nondeterministic``).
    """
    dev = resolve_device(str(device))
    prepare(dev)
    sc = SessionConfig(device=str(dev), deterministic=True)
    cache = DataCache()
    rows = []
    for m in models:
        spec = spec_for(m, epochs, size, task, train, seed)
        prep = cache.get(spec.data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            (ma, ha, _), (mb, hb, _) = (run(spec, prep, dev, sc) for _ in range(2))
        la, lb = [e["loss"] for e in ha], [e["loss"] for e in hb]
        va, vb = [e["valid_exact_match"] for e in ha], [e["valid_exact_match"] for e in hb]
        same = len(la) == epochs and la == lb and va == vb and ma.get("test_exact_match") == mb.get("test_exact_match")
        rows.append({
            "model": m, "size": size, "task": task, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "epochs": len(la), "loss_a": la, "loss_b": lb, "valid_exact_a": va, "valid_exact_b": vb,
            "test_exact_a": ma.get("test_exact_match"), "test_exact_b": mb.get("test_exact_match"),
            "max_loss_diff": max((abs(a - b) for a, b in zip(la, lb)), default=0.0), "identical": same,
            "nondeterministic": sorted({str(w.message).splitlines()[0] for w in caught if "determinis" in str(w.message)}),
        })
    return rows
