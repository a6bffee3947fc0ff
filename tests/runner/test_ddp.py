"""Data-parallel runs on CPU (gloo, two processes): the same steps give the parameters of a single-process run
with the same global batch; torchrun + --ddp stores one run from rank 0 with its world size and throughput."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import models
from bench.data.batching import batches
from bench.results.store import Store
from bench.runner.cache import DataCache
from bench.runner.ddp import Group
from bench.spec.run import DataSpec, TrainConfig
from bench.train.loop import fit
from bench.train.seeding import seed_everything
from tests.conftest import HANG_S, REPO, run_cli

# 97 examples in batches of 32: 32, 32, 32 and a last batch of ONE row, so rank 1 also gets an empty slice.
DATA = DataSpec(task="date", seed=0, train=97, valid=16, test=16)
CFG = TrainConfig(epochs=2, batch_size=32, lr=3e-3, target=None, eval_batch_size=64)
MODELS = [("attention", {}), ("transformer", {"dropout": 0.0})]  # dropout would draw different masks per rank


def _train(name: str, opts: dict, parallel=None):
    prep = DataCache().get(DATA)
    seed_everything(0)
    model = models.build(name, len(prep.vocab), "tiny", **opts)
    runnable = parallel.wrap(model) if parallel is not None else model
    fr = fit(runnable, prep.train, prep.valid, CFG, torch.device("cpu"), seed=0, parallel=parallel)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, fr.history()


def _without_key_bias(k: str, t: torch.Tensor) -> torch.Tensor:
    """The Transformer's key bias adds the same q.b to every score of a query, which softmax ignores: its true
    gradient is zero, what backward computes is rounding noise, and Adam scales noise up to a full step. Two
    summation orders (one process, two ranks) give different noise, so that slice is left out of the comparison;
    every other parameter must match."""
    if k.endswith("qkv.bias"):
        q, _, v = t.chunk(3)
        return torch.cat([q, v])
    if k.endswith("kv.bias"):
        return t.chunk(2)[1]
    return t


def _rank(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        group = Group(rank, world, rank, "gloo", torch.device("cpu"))
        for name, opts in MODELS:
            params, history = _train(name, opts, group)
            torch.save({"params": params, "history": history}, os.path.join(out_dir, f"{name}-rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_match_a_single_process_with_the_same_global_batch(tmp_path):
    mp.spawn(_rank, args=(2, str(tmp_path / "pg"), str(tmp_path)), nprocs=2, join=True)
    for name, opts in MODELS:
        single, single_hist = _train(name, opts)
        r0, r1 = (torch.load(tmp_path / f"{name}-rank{r}.pt") for r in (0, 1))
        for k, v in single.items():
            assert torch.equal(r0["params"][k], r1["params"][k]), (name, k)  # the ranks agree exactly
            torch.testing.assert_close(_without_key_bias(k, r0["params"][k]), _without_key_bias(k, v), rtol=1e-4, atol=1e-5,
                                       msg=f"{name} {k}")
        seed_everything(0)
        init = models.build(name, len(DataCache().get(DATA).vocab), "tiny", **opts).state_dict()
        moved = max(float((single[k] - init[k]).abs().max()) for k in single)
        assert moved > 1e-3  # the steps moved the parameters far more than the tolerance
        for a, b in zip(r0["history"], single_hist):
            assert a["tokens"] == b["tokens"] and a["examples"] == b["examples"]  # global counts, not one rank's
            assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
            assert a["valid_exact_match"] == b["valid_exact_match"]


def test_split_gives_every_row_to_exactly_one_rank_and_keeps_the_global_divisor():
    prep = DataCache().get(DATA)
    groups = [Group(r, 3, r, "gloo", torch.device("cpu")) for r in range(3)]
    gen = torch.Generator().manual_seed(0)
    seen = []
    for b in batches(prep.train, 32, shuffle=True, generator=gen):
        total = int(prep.train.tgt_len[b.index].sum())
        parts = [g.split(prep.train, b) for g in groups]
        assert all(d == pytest.approx(total / 3) for _, d in parts)
        assert sum(p.target_tokens for p, _ in parts) == total  # an empty slice contributes no tokens
        for p, _ in parts:
            if p.target_tokens:
                seen.extend(p.index.tolist())
                assert p.src.size(1) == int(prep.train.src_len[p.index].max())  # trimmed to its own longest row
    assert sorted(seen) == list(range(len(prep.train)))


def test_torchrun_ddp_session_is_written_by_rank_0_with_world_size_and_throughput(tmp_path):
    store = str(tmp_path / "ddp.sqlite")
    args = ["run", "--task", "date", "--model", "attention", "--size", "tiny", "--epochs", "2", "--train-size", "97", "--device", "cpu",
            "--threads", "1"]
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "bench", *args,
                        "--ddp", "--store", store], cwd=REPO, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("1 runs ok, 0 failed") == 1  # rank 0 alone reports (and writes)
    st = Store.open_existing(store)
    (sess,) = st.sessions()
    (run,) = st.runs(sess["id"])
    assert sess["status"] == "finished" and sess["env"]["ddp"] == {"world_size": 2, "backend": "gloo", "device": "cpu"}
    m = run.metrics
    assert run.status == "ok" and m["world_size"] == 2 and m["ddp_backend"] == "gloo"
    assert m["train_tokens_per_s_per_device"] == pytest.approx(m["train_tokens_per_s"] / 2)
    # the same training as one process with the same global batch
    single = str(tmp_path / "single.sqlite")
    rc, _, err = run_cli([*args, "--store", single])
    assert rc == 0, err
    (one,) = Store.open_existing(single).runs()
    assert one.key == run.key
    assert [h["tokens"] for h in run.history] == [h["tokens"] for h in one.history]
    assert [h["loss"] for h in run.history] == pytest.approx([h["loss"] for h in one.history], rel=1e-5)


def test_ddp_outside_torchrun_is_one_line_and_exit_2(tmp_path, monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    store = tmp_path / "s.sqlite"
    rc, out, err = run_cli(["run", "--task", "date", "--model", "attention", "--size", "tiny", "--device", "cpu", "--ddp", "--store",
                            str(store)])
    assert rc == 2 and "torchrun" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not store.exists()
