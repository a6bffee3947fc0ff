"""Shared fixtures: small run specs, a finished store made through the CLI, store snapshots.

Tests run torch on one intra-op thread: on a small shared machine two processes each asking for every
core slow each other down by orders of magnitude, and results (what the tests assert) do not depend on
the thread count.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sqlite3
import sys
from collections.abc import Callable
from typing import Any

import pytest
import torch

torch.set_num_threads(int(os.environ.get("S2SBENCH_TEST_THREADS", "1")))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The data beside the project (the book's files, the CMUdict split): ../shared next to the checkout, or where
# S2SBENCH_SHARED points (a worktree elsewhere). Tests that need it skip cleanly without it.
SHARED = os.environ.get("S2SBENCH_SHARED") or os.path.join(REPO, "..", "shared")

# How long a test waits for a subprocess or a thread before calling it hung. Only a hang may reach it: a loaded
# machine must not. On 2 cores running two test suites, two CPU hogs and other jobs (load 13-20), starting Python
# and torch alone took tens of seconds, and the 120 s and 10 s bounds these waits had were the ones shared CI
# machines were suspected of breaking. Tests that time a figure compare ratios measured side by side instead.
HANG_S = 900

# Three tiny runs (one model, three seeds): a suite file for session-level tests.
TINY_SUITE = """
description = "three tiny runs"
[defaults]
sizes = ["tiny"]
train = 120
valid = 20
test = 20
epochs = 1
decode_repeats = 1
decode_batch = 8
[[runs]]
tasks = ["date"]
models = ["attention"]
seeds = [0, 1, 2]
"""


def builtin_models() -> list[str]:
    """The project's own models, in the story's order: the registry less installed plugins (CI installs the example
    plugin), for the tests that hold the shipped suites and sizes to every model the project has."""
    import models

    return [n for n in models.names() if not models.entry(n).meta.plugin]


@pytest.fixture(autouse=True)
def registries_as_they_were(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Whatever a test registers -- a toy model, a plugin loaded by ``run --plugin`` in this process -- is gone after it:
    the model and task registries, their entry-point state, and the modules plugins were imported as (a plugin's own
    name, or a file under pytest's temporary folder: never the system's temporary folder as a whole, which may hold
    the checkout and its venv -- torch's modules imported lazily during a test must stay imported)."""
    import models
    from bench.data import tasks
    from bench.data.tasks import base
    from bench.runner.plugins import MODULE_PREFIX
    from models import registry

    models.names()
    tasks.names()
    saved = [(d, dict(d)) for d in (registry._REGISTRY, registry._PLUGINS, base._REGISTRY, base._PLUGINS)]
    modules = set(sys.modules)
    yield
    for d, before in saved:
        d.clear()
        d.update(before)
    tmp = os.path.realpath(tmp_path_factory.getbasetemp())
    for name in set(sys.modules) - modules:
        where = getattr(sys.modules[name], "__file__", None) or ""
        if name.startswith(MODULE_PREFIX) or os.path.realpath(where).startswith(tmp + os.sep):
            del sys.modules[name]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``bench.cli.main(argv)`` in this process -> (exit code, stdout, stderr); argparse exits count too."""
    from bench.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse errors
            rc = e.code if isinstance(e.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def snapshot(path: str) -> dict[str, list[tuple]]:
    """Every row of the sessions and runs tables (read with plain sqlite3, not the code under test)."""
    db = sqlite3.connect(path)
    try:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("sessions", "runs", "meta")}
    finally:
        db.close()


def copy_store(src: str, dst_dir: str) -> str:
    """Copy a store (with its WAL files if any) into ``dst_dir``; -> the copy's path."""
    dst = os.path.join(dst_dir, os.path.basename(src))
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(src + suffix):
            shutil.copyfile(src + suffix, dst + suffix)
    return dst


@pytest.fixture
def shared_path() -> Callable[..., str]:
    """``shared_path("data", "cmudict")`` -> that path beside the project; the test skips when it is not there."""

    def find(*parts: str) -> str:
        p = os.path.join(SHARED, *parts)
        if not os.path.exists(p):
            pytest.skip(f"{os.path.join('..', 'shared', *parts)} (the data beside the project) is not here")
        return p

    return find


@pytest.fixture
def make_spec() -> Callable[..., Any]:
    """Factory for a small, fast RunSpec: date task, tiny model, a few hundred examples, 2 epochs."""
    from bench.spec.run import DataSpec, MeasureSpec, RunSpec, TrainConfig

    def make(model: str = "attention", seed: int = 0, task: str = "date", train: int = 240, epochs: int = 2,
             lr: float = 3e-3, **data: Any) -> RunSpec:
        return RunSpec(
            model=model,
            size="tiny",
            seed=seed,
            data=DataSpec(task=task, seed=0, train=train, valid=40, test=40, **data),
            train=TrainConfig(epochs=epochs, batch_size=32, lr=lr, target=None, eval_batch_size=64),
            measure=MeasureSpec(decode_batch=16, decode_repeats=1, samples=2),
        )

    return make


@pytest.fixture(scope="session")
def cli_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store holding one finished session of one tiny run, made by ``s2sbench run`` (in-process).

    Shared read-only: a test that writes to a store must work on ``copy_store(...)``.
    """
    d = tmp_path_factory.mktemp("cli_store")
    path = str(d / "bench.sqlite")
    rc, out, err = run_cli(["run", "--task", "date", "--model", "attention", "--size", "tiny", "--epochs", "1",
                            "--train-size", "200", "--device", "cpu", "--store", path])
    assert rc == 0, err
    from bench.results.store import Store

    store = Store.open_existing(path)
    try:
        sessions = store.sessions()
        runs = store.runs()
    finally:
        store.close()
    assert len(sessions) == 1 and len(runs) == 1
    return {"path": path, "session": sessions[0], "runs": runs, "stdout": out, "stderr": err}
