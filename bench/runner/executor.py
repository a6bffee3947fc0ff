"""Executors: where a session's runs execute. ``run_session`` hands them the runs still to do and records
each :class:`Outcome` as it comes back -- so resume, failure records and progress are the same whichever
executor ran the runs, and the process that called ``run_session`` is the only one writing the store.

An executor answers four questions: which device the runs use (``resolve_device``), how fast that device
is (``calibrate``: the fixed workload compare normalises by), what it is (``environment``), and -- the work
itself -- ``map``: runs in, outcomes out, in the order they end. :class:`LocalExecutor` is this process,
one run after another; ``bench.runner.ray_executor.RayExecutor`` hands runs to a Ray cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch

from bench.errors import UserError
from bench.measure import environment
from bench.measure.calibrate import calibrate
from bench.measure.device import resolve_device
from bench.runner.cache import DataCache
from bench.runner.execute import execute, failure_reason, now
from bench.runner.progress import Progress
from bench.spec.run import RunSpec, SessionConfig

if TYPE_CHECKING:
    from bench.runner.ddp import Group


@dataclass(frozen=True)
class RunContext:
    """What a session gives its executor: the data cache, the resolved device, the session config, progress, and
    ``claim``: called with each run just before it starts (or is handed out); a run it answers False for is
    skipped (stored already, or another process holds it), and what it raises ends the session."""

    cache: DataCache
    device: torch.device
    sc: SessionConfig
    progress: Progress
    claim: Callable[[RunSpec], bool] | None = None

    def claimed(self, spec: RunSpec) -> bool:
        return self.claim is None or self.claim(spec)


@dataclass(frozen=True)
class Outcome:
    """One run's end: its measurements, or ``error`` (the reason it failed) and nothing measured."""

    spec: RunSpec
    started: str
    finished: str
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)


class Executor(Protocol):
    def resolve_device(self, name: str) -> torch.device: ...

    def calibrate(self, device: torch.device, sc: SessionConfig) -> dict[str, Any]: ...

    def environment(self, device: torch.device) -> dict[str, Any]: ...

    def map(self, specs: list[RunSpec], ctx: RunContext) -> Iterator[Outcome]: ...


class LocalExecutor:
    """Every run in this process, one after another (a session's behaviour before executors existed).

    ``parallel``: this process is one rank of a data-parallel group (``bench.runner.ddp``): each run is trained
    DistributedDataParallel across the group's processes. ``run``: what executes one run (tests pass a
    replacement here rather than patching a module).
    """

    def __init__(self, parallel: Group | None = None, run: Callable[..., tuple[dict, list, list]] = execute) -> None:
        self.parallel = parallel
        self.run = run

    def resolve_device(self, name: str) -> torch.device:
        return resolve_device(name)

    def calibrate(self, device: torch.device, sc: SessionConfig) -> dict[str, Any]:
        return calibrate(device)

    def environment(self, device: torch.device) -> dict[str, Any]:
        return environment.capture(device) | {"executor": "local"}

    def map(self, specs: list[RunSpec], ctx: RunContext) -> Iterator[Outcome]:
        kw = {"parallel": self.parallel} if self.parallel is not None else {}
        for spec in specs:
            if not ctx.claimed(spec):
                continue
            ctx.progress.start_run(spec.label())
            started = now()
            try:
                prep = ctx.cache.get(spec.data)
                metrics, history, samples = self.run(spec, prep, ctx.device, ctx.sc, ctx.progress, **kw)
                outcome = Outcome(spec, started, now(), None, metrics, history, samples)
            except UserError:
                raise
            except Exception as e:  # noqa: BLE001 -- any failure of one run is recorded and the session goes on
                outcome = Outcome(spec, started, now(), failure_reason(e))
                if ctx.device.type == "cuda":
                    torch.cuda.empty_cache()
            yield outcome
