"""One call seeds every random source a run touches; another asks for deterministic kernels."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds all CUDA devices
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def set_deterministic(on: bool) -> None:
    """Deterministic algorithms on GPU (CPU kernels used here already are).

    cuBLAS needs CUBLAS_WORKSPACE_CONFIG set before its first use for deterministic matmuls; cuDNN's
    autotuner picks kernels by timing, which varies run to run, so it is switched off.
    """
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on, warn_only=True)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on
