"""Data-parallel runs: ``torchrun --nproc-per-node N -m bench run ... --ddp``.

Every process (rank) runs the same session; each run is trained ``DistributedDataParallel`` across the
ranks -- NCCL between GPUs (rank r on ``cuda:LOCAL_RANK``), gloo between CPU processes -- and rank 0
alone writes the store (the others write to a throw-away in-memory store).

The optimisation is the single-device one, only spread out (Goyal et al. 2017 call this keeping the
*global* batch): ``batch_size`` is the global batch. Every rank builds the same epoch's batch list from
the run's seed (length bucketing and all), and rank r takes rows r, r+N, r+2N, ... of each global batch
(strided, so the ranks get similar lengths). DDP averages gradients over ranks, so each rank divides its
summed loss by (global target tokens / N): the average is then exactly the gradient of the global
batch's mean token loss -- the same step a single process takes on the whole batch, up to float
summation order (a test checks the parameters). A rank whose slice is empty (a last batch smaller than
N) trains on a row with every target masked: zero loss, zero gradient, but it joins the all-reduce.

Epoch loss and tokens are summed over ranks, epoch time is the slowest rank's, the validation accuracy is
averaged (identical in practice; averaged so every rank takes the same stop decision). The run records
``world_size``, throughput in total (``train_tokens_per_s``) and per device, and MFU per device.

Limit: a run that fails on one rank only (out of memory on one GPU) leaves the others waiting in a
collective until the backend's timeout; a failure that every rank sees (bad config, divergence -- the
loss is reduced before it is checked) is recorded as usual.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from bench.data.batching import Batch, Encoded, make_batch
from bench.data.vocab import PAD
from bench.errors import UserError
from bench.results.store import Store
from bench.runner.progress import Progress
from bench.spec.run import parse_device


class _DDP(DistributedDataParallel):
    """DDP that also exposes the model's greedy decoding (evaluation runs it unsynchronised, per rank)."""

    def generate(self, *args: Any, **kw: Any) -> Any:
        return self.module.generate(*args, **kw)


@dataclass(frozen=True)
class Group:
    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device

    @classmethod
    def from_torchrun(cls, device_name: str) -> Group:
        """Join the process group torchrun set up (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT)."""
        if not all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):
            raise UserError("--ddp runs under torchrun: torchrun --nproc-per-node N -m bench run ... --ddp")
        rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
        device_name = parse_device(device_name)  # the one device parser; what this machine has is checked here
        if device_name == "auto":
            device_name = "cuda" if torch.cuda.is_available() else "cpu"
        kind = device_name.split(":")[0]
        if kind == "cuda":
            if not torch.cuda.is_available():
                raise UserError(f"device {device_name!r} asked for, but CUDA is not available here")
            if local >= torch.cuda.device_count():
                raise UserError(f"--ddp: local rank {local} but this machine has {torch.cuda.device_count()} CUDA device(s); "
                                "use --nproc-per-node <= the GPU count")
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
            backend = "nccl"
        elif kind == "cpu":
            device, backend = torch.device("cpu"), "gloo"
        else:
            raise UserError(f"device {device_name!r} is not supported with --ddp; use auto, cpu or cuda")
        if not dist.is_initialized():
            dist.init_process_group(backend)
        return cls(rank, world, local, backend, device)

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    # the session ------------------------------------------------------------------------------------
    def session_config(self, sc: Any) -> Any:
        return replace(sc, device=str(self.device))

    def describe(self) -> dict[str, Any]:
        return {"world_size": self.world_size, "backend": self.backend, "device": str(self.device)}

    def open_store(self, opener: Callable[[], tuple[Any, str | None]], specs: list) -> tuple[Any, str | None, list]:
        """Rank 0 opens the real store (``opener`` -> store, session to resume); every rank then runs the same
        runs: the others skip what rank 0's resumed session already holds and write to memory only."""
        msg: tuple[str, Any] | None = None
        store = resume = err = None
        if self.rank == 0:
            try:
                store, resume = opener()
                msg = ("ok", sorted(store.done_keys(resume)) if resume else [])
            except UserError as e:
                msg = ("error", str(e))
                err = e
        box = [msg]
        dist.broadcast_object_list(box, src=0)
        kind, payload = box[0]  # type: ignore[misc]
        if kind == "error":
            if err is not None:
                raise err
            raise UserError(f"rank 0: {payload}")
        if self.rank == 0:
            return store, resume, specs
        done = set(payload)
        return Store(":memory:"), None, [s for s in specs if s.key() not in done]

    def progress(self) -> Any:
        """Rank 0 shows progress; the others are silent."""
        return None if self.rank == 0 else Progress(0, stream=open(os.devnull, "w"))  # noqa: SIM115 -- lives as long as the session

    # train.Parallel ---------------------------------------------------------------------------------
    def split(self, train: Encoded, b: Batch) -> tuple[Batch, float]:
        denom = int(train.tgt_len[b.index].sum()) / self.world_size
        rows = b.index[self.rank :: self.world_size]
        if len(rows) == 0:
            d = make_batch(train, b.index[:1])
            return Batch(d.index, d.src, d.src_mask, d.tgt_in, torch.full_like(d.tgt_out, PAD)), denom
        return make_batch(train, rows), denom

    def all_reduce(self, values: list[float], op: str) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        if op == "mean":
            t /= self.world_size
        return t.tolist()

    # runner.execute ---------------------------------------------------------------------------------
    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """DDP around the model (rank 0's parameters broadcast); dropout streams differ per rank."""
        wrapped = _DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.rank > 0:
            torch.manual_seed(torch.initial_seed() + self.rank)
        return wrapped

    def metrics(self, m: dict[str, Any]) -> dict[str, Any]:
        w = self.world_size
        per = {k + "_per_device": (m[k] / w if m.get(k) else m.get(k)) for k in ("train_tokens_per_s", "train_examples_per_s")}
        return per | {"world_size": w, "ddp_backend": self.backend, "mfu": m["mfu"] / w if m.get("mfu") else m.get("mfu")}
