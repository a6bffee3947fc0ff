"""What a session ran on: recorded with every session so reports can tell when comparisons mix machines."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys

import torch


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_isa() -> str:
    """The widest vector instruction set the CPU kernels may use: ``avx512``, ``avx2``, ``neon``, or ``other``.

    Recorded because it decides results, not only speed: oneDNN and the BLAS pick different kernels on an
    AVX-512 and an AVX2 machine, and their rounding differs, so one seed trains to different accuracies
    (measured: date/attention/small, quick suite, 91.6 % on one, 82.8 % on the other). A CPU baseline is
    therefore valid for one instruction set.
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith(("flags", "Features"))), [])
    except OSError:
        flags = []
    for isa, flag in (("avx512", "avx512f"), ("avx2", "avx2"), ("neon", "asimd")):
        if flag in flags:
            return isa
    return "other"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def capture(device: torch.device) -> dict:
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    env = {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": None if dirty is None else bool(dirty),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": str(device),
        "device_type": device.type,
        "device_name": device_name(device),
        "device_count": torch.cuda.device_count() if device.type == "cuda" else 1,
        "cpu": cpu_model(),
        "cpu_isa": cpu_isa(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }
    try:
        import numpy as np

        env["numpy"] = np.__version__
    except ImportError:  # pragma: no cover
        pass
    return env
