"""``--executor ray``: a session's runs as Ray tasks; the driver alone writes the store.

Each run is one task asking for what it needs -- ``num_gpus=1`` (and one CPU) for a CUDA run,
``num_cpus=--threads`` (default 1) for a CPU run -- so Ray packs as many runs onto each node as its
resources allow. The task (:func:`run_remote`) builds the run's data in the worker (``DataCache``: data
is a pure function of its spec, so nothing large travels), calls ``bench.runner.execute.execute`` and returns
plain data; the driver records every result as it comes back (``ray.wait``), in one transaction per run,
so ``--resume``, failure records and progress work as in a local session.

A run that raises is recorded as failed with its reason, as locally. A worker that dies (killed, out of
memory, its node gone) takes only its run: Ray reports ``WorkerCrashedError`` / ``NodeDiedError`` /
``OutOfMemoryError`` for that task, and the run is recorded as failed with that reason. Tasks are not
retried (``max_retries=0``): a crash is a result; ``--resume`` runs the failed runs again.

The calibration and the environment recorded with the session are measured by one task on a worker with
the same resources as a run, not on the driver (often a head node without a GPU). Runs are submitted
longest first (``bench.runner.shard.cost``) so that the slow ones do not end up last.

Data files named by a suite (``task_files``) must exist at the same path on every node (a shared file
system), and s2sbench must be importable on the workers (installed, or the driver's working directory,
which Ray puts on local workers' path). So must a run's plugins: the worker loads the ``--plugin`` files and
modules the run carries (``RunSpec.plugins``, absolute paths) before it builds anything, and the entry points of
the packages installed there.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import torch

from bench.errors import UserError
from bench.measure import environment
from bench.measure.calibrate import calibrate
from bench.runner.cache import DataCache
from bench.runner.execute import execute, failure_reason, now
from bench.runner.executor import Outcome, RunContext
from bench.runner.plugins import load
from bench.runner.shard import cost
from bench.spec.run import RunSpec, SessionConfig, parse_device
from bench.train.seeding import set_deterministic


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 's2sbench[ray]' (or pip install ray)") from None
    return ray


def _reachable(address: str, timeout: float = 5.0) -> bool:
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def resolve_address(ray: Any, address: str) -> str:
    """``auto`` -> the running cluster's address (RAY_ADDRESS, or the one ``ray start`` left); then check that
    something listens there. Ray itself retries an unreachable address for many minutes before failing."""
    if address == "auto":
        try:
            from ray._private import services

            address = services.canonicalize_bootstrap_address("auto") or ""
        except ConnectionError as e:
            raise UserError(f"--address auto: {str(e).splitlines()[0]}") from None
        except (ImportError, AttributeError):  # a Ray without that helper: its own lookup decides
            return "auto"
        if not address:
            raise UserError("--address auto: no running Ray cluster found (start one with `ray start --head`, or set RAY_ADDRESS)")
    if ":" not in address.split("://", 1)[-1]:
        raise UserError(f"--address {address!r}: give HOST:PORT (the head node's GCS port, 6379 by default) or auto")
    if not _reachable(address):
        raise UserError(f"cannot reach a Ray cluster at {address} (nothing answers there); is `ray start --head` running?")
    return address


def run_remote(spec: RunSpec, sc: SessionConfig, device_type: str, cpus: int) -> dict[str, Any]:
    """In a Ray worker: build the data, run ``bench.runner.execute.execute``, return plain data (never raises)."""
    started = now()
    torch.set_num_threads(sc.threads or cpus)
    set_deterministic(sc.deterministic)
    device = torch.device("cuda" if device_type == "cuda" else "cpu")  # Ray gives the task its GPU as cuda:0
    host = socket.gethostname()
    try:
        load(spec.plugins)  # the plugins this run's model and task came from, as the driver loaded them
        prep = DataCache().get(spec.data)
        metrics, history, samples = execute(spec, prep, device, sc)
        metrics["worker_host"] = host
        error = None
    except Exception as e:  # noqa: BLE001 -- recorded as the run's failure, as in a local session
        metrics, history, samples, error = {}, [], [], f"{failure_reason(e)} [on {host}]"
    return {"started": started, "finished": now(), "error": error, "metrics": metrics, "history": history, "samples": samples}


def probe_remote(sc: SessionConfig, device_type: str, cpus: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """In a Ray worker: the calibration and the environment of a worker like the ones the runs get."""
    torch.set_num_threads(sc.threads or cpus)
    set_deterministic(sc.deterministic)
    device = torch.device("cuda" if device_type == "cuda" else "cpu")
    return calibrate(device), environment.capture(device)


class RayExecutor:
    """Runs as Ray tasks. ``address``: None starts a local Ray instance (``num_cpus`` CPUs; default all),
    ``auto`` joins the running cluster, ``HOST:PORT`` (or ``ray://HOST:PORT``) a given one.

    ``task``: the function each run executes in a worker (default :func:`run_remote`; tests swap it).
    """

    def __init__(self, address: str | None = None, threads: int | None = None, num_cpus: int | None = None,
                 task: Callable[..., dict[str, Any]] = run_remote) -> None:
        self.ray = _import_ray()
        self.threads = threads or 1
        self.task = task
        self.address = resolve_address(self.ray, address) if address else None
        self.owned = False
        if not self.ray.is_initialized():
            import logging

            try:
                self.ray.init(address=self.address, num_cpus=num_cpus if self.address is None else None, include_dashboard=False,
                              log_to_driver=False, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise UserError(f"cannot start or join Ray ({self.address or 'local'}): "
                                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
            self.owned = True
        self._env: dict[str, Any] = {}

    def close(self) -> None:
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()
            self.owned = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Executor ---------------------------------------------------------------------------------------
    def resolve_device(self, name: str) -> torch.device:
        name = parse_device(name)  # the one device parser; what the cluster has is checked here
        gpus = self.ray.cluster_resources().get("GPU", 0)
        if name == "auto":
            return torch.device("cuda" if gpus else "cpu")
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
        if dev.type == "cuda":
            if not gpus:
                raise UserError(f"device {name!r} asked for, but the Ray cluster has no GPUs")
            return torch.device("cuda")  # each task gets one GPU of its own, whichever index the node gives it
        if dev.type != "cpu":
            raise UserError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
        return dev

    def _resources(self, device: torch.device) -> dict[str, Any]:
        return {"num_gpus": 1, "num_cpus": 1} if device.type == "cuda" else {"num_cpus": self.threads}

    def calibrate(self, device: torch.device, sc: SessionConfig) -> dict[str, Any]:
        res = self._resources(device)
        probe = self.ray.remote(probe_remote).options(max_retries=0, **res)
        try:
            cal, self._env = self.ray.get(probe.remote(sc, device.type, res["num_cpus"]))
        except self.ray.exceptions.RayError as e:
            raise UserError(f"the Ray calibration task failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        return cal

    def environment(self, device: torch.device) -> dict[str, Any]:
        env = dict(self._env) if self._env else environment.capture(torch.device("cpu"))
        res = self.ray.cluster_resources()
        return env | {"executor": "ray", "ray_address": self.address or "local", "driver_host": socket.gethostname(),
                      "ray_version": self.ray.__version__, "ray_nodes": len(self.ray.nodes()),
                      "ray_resources": {k: res[k] for k in ("CPU", "GPU") if k in res}}

    def map(self, specs: list[RunSpec], ctx: RunContext) -> Iterator[Outcome]:
        ray = self.ray
        res = self._resources(ctx.device)
        remote = ray.remote(self.task).options(max_retries=0, **res)
        cache: dict[tuple, int] = {}
        order = sorted(specs, key=lambda s: (-cost(s, cache), s.key()))
        pending: dict[Any, tuple[RunSpec, str]] = {}
        try:
            for spec in order:  # each run claimed as it is handed to the cluster
                if ctx.claimed(spec):
                    pending[remote.remote(spec, ctx.sc, ctx.device.type, res["num_cpus"])] = (spec, now())
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                spec, submitted = pending.pop(ref)
                ctx.progress.start_run(spec.label())
                try:
                    r = ray.get(ref)
                    outcome = Outcome(spec, r["started"], r["finished"], r["error"], r["metrics"], r["history"], r["samples"])
                except ray.exceptions.RayError as e:  # the worker died, or its node: this run only
                    first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
                    outcome = Outcome(spec, submitted, now(), f"worker lost: {type(e).__name__}: {first}")
                yield outcome
        finally:  # interrupted (Ctrl-C) or failed: nothing left running on the cluster
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001,S110 -- best effort; the task may have just ended
                    pass

