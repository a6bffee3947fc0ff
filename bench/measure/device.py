"""The device a session runs on: the one place a device name becomes a ``torch.device``.

The name's syntax is checked without torch (``bench.spec.run.parse_device``); whether this machine has
that device is checked here.
"""

from __future__ import annotations

import torch

from bench.errors import UserError
from bench.spec.run import parse_device


def resolve_device(name: str) -> torch.device:
    name = parse_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but CUDA is not available here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"device {name!r} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev
