"""Where two or more sessions ran differently: the one list of environment fields a comparison must warn about."""

from __future__ import annotations

from typing import Any

# env key -> what people call it. A speed (or memory) difference across any of these mixes machine and code.
WARN_ON: tuple[tuple[str, str], ...] = (
    ("device_name", "devices"), ("device_type", "device types"), ("torch", "torch versions"), ("cuda", "CUDA versions"),
    ("threads", "CPU thread counts"), ("cpu_isa", "CPU instruction sets (kernels, hence CPU results, differ)"),
)


def differences(envs: list[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    """-> (key, what, the distinct values) for every warned-about field on which the environments differ.

    A field missing from an environment (older stores) does not count as a difference.
    """
    out = []
    for k, what in WARN_ON:
        vals = list(dict.fromkeys(str(e[k]) for e in envs if e.get(k) is not None))
        if len(vals) > 1:
            out.append((k, what, vals))
    return out
