"""What makes two runs the same configuration, and how to say what differs between two that are not.

Two runs may be pooled -- averaged as seeds of one result -- only when nothing but the seed differs: the
run's ``config_hash`` (the hash of its config with the seed left out: precision, launch mode, model
options, training settings, data, mode) and, for a report, the device its session ran on. Pooling a fp32
and a bf16 run "as two seeds", or a CPU and a GPU session's speeds, makes a number that describes neither.

Every table row, curve and comparison pair is therefore one *configuration*, and a row is labelled by what
differs from the other rows of its task, model and size (``attention [bf16]``, ``attention [cuda: NVIDIA
H200]``), read from the stored configs (``bench.results.tidy.runs_frame``'s ``config`` column), never from
a table of known fields: a field added to the spec tomorrow is told apart the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

DEVICE = "device"  # the pseudo-field of a flattened config that holds the session's device
# What the models of one table share: the config less the model's own fields (its name and options).
MODEL_FIELDS = ("model", "model_options")
# A sweep point's own fields: every example of one source length (bench.spec.suite: 'lengths').
LENGTH_FIELDS = ("data.train_lengths", "data.test_lengths")
# The fields people look for first, in this order; the others follow alphabetically.
PRIORITY = (DEVICE, "train.amp", "train.capture", "throughput.steps", "size")
# A field a config leaves out when it holds its default (bench.spec.run.RunSpec.config): what it means.
ABSENT = {"train.capture": "eager", "throughput.steps": "time to quality", "train.schedule": "constant", "train.lr_warmup": "lr_warmup=0",
          "train.label_smoothing": "label_smoothing=0", "train.weight_decay": "weight_decay=0"}


def model_label(model: str, options: Any) -> str:
    """``attention`` or, with non-default options, ``attention(score=general)``: options make another model."""
    try:
        opts = json.loads(options) if isinstance(options, str) else (options or {})
    except ValueError:
        opts = {}
    if not isinstance(opts, dict) or not opts:
        return model
    return f"{model}({','.join(f'{k}={opts[k]}' for k in sorted(opts))})"


def device_text(name: Any, kind: Any = None) -> str | None:
    """``cuda: NVIDIA H200`` -- the device as a label shows it; None when the session did not record it."""
    if name is None or (isinstance(name, float) and name != name):
        return None
    return f"{kind}: {name}" if kind and not str(name).lower().startswith(str(kind).lower()) else str(name)


def flatten(config: Mapping[str, Any] | str | None, prefix: str = "") -> dict[str, Any]:
    """A nested config -> ``{"train.amp": "bf16", ...}``; lists become tuples so values compare and hash."""
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            return {}
    out: dict[str, Any] = {}
    for k, v in (config or {}).items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, name + "."))
        else:
            out[name] = tuple(v) if isinstance(v, list) else v
    return out


def without(flat: Mapping[str, Any], drop: Iterable[str]) -> dict[str, Any]:
    """``flat`` less the fields named in ``drop`` (a name drops the field and every field under it)."""
    drop = tuple(drop)
    return {k: v for k, v in flat.items() if not any(k == d or k.startswith(d + ".") for d in drop)}


def digest(flat: Mapping[str, Any]) -> str:
    """A short stable name of a (partial) configuration: equal fields, equal digest."""
    return hashlib.sha256(json.dumps(sorted(flat.items()), default=str).encode()).hexdigest()[:12]


def _order(key: str) -> tuple[int, str]:
    return (PRIORITY.index(key) if key in PRIORITY else len(PRIORITY), key)


def differing(flats: Iterable[Mapping[str, Any]]) -> list[str]:
    """The fields whose values are not all equal (a field one config lacks counts as a value), people's order first."""
    flats = list(flats)
    keys = {k for f in flats for k in f}
    return sorted((k for k in keys if len({json.dumps(f.get(k), default=str) for f in flats}) > 1), key=_order)


def describe(key: str, value: Any) -> str:
    """One field's value as a label shows it: ``bf16``, ``fp32``, ``compile``, ``cpu: AMD EPYC``, ``epochs=5``."""
    if value is None and key in ABSENT:
        return ABSENT[key]
    if key == DEVICE:
        return "device unknown" if value is None else str(value)
    if key == "train.amp":
        return "fp32" if value in (None, "off") else str(value)
    if key in ("train.capture", "train.schedule"):
        return str(value)
    if key == "throughput.steps":
        return f"{value} steps"
    if key.startswith("model_options."):
        return f"{key.split('.', 1)[1]}={'default' if value is None else value}"
    if key == "data.train_lengths" and isinstance(value, tuple) and len(value) == 2:
        return f"length {value[0]}" if value[0] == value[1] else f"lengths {value[0]}–{value[1]}"
    if key == "data.task_file" and isinstance(value, str):
        value = value.replace("\\", "/").rsplit("/", 1)[-1]
    shown = "–" if value is None else ("[" + ", ".join(map(str, value)) + "]") if isinstance(value, tuple) else value
    return f"{key.rsplit('.', 1)[-1]}={shown}"


def labels(configs: Mapping[str, Mapping[str, Any]], limit: int = 3) -> dict[str, str]:
    """id -> what sets this configuration apart from the others given (empty when it is the only one).

    At most ``limit`` fields are named (device, precision and launch mode first); the rest are counted,
    so a label stays short enough for a table cell, and the report's configuration list has them all.
    """
    keys = differing(configs.values())
    if set(LENGTH_FIELDS) <= set(keys) and all(f.get(LENGTH_FIELDS[0]) == f.get(LENGTH_FIELDS[1]) for f in configs.values()):
        keys.remove(LENGTH_FIELDS[1])  # one length for training and test (a sweep point): say it once
    out = {}
    for cid, flat in configs.items():
        parts = [describe(k, flat.get(k)) for k in keys]
        out[cid] = ", ".join(parts[:limit]) + (f", +{len(parts) - limit} more" if len(parts) > limit else "")
    return out


def diff_text(a: Mapping[str, Any], b: Mapping[str, Any], limit: int = 6) -> str:
    """``train.amp off → bf16, data.train 5000 → 300``: every field on which two configs differ."""
    parts = [f"{k} {_show(a.get(k))} → {_show(b.get(k))}" for k in differing([a, b])]
    return ", ".join(parts[:limit]) + (f", and {len(parts) - limit} more" if len(parts) > limit else "")


def _show(v: Any) -> str:
    if v is None:
        return "(absent)"
    return "[" + ", ".join(map(str, v)) + "]" if isinstance(v, tuple) else str(v)
