"""Plugins: both doors lead to the one registry, and a plugin's model goes wherever a built-in goes.

The doors: a file, a package folder and a module (``--plugin``, suite key ``plugins``), and an installed
distribution's entry points (a distribution planted on the path here; the example plugin itself when CI has
installed it). Where a plugin's model goes: ``list``, ``run``, suites, the stored run (which plugin, which
version), reports, shards, a Ray worker's process and each torchrun rank -- every one of them loads what the run
carries before it builds the model.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import models
from bench.data import tasks
from bench.data.tasks import base as task_base
from bench.errors import UserError
from bench.results.store import Store
from bench.runner import plugins
from bench.spec import suite as suite_mod
from bench.spec.run import plugin_ref
from models import registry
from tests.conftest import REPO, run_cli

EXAMPLE = os.path.join(REPO, "examples", "gru-plugin", "s2sbench_gru")
EXAMPLE_FILES = [os.path.join(EXAMPLE, "model.py"), os.path.join(EXAMPLE, "task.py")]
TOY_PLUGIN = "from tests.models.toys import plant\n\nplant({name!r})\n"
TINY = ["--size", "tiny", "--epochs", "1", "--train-size", "60", "--device", "cpu", "--threads", "1"]


def _installed() -> bool:
    try:
        importlib.metadata.distribution("s2sbench-gru-plugin")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _forget_the_installed_example() -> None:
    """Where the example is installed its entry points registered gru and rot13; the file door must find the names free."""
    registry._REGISTRY.pop("gru", None)
    task_base._REGISTRY.pop("rot13", None)


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")


def _tree(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


# --- the --plugin door --------------------------------------------------------------------------------------


def test_a_file_registers_like_a_built_in_and_says_where_it_came_from(tmp_path) -> None:
    _forget_the_installed_example()
    plugins.load(EXAMPLE_FILES)
    plugins.load(EXAMPLE_FILES)  # once per process: the second time is a no-op, not a clash
    meta = models.entry("gru").meta
    assert meta.plugin == EXAMPLE_FILES[0] and meta.plugin_version.startswith("sha256:")
    assert meta.record()["plugin"] == EXAMPLE_FILES[0] and meta.attention and meta.recurrent
    assert set(models.sizes("gru")) == set(models.BUDGETS)  # sized by width to every budget
    assert tasks.entry("rot13").plugin == EXAMPLE_FILES[1]
    assert "gru" in models.names() and "rot13" in tasks.names()


def test_loading_a_file_leaves_nothing_beside_it(tmp_path) -> None:
    (tmp_path / "toy_plugin.py").write_text(TOY_PLUGIN.format(name="toyfile"))
    before = _tree(tmp_path)
    plugins.load([str(tmp_path / "toy_plugin.py")])
    assert "toyfile" in models.names()
    assert _tree(tmp_path) == before  # no __pycache__


def test_a_package_folder_with_relative_imports(tmp_path) -> None:
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from . import model  # noqa: F401\n")
    (pkg / "model.py").write_text(TOY_PLUGIN.format(name="toypkg"))
    plugins.load([plugin_ref(str(pkg) + "/")])
    meta = models.entry("toypkg").meta
    assert meta.plugin == str(pkg) and meta.plugin_version.startswith("sha256:")


def test_a_module_on_the_python_path(tmp_path, monkeypatch) -> None:
    (tmp_path / "toy_module_plugin.py").write_text(TOY_PLUGIN.format(name="toymod"))
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.load(["toy_module_plugin"])
    meta = models.entry("toymod").meta
    assert (meta.plugin, meta.plugin_version[:7]) == ("toy_module_plugin", "sha256:")
    with pytest.raises(UserError, match="no module named no_such_plugin_module"):
        plugins.load(["no_such_plugin_module"])


def test_a_plugin_that_fails_half_way_leaves_nothing_registered(tmp_path) -> None:
    (tmp_path / "half.py").write_text(TOY_PLUGIN.format(name="first") + "plant('attention')\n")
    with pytest.raises(UserError, match="model name 'attention' is taken by the built-in model attention"):
        plugins.load([str(tmp_path / "half.py")])
    assert "first" not in models.names()
    assert not [m for m in sys.modules if m.startswith(plugins.MODULE_PREFIX + "half")]


# --- the entry-point door -----------------------------------------------------------------------------------


def _distribution(root: Path, name: str, version: str, models_target: str, tasks_target: str | None = None) -> None:
    """An installed distribution as importlib.metadata finds it on the path: a .dist-info with METADATA and entry points."""
    info = root / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    eps = f"[s2sbench.models]\n{name} = {models_target}\n" + (f"[s2sbench.tasks]\n{name} = {tasks_target}\n" if tasks_target else "")
    (info / "entry_points.txt").write_text(eps)


def _reload_entry_points(monkeypatch) -> None:
    monkeypatch.delitem(registry._PLUGINS, models.ENTRY_POINTS, raising=False)
    monkeypatch.delitem(task_base._PLUGINS, tasks.ENTRY_POINTS, raising=False)


def test_entry_points_register_with_the_distribution_s_name_and_version(tmp_path, monkeypatch) -> None:
    (tmp_path / "toyplug_models.py").write_text(TOY_PLUGIN.format(name="toyep"))
    (tmp_path / "toyplug_tasks.py").write_text(
        "from bench.data.tasks import Example, register, unique_split\n\n"
        "@register('toyeptask', 'a digit string -> itself', aligned=False)\n"
        "def make(opts):\n    return unique_split('toyeptask', lambda rng: Example(str(rng.randrange(10**6)), '0'), opts)\n")
    _distribution(tmp_path, "toyplug", "1.2.3", "toyplug_models", "toyplug_tasks")
    monkeypatch.syspath_prepend(str(tmp_path))
    _reload_entry_points(monkeypatch)
    assert "toyep" in models.names() and "toyeptask" in tasks.names()
    meta = models.entry("toyep").meta
    assert (meta.plugin, meta.plugin_version) == ("toyplug", "1.2.3")
    assert (tasks.entry("toyeptask").plugin, tasks.entry("toyeptask").plugin_version) == ("toyplug", "1.2.3")
    rc, out, err = run_cli(["list", "--models", "--tasks"])
    assert rc == 0 and "[plugin toyplug 1.2.3]" in out, err


@pytest.mark.parametrize("target, words", [
    ("no_such_plugin_module", ["toyplug 1.2.3", "entry point toyplug = no_such_plugin_module", "ModuleNotFoundError"]),
    ("toyplug_models:missing", ["toyplug_models:missing", "AttributeError", "missing"]),
])
def test_an_entry_point_pointing_nowhere_is_one_line_every_time(tmp_path, monkeypatch, target, words) -> None:
    (tmp_path / "toyplug_models.py").write_text(TOY_PLUGIN.format(name="toyep"))
    _distribution(tmp_path, "toyplug", "1.2.3", target)
    monkeypatch.syspath_prepend(str(tmp_path))
    _reload_entry_points(monkeypatch)
    for _ in range(2):  # a broken plugin is never silently missing
        with pytest.raises(models.PluginError) as e:
            models.names()
        assert "\n" not in str(e.value) and all(w in str(e.value) for w in words), str(e.value)
    assert "toyep" not in registry._REGISTRY  # the module imported, its entry point did not: nothing of it stays
    with pytest.raises(UserError):
        plugins.entry_points()


@pytest.mark.skipif(not _installed(), reason="the example plugin is not installed (CI installs it: pip install -e examples/gru-plugin)")
def test_the_installed_example_runs_through_the_entry_point_door(tmp_path) -> None:
    """What CI proves end to end: installed, the example's model and task are there without --plugin, in a fresh process."""
    dist = importlib.metadata.distribution("s2sbench-gru-plugin")
    assert models.entry("gru").meta.plugin == "s2sbench-gru-plugin" and tasks.entry("rot13").plugin_version == dist.version
    store = str(tmp_path / "s.sqlite")
    p = subprocess.run([sys.executable, "-m", "bench", "run", "--task", "rot13", "--model", "gru", *TINY, "--store", store], cwd=tmp_path,
                       env=_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    (run,) = Store.open_existing(store).runs()
    assert run.status == "ok" and "plugins" not in run.config  # installed: nothing to carry
    assert run.metrics["model_meta"]["plugin"] == "s2sbench-gru-plugin" and run.metrics["task_meta"]["plugin_version"] == dist.version
    rc, out, err = run_cli(["report", "--store", store, "--out", str(tmp_path / "rep")])
    assert rc == 0 and "gru" in (tmp_path / "rep" / "index.html").read_text(encoding="utf-8"), err


# --- a plugin's model goes wherever a built-in goes ---------------------------------------------------------


def test_run_with_plugin_files_stores_where_the_model_came_from_and_the_report_shows_it(tmp_path) -> None:
    _forget_the_installed_example()
    store = str(tmp_path / "s.sqlite")
    rc, out, err = run_cli(["run", "--plugin", EXAMPLE_FILES[0], "--plugin", EXAMPLE_FILES[1], "--task", "rot13", "--model", "gru,seq2seq",
                            *TINY, "--store", store])
    assert rc == 0, err
    runs = {r.model: r for r in Store.open_existing(store).runs()}
    gru, s2s = runs["gru"], runs["seq2seq"]
    assert gru.config["plugins"] == EXAMPLE_FILES and s2s.config["plugins"] == [EXAMPLE_FILES[1]]  # each its own: the task's for both
    assert gru.metrics["model_meta"]["plugin"] == EXAMPLE_FILES[0] and "plugin" not in s2s.metrics["model_meta"]
    assert gru.metrics["task_meta"]["plugin"] == EXAMPLE_FILES[1]
    rc, _, err = run_cli(["report", "--store", store, "--out", str(tmp_path / "rep")])
    assert rc == 0 and "gru" in (tmp_path / "rep" / "index.html").read_text(encoding="utf-8"), err


def test_a_run_keeps_only_the_plugins_it_came_from_and_its_key_does_not_move(tmp_path) -> None:
    _forget_the_installed_example()
    specs = suite_mod.from_flags({"tasks": ["date"]}, {"models": ["gru", "attention"], "plugins": EXAMPLE_FILES})
    attached = {s.model: s for s in plugins.attach(specs)}
    assert attached["gru"].plugins == (EXAMPLE_FILES[0],) and attached["attention"].plugins == ()
    plain = suite_mod.from_flags({"tasks": ["date"]}, {"models": ["attention"]})[0]
    assert attached["attention"].config() == plain.config() and attached["attention"].key() == plain.key()
    assert "plugins" in attached["gru"].config()
    moved = suite_mod.from_flags({"tasks": ["date"]}, {"models": ["gru"], "plugins": [str(tmp_path / "elsewhere" / "model.py")]})[0]
    assert moved.key() == attached["gru"].key()  # where the code was found is not what ran


def test_a_suite_names_plugins_relative_to_itself_and_plugin_flags_add_to_them(tmp_path) -> None:
    (tmp_path / "toy_plugin.py").write_text(TOY_PLUGIN.format(name="toysuite"))
    (tmp_path / "s.toml").write_text('plugins = ["toy_plugin.py"]\n[defaults]\nsizes = ["tiny"]\n[[runs]]\ntasks = ["date"]\nmodels = '
                                     '["toysuite"]\n')
    _, _, specs = suite_mod.load(str(tmp_path / "s.toml"), {"plugins": [EXAMPLE_FILES[1]]})
    assert specs[0].plugins == (str(tmp_path / "toy_plugin.py"), EXAMPLE_FILES[1])
    _forget_the_installed_example()
    (spec,) = plugins.attach(specs)
    assert spec.plugins == (str(tmp_path / "toy_plugin.py"),)


def test_shards_partition_plugin_runs_as_they_do_built_in_ones(tmp_path) -> None:
    from bench.runner.shard import select

    _forget_the_installed_example()
    specs = plugins.attach(suite_mod.from_flags({"tasks": ["date", "addition"]},
                                                {"models": ["gru", "attention"], "sizes": ["tiny", "small"],
                                                                                  "plugins": [EXAMPLE_FILES[0]]}))
    parts = [select(specs, (k, 2))[0] for k in (1, 2)]
    assert sorted(s.key() for p in parts for s in p) == sorted(s.key() for s in specs) and all(parts)


def test_check_models_refuses_a_plugin_model_that_breaks_the_contract_only_when_asked(tmp_path) -> None:
    (tmp_path / "ahead.py").write_text("from tests.models.toys import LooksAhead, plant\n\nplant('ahead', LooksAhead)\n")
    store = str(tmp_path / "s.sqlite")
    argv = ["run", "--plugin", str(tmp_path / "ahead.py"), "--task", "date", "--model", "ahead", *TINY, "--store", store]
    rc, out, err = run_cli([*argv, "--check-models"])
    assert rc == 2 and not os.path.exists(store), err
    assert err.strip().startswith("s2sbench: error: --check-models: ahead breaks look-ahead, greedy") and len(err.strip().splitlines()) == 1
    rc, out, err = run_cli(argv)
    assert rc == 0 and "1 runs ok" in out, err


def test_a_worker_process_loads_the_plugins_its_run_carries(tmp_path) -> None:
    """A Ray worker is a process of its own: ``run_remote`` there (no Ray needed to show it) loads the run's plugin."""
    (tmp_path / "toy_plugin.py").write_text(TOY_PLUGIN.format(name="toyworker"))
    (spec,) = plugins.attach(suite_mod.from_flags({"tasks": ["date"]}, {"models": ["toyworker"], "sizes": ["tiny"], "epochs": 1,
                                                                        "train": 60, "valid": 10, "test": 10,
                                                                        "plugins": [str(tmp_path / "toy_plugin.py")]}))
    assert spec.plugins == (str(tmp_path / "toy_plugin.py"),)
    with open(tmp_path / "spec.pkl", "wb") as f:
        pickle.dump(spec, f)
    code = ("import json, pickle, sys\nfrom bench.runner.ray_executor import run_remote\nfrom bench.spec.run import SessionConfig\n"
            "spec = pickle.load(open(sys.argv[1], 'rb'))\nr = run_remote(spec, SessionConfig(device='cpu', threads=1), 'cpu', 1)\n"
            "print(json.dumps({'error': r['error'], 'meta': r['metrics'].get('model_meta')}))\n")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "spec.pkl")], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["error"] is None and got["meta"]["plugin"] == str(tmp_path / "toy_plugin.py")


def test_every_torchrun_rank_loads_the_plugin(tmp_path) -> None:
    (tmp_path / "toy_plugin.py").write_text(TOY_PLUGIN.format(name="toyddp"))
    store = str(tmp_path / "ddp.sqlite")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "bench", "run",
                        "--ddp", "--plugin", str(tmp_path / "toy_plugin.py"), "--task", "date", "--model", "toyddp", *TINY, "--store",
                        store],
                       cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    (run,) = Store.open_existing(store).runs()
    assert run.status == "ok" and run.metrics["world_size"] == 2 and run.metrics["model_meta"]["plugin"] == str(tmp_path / "toy_plugin.py")
