"""Shards: one suite split into N parts that N independent jobs run -- a Slurm job array, a Kubernetes
indexed Job, a CI matrix -- each into its own store, joined afterwards by ``s2sbench merge``.

No job talks to another, so every shard computes the whole partition itself and keeps its part. The
partition therefore depends only on the set of runs, never on the order of the suite file or on the
machine: runs are taken in the order of their keys (``RunSpec.key()``), each gets an integer cost
estimate, and longest-processing-time-first assigns them to the N shards (the most expensive run not yet
placed goes to the shard with the least work so far; ties go to the lower shard). Costs are integers, so
floating point cannot make two machines disagree.

``K/N`` counts from 1: shard 1/4 .. 4/4 (Slurm's ``--array=1-4`` gives SLURM_ARRAY_TASK_ID 1..4; a
0-based index such as Kubernetes' JOB_COMPLETION_INDEX needs ``$((JOB_COMPLETION_INDEX + 1))``).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
from collections.abc import Sequence
from typing import Any

import models
from bench.data import tasks
from bench.spec.run import RunSpec


def parse(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N), 1 <= K <= N. Raises ``argparse.ArgumentTypeError`` (the parser's one-line error)."""
    k_s, sep, n_s = text.partition("/")
    try:
        k, n = int(k_s), int(n_s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard must be K/N with whole numbers, e.g. 1/4, got {text!r}") from None
    if not sep or n < 1:
        raise argparse.ArgumentTypeError(f"shard must be K/N with N >= 1, got {text!r}")
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"shard K/N counts from 1: K must be in 1..{n}, got {text!r}")
    return k, n


def _train_examples(spec: RunSpec) -> int:
    d = spec.data
    n = d.train
    if d.task_file and os.path.exists(d.task_file):
        with open(d.task_file, "rb") as f:
            n = sum(1 for _ in f)
    return min(n, d.train_size) if d.train_size is not None else n


def _example_length(spec: RunSpec) -> int:
    """Mean source + target characters of the run's examples, from 64 generated ones (or a file's first lines)."""
    d = spec.data
    try:
        if d.task_file:
            with open(d.task_file, encoding="utf-8", errors="replace") as f:
                lines = [ln.rstrip("\n") for _, ln in zip(range(256), f)]
            return max(1, sum(map(len, lines)) // max(len(lines), 1))
        data = tasks.make(d.task, tasks.TaskOptions(seed=d.seed, train=64, valid=1, test=1, train_lengths=d.train_lengths,
                                                    test_lengths=d.test_lengths))
        return max(1, sum(len(e.src) + len(e.tgt) for e in data.train) // max(len(data.train), 1))
    except Exception:  # noqa: BLE001 -- an estimate; bad tasks and files are refused elsewhere, with their own message
        return 16


def cost(spec: RunSpec, _cache: dict[tuple, int] | None = None) -> int:
    """An integer estimate of a run's time: model factor x parameters^(3/4) x (example length + 4) x examples.

    Step time grows slower than the parameter count at these sizes (8x the parameters from tiny to small
    took 4.4x the time), hence the 3/4 power, computed in integers (isqrt) so that it is exact everywhere.
    Time per example grows with its length plus a fixed per-example share of the step overhead (the quick
    suite's date runs, 23 characters, took 2-2.8x as long as its addition runs, 7 characters: +4 fits).
    Examples: every epoch's training examples plus half a validation pass (greedy decoding), and the test
    pass. It is the budget, an upper bound: a run that reaches its target early costs less.
    """
    cache = {} if _cache is None else _cache
    pk = ("params", spec.model, spec.size, spec.model_options)
    if pk not in cache:
        cache[pk] = models.param_count(spec.model, models.BUDGET_VOCAB, spec.size, **dict(spec.model_options))  # meta: no allocation
    lk = ("length", spec.data.task, spec.data.task_file, spec.data.seed, spec.data.train_lengths, spec.data.test_lengths)
    if lk not in cache:
        cache[lk] = _example_length(spec)
    p = cache[pk]
    p34 = math.isqrt(p) * math.isqrt(math.isqrt(p))
    t = spec.train
    work = t.epochs * (_train_examples(spec) + spec.data.valid // 2) + spec.data.test // 2
    return models.entry(spec.model).meta.cost * p34 * (cache[lk] + 4) * max(work, 1)


def partition(specs: Sequence[RunSpec], n: int) -> list[list[RunSpec]]:
    """The runs split into ``n`` shards of about equal cost; each shard's runs in key order."""
    cache: dict[tuple, int] = {}
    by_key = sorted(specs, key=RunSpec.key)
    costed = sorted(((cost(s, cache), s.key(), s) for s in by_key), key=lambda c: (-c[0], c[1]))
    loads = [0] * n
    shards: list[list[RunSpec]] = [[] for _ in range(n)]
    for c, _, s in costed:
        i = min(range(n), key=lambda j: (loads[j], j))
        loads[i] += c
        shards[i].append(s)
    return [sorted(sh, key=RunSpec.key) for sh in shards]


def fingerprint(specs: Sequence[RunSpec]) -> str:
    """A short hash of the set of run keys: shards of one suite carry the same one (merge checks it)."""
    return hashlib.sha256("\n".join(sorted(s.key() for s in specs)).encode()).hexdigest()[:12]


def select(specs: Sequence[RunSpec], shard: tuple[int, int]) -> tuple[list[RunSpec], dict[str, Any]]:
    """-> (this shard's runs in suite order, what the session records about the shard)."""
    k, n = shard
    parts = partition(specs, n)
    mine = {s.key() for s in parts[k - 1]}
    cache: dict[tuple, int] = {}
    total = sum(cost(s, cache) for s in specs) or 1
    info = {"index": k, "count": n, "runs": len(mine), "suite_runs": len(specs), "suite_fingerprint": fingerprint(specs),
            "cost_share": round(sum(cost(s, cache) for s in parts[k - 1]) / total, 4)}
    return [s for s in specs if s.key() in mine], info
