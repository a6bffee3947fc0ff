"""The tree shows the layers (docs/design.md, "Layout"): imports run one way, there are no cycles (not even through
imports inside functions), and the analysis side works where torch is not installed."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HANG_S, REPO

# layer -> the layers it may import. ``errors`` (the one exception type) and ``spec`` (what runs) are the
# floor every layer stands on. ``cli`` also reaches the registries (list), the calibration (calibrate) and the
# contract every model and task keeps (check-model, check-task: ``bench.train.contract``).
# ``regress`` (regression tracking: compare, bisect) judges what ``results`` holds, with ``analysis``'s statistics,
# config labels and Markdown-table writer; ``cli`` and ``checks`` use it.
# ``cli`` -> ``checks``: ``s2sbench check NAME`` is the self-checks' front door, so the command line imports a
# check -- in one module (bench.cli.check), inside a function, only the check it runs (tests below). The checks
# therefore import no part of ``cli`` (that would close a cycle): a check that needs a command runs it as
# a user does, in a process of its own.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "spec": {"errors"},
    "results": {"spec", "errors"},
    "analysis": {"results", "spec", "errors"},
    "regress": {"analysis", "results", "spec", "errors"},
    "data": {"errors"},
    "measure": {"spec", "errors"},
    "train": {"data", "measure", "spec", "errors", "models"},
    "runner": {"train", "measure", "data", "spec", "results", "errors", "models"},
    "cli": {"runner", "regress", "analysis", "results", "spec", "errors", "data", "measure", "train", "models", "checks"},
    "checks": {"runner", "regress", "analysis", "results", "spec", "errors", "data", "measure", "train", "models"},
    "models": set(),
}
SUBPACKAGES = {"cli", "runner", "train", "measure", "data", "spec", "results", "analysis", "regress", "checks"}


def _modules() -> dict[str, Path]:
    out = {}
    for top in ("bench", "models"):
        for p in Path(REPO, top).rglob("*.py"):
            rel = p.relative_to(REPO).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = p
    return out


MODULES = _modules()


def _imports(path: Path, name: str) -> set[str]:
    """Every project module ``name`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
            for a in node.names:  # ``from bench.cli import args`` imports the module bench.cli.args
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.JoinedStr):  # f"pkg.{mod}": a dynamic import inside its own package
                head = "".join(v.value for v in arg.values if isinstance(v, ast.Constant)).rstrip(".")
                found |= {m for m in MODULES if m.startswith(head + ".")}
    return {m for m in found if m in MODULES and m != name}


GRAPH = {m: _imports(p, m) for m, p in MODULES.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "models":
        return "models"
    if len(parts) == 1 or parts[1] == "__main__":
        return "cli"  # bench/__init__ is empty; ``python -m bench`` is the command line
    return parts[1] if parts[1] in SUBPACKAGES else parts[1]


def test_the_tree_has_the_map_s_rooms() -> None:
    rooms = {p.name for p in Path(REPO, "bench").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert rooms == SUBPACKAGES
    loose = sorted(p.name for p in Path(REPO, "bench").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "errors.py"]


def test_every_import_runs_down_the_map() -> None:
    bad = []
    for m, deps in GRAPH.items():
        for d in deps:
            a, b = layer(m), layer(d)
            if a != b and b not in ALLOWED[a]:
                bad.append(f"{m} ({a}) imports {d} ({b})")
    assert not bad, "\n".join(bad)


FRONT_DOOR = "bench.cli.check"  # ``s2sbench check NAME``: the one module that imports the checks


def test_only_the_front_door_imports_the_checks_and_only_inside_a_function() -> None:
    """The checks stay runnable self-checks that no code depends on: the front door loads the one it runs, when
    it runs it. At module level it imports no check, so ``s2sbench report`` loads none (nor their torch)."""
    importers = {m for m, deps in GRAPH.items() if layer(m) != "checks" and any(layer(d) == "checks" for d in deps)}
    assert importers == {FRONT_DOOR}
    tree = ast.parse(MODULES[FRONT_DOOR].read_text(encoding="utf-8"))
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]  # statements at module level only
    names = {a.name for n in top for a in n.names} | {n.module or "" for n in top if isinstance(n, ast.ImportFrom)}
    assert not {x for x in names if x.startswith("bench.checks") or x == "checks"}, names


def test_models_import_only_torch_and_themselves() -> None:
    for m, p in MODULES.items():
        if layer(m) != "models":
            continue
        tops = {n.split(".")[0] for n in _all_import_names(p)}
        assert tops <= {"torch", "models", "__future__", "math", "dataclasses", "typing", "collections", "importlib", "functools",
                        "contextlib"}, (m, tops)


def _all_import_names(p: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
    return out


def test_no_import_cycle() -> None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(GRAPH[m]):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


def test_the_cycle_check_sees_imports_inside_functions(tmp_path) -> None:
    """The walker is not blind to a late import: one planted inside a function body is found."""
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from bench.runner import session\n    return session\n")
    assert "bench.runner.session" in _imports(f, "bench.analysis.x")


_BLOCK_TORCH = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, Block())
"""


def _without_torch(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": REPO, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-c", _BLOCK_TORCH + code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=HANG_S)


def test_analysis_results_and_spec_import_without_torch(tmp_path) -> None:
    mods = sorted(m for m in MODULES if layer(m) in ("regress", "analysis", "results", "spec"))
    code = "import importlib, json\n" + f"mods = {mods!r}\n" + "for m in mods: importlib.import_module(m)\n" + \
        "print(json.dumps(sorted(k for k in sys.modules if k == 'torch' or k.startswith('torch.'))))"
    p = _without_torch(code, tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == []


def test_a_report_and_a_compare_are_made_where_torch_is_not_installed(tmp_path) -> None:
    from bench.results.store import Store
    from tests.factories import run_record

    path = str(tmp_path / "s.sqlite")
    s = Store(path)
    s.add_session("a", "2026-01-01T00:00:00+00:00", None, "c", {"device_name": "cpu", "calibration": {"combined_s": 0.01}})
    for model, em in (("attention", 0.9), ("seq2seq", 0.5)):
        m = {"test_exact_match": em, "test_token_accuracy": em, "train_tokens_per_s": 100.0, "epoch_seconds": [2.0, 1.0],
             "peak_memory_bytes": 2**20, "params": 10, "model_meta": {"order": 0 if model == "seq2seq" else 2,
                                                                      "reference": model == "attention"}}
        s.add_run(run_record(session="a", key=f"date/{model}", model=model, metrics=m,
                             history=[{"epoch": 1, "valid_exact_match": em, "wall_cum_s": 1.0}]))
    s.close()
    code = ("from bench.cli import main\n"
            f"assert main(['report', '--store', {path!r}, '--out', 'rep']) == 0\n"
            f"assert main(['compare', 'a', 'a', '--store', {path!r}]) == 0\n"
            "print('torch loaded:', 'torch' in sys.modules)")
    p = _without_torch(code, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "torch loaded: False" in p.stdout
    html = (tmp_path / "rep" / "index.html").read_text(encoding="utf-8")
    assert "attention" in html and "seq2seq" in html and "(1.00×)" in html  # ratios to the stored reference model
