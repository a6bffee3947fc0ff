"""Plugins: models and tasks from outside s2sbench, in the registries the built-ins fill.

Two doors, one registry (as fairseq's ``--user-dir`` and timm's and pytest's entry points):

* an installed package declares entry points in the groups ``s2sbench.models`` and ``s2sbench.tasks``; the
  registries load them themselves, with the built-ins (``models.names()``, ``bench.data.tasks.names()``), in
  every process where the package is installed;
* ``--plugin PATH.py|FOLDER/|MODULE`` (suite key ``plugins``) names a file, a package folder or an importable
  module, loaded here: reading the command line and suites is the harness's job, not the models'.

A run carries the plugins its model and task came from (``RunSpec.plugins``, set by ``attach``), and whoever
executes it -- this process, a Ray worker (``bench.runner.ray_executor.run_remote``), each torchrun rank (which
parses the same command line) -- loads them before it builds anything (``load``). The registry records where
each model and task came from (``ModelMeta.plugin``, ``TaskEntry.plugin``), and so does every stored run.

Bad input is one line naming the plugin, before any run starts: a path that does not exist, an import that fails
(a syntax error, a missing dependency), a name already taken, an entry point pointing nowhere (raised by the
registries), a plugin model whose ``forward`` raises on the contract's first batch (``smoke``). A plugin model that
runs but breaks the contract is refused only when asked (``--check-models``: ``refuse_broken``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace

import torch

import models
from bench.data import tasks
from bench.errors import UserError
from bench.spec.run import RunSpec
from bench.spec.suite import where_key
from bench.train import contract

MODULE_PREFIX = "s2sbench_plugin_"  # the module name a --plugin file or folder is imported under (+ its stem and a hash of its path)


def entry_points() -> None:
    """The installed packages' plugins (both groups), loaded with the built-ins; a broken one is one line."""
    try:
        models.names()
    except models.PluginError as e:
        raise UserError(str(e)) from None
    tasks.names()  # its own failures are UserErrors already


def load(refs: Iterable[str], where: Mapping[str, str] | None = None) -> None:
    """Load the entry points, then each plugin of ``refs`` (``bench.spec.run.plugin_ref``: an absolute path or a module
    name) once per process; ``where[ref]`` names it in messages (default ``--plugin REF``)."""
    entry_points()
    for ref in refs:
        who = (where or {}).get(ref) or f"--plugin {ref}"
        if os.path.isabs(ref):
            _load_path(ref, who)
        else:
            _load_module(ref, who)


def load_for(specs: Iterable[RunSpec]) -> None:
    """Every plugin the runs name, each named in messages as the run's origin wrote it (the flag, or the suite's key)."""
    where: dict[str, str] = {}
    for s in specs:
        for p in s.plugins:
            where.setdefault(p, f"{where_key(s.origin, 'plugins')} {p}" if s.origin else f"plugin {p}")
    load(where, where)


def attach(specs: list[RunSpec]) -> list[RunSpec]:
    """Load the runs' plugins, and keep with each run only those its model or task came from: a built-in model's
    run in a session with plugins carries none (its stored config is the one it always had)."""
    load_for(specs)
    return [replace(s, plugins=tuple(p for p in s.plugins if p in _sources(s))) for s in specs]


def _sources(spec: RunSpec) -> set[str]:
    out = set()
    if spec.model in models.names():
        out.add(models.entry(spec.model).meta.plugin)
    if not spec.data.task_file and spec.data.task in tasks.names():
        out.add(tasks.entry(spec.data.task).plugin)
    return out - {""}


def describe(plugin: str, version: str) -> str:
    return f"plugin {plugin}" + (f" {version}" if version else "")


def smoke(spec: RunSpec) -> None:
    """A plugin's model is built and run on the contract's first batch (at the contract's size, on the CPU: milliseconds)
    before any run starts; one whose build or forward raises is refused in one line naming the plugin."""
    meta = models.entry(spec.model).meta
    if not meta.plugin:
        return
    try:
        contract.usable(contract.Subject(spec.model, contract.default_size(spec.model), dict(spec.model_options)))
    except contract.Unusable as e:
        raise UserError(f"{describe(meta.plugin, meta.plugin_version)}: {e}") from None


def refuse_broken(specs: Iterable[RunSpec]) -> None:
    """``--check-models``: every model of the runs (with its options) through the whole contract; one that breaks a rule
    is refused before anything runs, in one line that names the rules (``s2sbench check-model`` says how)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the contract's models are tiny: more threads only contend (the session's own count comes back after)
    try:
        broken = _broken(specs)
    finally:
        torch.set_num_threads(threads)
    if broken:
        raise UserError(f"--check-models: {'; '.join(broken)} (see s2sbench check-model NAME)")


def _broken(specs: Iterable[RunSpec]) -> list[str]:
    seen: dict[tuple, None] = {}
    broken = []
    for s in specs:
        key = (s.model, s.model_options)
        if key in seen:
            continue
        seen[key] = None
        label = s.model + (f"({','.join(f'{k}={v}' for k, v in s.model_options)})" if s.model_options else "")
        try:
            rules = sorted({b.rule for b in contract.check_model(s.model, options=dict(s.model_options))},
                           key=list(contract.MODEL_RULES).index)
        except contract.Unusable as e:
            raise UserError(f"--check-models: {e}") from None
        if rules:
            broken.append(f"{label} breaks {', '.join(rules)}")
    return broken


# --- the --plugin door ------------------------------------------------------------------------------------


def _load_path(path: str, who: str) -> None:
    """A ``.py`` file, or a folder holding ``__init__.py`` (a package: its relative imports work), imported under a name
    of its own; no bytecode is written beside it. Its version is a digest of its Python files."""
    if not os.path.exists(path):
        raise UserError(f"{who}: no such file or folder")
    if os.path.isdir(path):
        init = os.path.join(path, "__init__.py")
        if not os.path.isfile(init):
            raise UserError(f"{who}: a folder without __init__.py; give a .py file, a package folder or a module name")
        files = sorted(os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs if f.endswith(".py"))
        target, search = init, [path]
    elif path.endswith(".py"):
        files, target, search = [path], path, None
    else:
        raise UserError(f"{who}: not a Python file (.py), a package folder or a module name")
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path.rstrip(os.sep)))[0])
    name = f"{MODULE_PREFIX}{stem}_{hashlib.sha256(path.encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, target, submodule_search_locations=search)
    if spec is None or spec.loader is None:
        raise UserError(f"{who}: cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it, as an import does: dataclasses and pickling look it up there
    try:
        with _registering(who, path, _digest(files)), _no_bytecode():
            spec.loader.exec_module(module)
    except BaseException:
        for m in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[m]
        raise


def _load_module(ref: str, who: str) -> None:
    """An importable module (installed, or on the Python path); its version is its distribution's, else a digest of its file."""
    if ref in sys.modules:
        return  # imported already, and what it registers with it
    try:
        spec = importlib.util.find_spec(ref)
    except (ImportError, ValueError):  # a parent package that does not exist
        spec = None
    if spec is None:
        raise UserError(f"{who}: no module named {ref} on the Python path (give the path of a .py file otherwise)")
    top = ref.split(".")[0]
    dists = importlib.metadata.packages_distributions().get(top) or []
    version = (importlib.metadata.version(dists[0]) if dists
               else _digest([spec.origin] if spec.origin and os.path.isfile(spec.origin) else []))
    with _registering(who, ref, version):
        importlib.import_module(ref)


@contextmanager
def _registering(who: str, plugin: str, version: str) -> Iterator[None]:
    """What the plugin registers records ``plugin`` and ``version``; whatever its import raises is one line naming it,
    and leaves nothing of it registered (the registries' ``loading``)."""
    try:
        with models.loading(plugin, version), tasks.loading(plugin, version):
            yield
    except (models.PluginError, UserError) as e:
        raise UserError(f"{who}: {e}") from None
    except Exception as e:  # noqa: BLE001 -- a plugin's import may raise anything: its failure to load, in one line
        line = (str(e).strip().splitlines() or [""])[0]
        hint = " (a module the plugin imports is not installed)" if isinstance(e, ModuleNotFoundError) else ""
        raise UserError(f"{who}: cannot import it: {type(e).__name__}: {line}{hint}") from None


@contextmanager
def _no_bytecode() -> Iterator[None]:
    """Importing a user's file leaves nothing beside it (no ``__pycache__``)."""
    before = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.dont_write_bytecode = before


def _digest(files: list[str]) -> str:
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            h.update(fh.read())
    return "sha256:" + h.hexdigest()[:12] if files else ""
