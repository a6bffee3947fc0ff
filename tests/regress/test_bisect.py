"""``s2sbench bisect``: the suite it writes runs the stored runs again, bad input is refused before anything
runs, and on a small repository of this project's code with a planted slowdown it finds the planted commit."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from bench.regress import bisect
from bench.results.store import Store
from bench.spec import suite as suite_mod
from bench.spec.run import DataSpec, RunSpec, ThroughputSpec, TrainConfig
from tests.conftest import REPO, run_cli
from tests.factories import run_record

GOOD = '[defaults]\nsizes = ["tiny"]\nepochs = 1\n[[runs]]\ntasks = ["date"]\nmodels = ["attention"]\n'


def torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def _git(repo, *args: str) -> str:
    p = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env={**os.environ, **GIT_ENV})
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def _commit(repo, message: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


# --- the suite it writes -----------------------------------------------------------------------------------
def test_the_written_suite_runs_the_stored_configs_again(tmp_path) -> None:
    specs = [
        RunSpec("attention", "tiny", seed, DataSpec(task="date", train=320, valid=20, test=20, reverse_source=True),
                TrainConfig(epochs=3, batch_size=32, lr=0.003), model_options=(("score", "general"),))
        for seed in (0, 2)
    ] + [
        RunSpec("transformer", "small", 0, DataSpec(task="copy", train_lengths=(1, 10), test_lengths=(11, 20)), TrainConfig(amp="bf16")),
        RunSpec("gnmt", "tiny", 1, DataSpec(task="addition", train=100), TrainConfig(batch_size=16),
                throughput=ThroughputSpec(steps=20, warmup=3)),
    ]
    path = tmp_path / "s.toml"
    path.write_text(bisect.suite_text([s.config() for s in specs], "again"), encoding="utf-8")
    _, desc, loaded = suite_mod.load(str(path))
    assert desc == "again"
    assert sorted(s.key() for s in loaded) == sorted(s.key() for s in specs)  # the same configs, to the hash
    assert all(s.config() == t.config() for s, t in zip(sorted(loaded, key=lambda s: s.key()), sorted(specs, key=lambda s: s.key())))


def test_a_run_stored_without_a_target_runs_to_100_percent(tmp_path) -> None:
    spec = RunSpec("attention", "tiny", 0, DataSpec(task="date"), TrainConfig(target=None, epochs=2))
    path = tmp_path / "s.toml"
    path.write_text(bisect.suite_text([spec.config()], "x"), encoding="utf-8")
    (loaded,) = suite_mod.load(str(path))[2]
    assert loaded.train.target == 1.0 and loaded.train.epochs == 2


# --- bad input ---------------------------------------------------------------------------------------------
@pytest.fixture
def small_repo(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    _git(repo, "init", "-q")
    a = _commit(repo, "a")
    b = _commit(repo, "b")
    return str(repo), a, b


@pytest.mark.parametrize("argv, words", [
    (lambda r, a, b: [a, b, "--repo", r], ["--base", "--suite"]),
    (lambda r, a, b: ["nosuchref", b, "--repo", r, "--suite", "quick"], ["nosuchref"]),
    (lambda r, a, b: [b, a, "--repo", r, "--suite", "quick"], ["ancestor"]),
    (lambda r, a, b: [a, a, "--repo", r, "--suite", "quick"], ["same commit"]),
    (lambda r, a, b: [a, b, "--repo", r, "--suite", "nosuchsuite"], ["nosuchsuite"]),
    (lambda r, a, b: [a, b, "--repo", r, "--suite", "quick", "--metric", "speed"], ["speed"]),
    (lambda r, a, b: [a, b, "--repo", r, "--suite", "quick", "--fail-on", "time:fast"], ["time:fast"]),
    (lambda r, a, b: [a, b, "--repo", r, "--suite", "quick", "--device", "tpu"], ["tpu"]),
    (lambda r, a, b: [a, b, "--repo", os.path.dirname(r), "--suite", "quick"], ["git"]),
])
def test_bad_input_is_one_line_and_exit_2_before_anything_runs(small_repo, tmp_path, argv, words) -> None:
    repo, a, b = small_repo
    out_dir = tmp_path / "out"
    rc, out, err = run_cli(["bisect", *argv(repo, a, b), "--out", str(out_dir)])
    assert rc == 2, (rc, out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert all(w.lower() in err.lower() for w in words), err
    assert not (out_dir / "bisect.sqlite").exists()
    assert _git(repo, "worktree", "list").count("\n") == 0  # no worktree left behind


def _files(d) -> dict[str, str]:
    """Every file and folder under ``d`` but the repository's own .git -> its bytes' digest ("dir" for a folder)."""
    from tests.cli.test_bad_input import tree

    return {k: v for k, v in tree(str(d)).items() if not k.startswith(os.path.join("r", ".git"))}


def _unreadable(name: str):
    from tests.cli.test_bad_input import unreadable

    return lambda mp: unreadable(name)(mp, None)


def _unwritable(name: str):
    from tests.cli.test_bad_input import read_only

    return lambda mp: read_only(name)(mp, None)


@pytest.mark.parametrize("make, words, setup, patch", [
    (lambda d: ["--suite", str(d / "s.toml"), "--out", str(d / "out")], ["s.toml", "folder"], lambda d: (d / "s.toml").mkdir(), None),
    (lambda d: ["--suite", str(d / "s.toml"), "--out", str(d / "out")], ["s.toml", "utf-8"],
     lambda d: (d / "s.toml").write_bytes(b"\xff\xfe[defaults]\n"), None),
    (lambda d: ["--suite", str(d / "s.toml"), "--out", str(d / "out")], ["s.toml", "cannot read"],
     lambda d: (d / "s.toml").write_text(GOOD), _unreadable("s.toml")),
    # the user's file is named, not the copy bisect would keep of it under its folder
    (lambda d: ["--suite", str(d / "s.toml"), "--out", str(d / "out")], ["s.toml", "bogus"],
     lambda d: (d / "s.toml").write_text(GOOD + "bogus = 1\n"), None),
    (lambda d: ["--suite", "quick", "--out", str(d / "taken")], ["--out", "a file"], lambda d: (d / "taken").write_text("x"), None),
    (lambda d: ["--suite", "quick", "--out", str(d / "ro" / "out")], ["--out", "no permission"], lambda d: (d / "ro").mkdir(),
     _unwritable("ro")),
    pytest.param(lambda d: ["--suite", "quick", "--out", str(d / "out"), "--device", "cuda"], ["cuda", "not available"], None, None,
                 marks=pytest.mark.skipif(torch_cuda(), reason="CUDA is available here")),
])
def test_bisects_own_inputs_are_one_line_exit_2_and_leave_nothing(small_repo, tmp_path, monkeypatch, make, words, setup, patch) -> None:
    """A suite path that is a folder, not UTF-8 or unreadable; a suite whose key is wrong (named in the user's file); an
    --out that is a file or cannot be written; --device cuda without CUDA: refused before any checkout, nothing written."""
    repo, a, b = small_repo
    if setup is not None:
        setup(tmp_path)
    before = _files(tmp_path)
    if patch is not None:
        patch(monkeypatch)
    rc, out, err = run_cli(["bisect", a, b, "--repo", repo, *make(tmp_path)])
    monkeypatch.undo()
    assert rc == 2, (rc, out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert all(w.lower() in err.lower() for w in words), err
    assert "results/bisect" not in err and "suite.toml" not in err
    assert _files(tmp_path) == before
    assert _git(repo, "worktree", "list").count("\n") == 0


def test_a_named_suite_is_copied_once_and_every_row_is_judged(small_repo, tmp_path) -> None:
    repo, a, b = small_repo
    plan = bisect.plan_from(repo, a, b, str(tmp_path / "out"), "quick", None, "latest", "unused.sqlite", None, ["s_per_epoch"],
                            ["--device", "cpu"])
    with open(plan.suite, encoding="utf-8") as f, open(suite_mod.resolve("quick"), encoding="utf-8") as g:
        assert f.read() == g.read()  # every commit runs this definition, not its own copy of the suite
    assert plan.targets is None and plan.metrics == ["s_per_epoch"] and (plan.good, plan.bad) == (a, b)
    assert plan.run_args == ["--device", "cpu"] and plan.store == str(tmp_path / "out" / "bisect.sqlite")


# --- the planted slowdown ----------------------------------------------------------------------------------
# One batch per epoch: the run's own work is a few hundredths of a second quiet, and stays under the floor's second
# even when a loaded machine makes it ten or twenty times slower (see FLOOR_S).
TINY = """
description = "one tiny attention run"
[defaults]
sizes = ["tiny"]
train = 32
valid = 20
test = 20
epochs = 3
target = 1.0
batch_size = 32
decode_repeats = 1
decode_batch = 8
[[runs]]
tasks = ["date"]
models = ["attention"]
"""


def _sleep_patch(seconds: float, why: str) -> str:
    """Source appended to models/attention.py: every training forward pass of the attention model waits ``seconds``."""
    return f"""

# {why}
import time as _time  # noqa: E402

_forward_{int(seconds * 10)} = AttentionSeq2Seq.forward


def _slow_forward_{int(seconds * 10)}(self, *args, **kwargs):
    _time.sleep({seconds})
    return _forward_{int(seconds * 10)}(self, *args, **kwargs)


AttentionSeq2Seq.forward = _slow_forward_{int(seconds * 10)}
"""


# Every commit's epoch waits FLOOR_S (one batch, so once per epoch); the planted bug adds SLOWDOWN_S. The floor is
# what keeps load from moving the figure: an epoch's own work, a few hundredths of a second quiet, took up to about
# a second on a loaded 2-core machine, and alone that swings an unchanged commit by x3 (measured x3.13 against GOOD
# with two test runs and two CPU hogs beside it, load 13-20, when the bug was 0.3 s per batch of ten and showed
# only x1.83). With the floor, an unchanged commit is within (1 + 1) / 1 = x2 of GOOD at worst and the planted one
# at least (1 + 6) / (1 + 1) = x3.5: SLOWER_PCT (x2.5) lies between, with room on both sides.
FLOOR_S, SLOWDOWN_S, SLOWER_PCT = 1.0, 6.0, 150
FLOOR = _sleep_patch(FLOOR_S, "the bisect test's floor: every commit's training forward pass waits 1 s, so load cannot move an epoch much")
SLOWDOWN = _sleep_patch(SLOWDOWN_S, "planted by the bisect test: every training forward pass waits 6 s more")


def _project_repo(root) -> tuple[str, list[str]]:
    """This project's code in a fresh repository of five commits; the third makes the attention model slow."""
    repo = root / "proj"
    for d in ("bench", "models"):
        shutil.copytree(os.path.join(REPO, d), repo / d, ignore=shutil.ignore_patterns("__pycache__"))
    with open(repo / "models" / "attention.py", "a", encoding="utf-8") as f:
        f.write(FLOOR)
    _git(repo, "init", "-q")
    commits = [_commit(repo, "the project as it is")]
    (repo / "NOTES").write_text("one\n")
    commits.append(_commit(repo, "notes"))
    with open(repo / "models" / "attention.py", "a", encoding="utf-8") as f:
        f.write(SLOWDOWN)
    commits.append(_commit(repo, "attention: an innocent-looking change"))
    (repo / "NOTES").write_text("one\ntwo\n")
    commits.append(_commit(repo, "more notes"))
    (repo / "NOTES").write_text("one\ntwo\nthree\n")
    commits.append(_commit(repo, "even more notes"))
    return str(repo), commits


def _regression_store(path: str, spec: RunSpec) -> None:
    """What ``compare`` had found: session "new" trains 7x slower per epoch than session "base"."""
    s = Store(path)
    for sid, k in (("base", 1.0), ("new", 7.0)):
        s.add_session(sid, f"2026-01-0{1 if sid == 'base' else 2}T00:00:00+00:00", "tiny", "s2sbench run",
                      {"device_name": "cpu", "device_type": "cpu"})
        m = {"test_exact_match": 0.5, "test_token_accuracy": 0.8, "epoch_seconds": [0.5 * k, 0.3 * k, 0.3 * k], "peak_memory_bytes": 2**27,
             "params": 1000, "epochs": 3}
        s.add_run(run_record(spec, session=sid, metrics=m))
        s.finish_session(sid, "t2", "finished")
    s.close()


@pytest.mark.slow
def test_bisect_finds_the_planted_slowdown_in_a_repository_of_this_project(tmp_path) -> None:
    repo, commits = _project_repo(tmp_path)
    suite_file = tmp_path / "tiny.toml"
    suite_file.write_text(TINY, encoding="utf-8")
    (spec,) = suite_mod.load(str(suite_file))[2]
    store = str(tmp_path / "found.sqlite")
    _regression_store(store, spec)
    out_dir = tmp_path / "bisect"

    rc, out, err = run_cli(["bisect", commits[0], commits[-1], "--repo", repo, "--base", "base", "--new", "new", "--store", store,
                            "--fail-on", f"time:+{SLOWER_PCT}%,accuracy:off,memory:off", "--out", str(out_dir)])
    assert rc == 0, (out, err)
    assert f"first bad commit: {commits[2]} attention: an innocent-looking change" in out, out
    steps = {s.commit: s for s in bisect.read_steps(str(out_dir))}
    assert steps[commits[0]].verdict == "good" and steps[commits[-1]].verdict == "bad"
    assert steps[commits[2]].verdict == "bad" and steps[commits[2]].change > 1 + SLOWER_PCT / 100  # s/epoch: 6 s per batch on top
    assert all(steps[c].verdict == "good" for c in commits[:2] if c in steps)
    assert "s/epoch ×" in out.split("first bad commit:")[1]  # the ratio at the first bad commit
    # only the regressed figure was judged, and the user's checkout was never touched
    assert "judged on 1 regressed figure" in out
    assert _git(repo, "rev-parse", "HEAD") == commits[-1] and _git(repo, "worktree", "list").count("\n") == 0
    assert not os.path.exists(os.path.join(repo, ".git", "BISECT_LOG"))
    sessions = Store.open_existing(str(out_dir / "bisect.sqlite")).sessions()
    assert {s["env"]["commit"] for s in sessions} == set(steps)  # each session ran that commit's code
