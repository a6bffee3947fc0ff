"""Suites: named TOML files saying *what* runs (tasks x models x sizes x seeds, budgets, measurement
settings), never how. ``[defaults]`` applies to every block; each ``[[runs]]`` block is a matrix whose
product is a list of :class:`RunSpec`. Unknown keys and bad values are errors naming the file and key.

    description = "..."
    [defaults]
    epochs = 3
    [[runs]]
    tasks = ["date", "addition"]
    models = ["attention", "transformer"]
    sizes = ["small"]
    seeds = [0, 1, 2]

``plugins = ["my_model.py", "my_package.tasks"]`` (at the top, in ``[defaults]`` or in a block) loads models and
tasks from outside s2sbench for the runs (paths relative to the suite file); ``--plugin`` adds to them.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from bench.errors import UserError
from bench.spec.run import MAX_LENGTH, DataSpec, MeasureSpec, RunSpec, SpecError, ThroughputSpec, TrainConfig, plugin_ref
from bench.spec.search import SAMPLERS

SUITES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "suites")

# key -> (where it goes, expected type)
_DATA = {f.name for f in fields(DataSpec)} - {"task", "task_file", "seed"} | {"data_seed"}
_TRAIN = {f.name for f in fields(TrainConfig)}
_MEASURE = {f.name for f in fields(MeasureSpec)}
# key -> ThroughputSpec field
_THROUGHPUT = {"steps": "steps", "warmup_steps": "warmup", "step_batches": "batches", "run_budget_s": "budget_s"}
_THROUGHPUT_KEY = {v: k for k, v in _THROUGHPUT.items()}  # ThroughputSpec field -> the key a user writes
_DATA_FILES = ("target_file", "valid_file", "test_file")
_DATA_WORDS = ("source_tokens", "target_tokens", "sentencepiece_type", "target_unit")
_MATRIX = {"tasks", "task_files", "models", "sizes", "seeds", "model_options", "lengths"}
_ALLOWED = _DATA | _TRAIN | _MEASURE | _MATRIX | set(_THROUGHPUT) | {"plugins"}
_TOP = {"description", "note", "plugins", "defaults", "runs", "tune"}  # note: what the suite's figures do not show (printed and reported
# with them); tune: what `s2sbench tune` searches (tune_table)

Check = Callable[[RunSpec], None]  # a check of one run that needs more than the spec (the model registry): raises UserError


def available() -> list[str]:
    return sorted(os.path.splitext(f)[0] for f in os.listdir(SUITES_DIR) if f.endswith(".toml"))


def resolve(name_or_path: str) -> str:
    if os.path.sep in name_or_path or name_or_path.endswith(".toml"):
        if not os.path.exists(name_or_path):
            raise UserError(f"{name_or_path}: no such suite file")
        return name_or_path
    p = os.path.join(SUITES_DIR, name_or_path + ".toml")
    if not os.path.exists(p):
        raise UserError(f"unknown suite {name_or_path!r}; known suites: {', '.join(available())} (or give a path to a .toml file)")
    return p


def load(name_or_path: str, overrides: dict[str, Any] | None = None, data_dir: str | None = None,
         check: Check | None = None) -> tuple[str, str, list[RunSpec]]:
    """-> (suite name, description, run specs). ``overrides`` (from the command line) beat the file;
    relative ``task_files`` are looked up in ``data_dir`` (default: the suite file's folder).

    ``check``: called on one run of each configuration of a block (its first seed) before the block's seeds are
    expanded -- the runner's name checks (``bench.runner.session.validate``), so that a matrix of 200,000 seeds
    with an unknown model is refused at once, not after building 200,000 runs."""
    path = resolve(name_or_path)
    doc = _read(path)
    bad = set(doc) - _TOP
    if bad:
        raise UserError(f"{path}: unknown top-level key {sorted(bad)[0]!r}; allowed: {', '.join(sorted(_TOP))}")
    if not isinstance(doc.get("note", ""), str):
        raise UserError(f"{path}: key 'note' must be a string, got {doc['note']!r}")
    defaults = doc.get("defaults", {})
    blocks = doc.get("runs", [])
    if not isinstance(defaults, dict) or not isinstance(blocks, list) or not blocks:
        raise UserError(f"{path}: a suite needs a [defaults] table (optional) and at least one [[runs]] block")
    specs: list[RunSpec] = []
    here = os.path.dirname(os.path.abspath(path))
    for i, block in enumerate(blocks, 1):
        merged = {**defaults, **block, **(overrides or {})}
        # plugins add up: the file's top, [defaults], the block, then the command line's
        plugins = [p for src in (doc, defaults, block, overrides or {}) if isinstance(src, dict) for p in _as_list(src.get("plugins"))]
        if plugins:
            merged["plugins"] = plugins
        where = f"{path}: [[runs]] block {i}"
        specs.extend(_expand(merged, where, data_dir or here, plugin_dir=here, check=check))
    seen = set()
    unique = []
    for s in specs:  # the same run listed twice runs once
        k = s.key()
        if k not in seen:
            seen.add(k)
            unique.append(s)
    name = os.path.splitext(os.path.basename(path))[0]
    return name, str(doc.get("description", "")), unique


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML ({e})") from None
    except UnicodeDecodeError as e:  # TOML is UTF-8
        raise UserError(f"{path}: not a UTF-8 text file (byte {e.start}: {e.reason}); a suite is a TOML file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: a folder, not a suite file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read the suite file ({e.strerror or e})") from None


_TUNE = {"trials", "sampler", "final_seeds", "space"}


def tune_table(name_or_path: str) -> tuple[dict[str, Any], str]:
    """A suite's ``[tune]`` table (what ``s2sbench tune`` searches, ``bench.spec.search``) and how messages name it.

        [tune]
        trials = 8
        sampler = "random"
        final_seeds = 3
        [tune.space]
        lr = [1e-4, 1e-2]
        batch_size = [32, 64, 128]

    ``run`` ignores it: it runs the blocks' own recipe.
    """
    path = resolve(name_or_path)
    table = _read(path).get("tune", {})
    where = f"{path}: [tune]"
    if not isinstance(table, dict):
        raise UserError(f"{where} must be a table")
    bad = set(table) - _TUNE
    if bad:
        raise UserError(f"{where}: unknown key {sorted(bad)[0]!r}; allowed: {', '.join(sorted(_TUNE))}")
    for k, kind in (("trials", int), ("final_seeds", int), ("sampler", str), ("space", dict)):
        if k in table:
            _typed(where, k, table[k], kind)
    for k in ("trials", "final_seeds"):
        if k in table and table[k] < 1:
            raise UserError(f"{where}: key {k!r} must be >= 1, got "
                            f"{table[k]!r}{' (a budget of 0 trials tunes nothing)' if k == 'trials' else ''}")
    if table.get("sampler", SAMPLERS[0]) not in SAMPLERS:
        raise UserError(f"{where}: key 'sampler' must be {' or '.join(SAMPLERS)}, got {table['sampler']!r}")
    return table, path


def note(name_or_path: str) -> str:
    """The suite's ``note``: the caveat its figures carry (e.g. one short recipe for every model), or ""."""
    with open(resolve(name_or_path), "rb") as f:
        v = tomllib.load(f).get("note", "")
    return v if isinstance(v, str) else ""


FLAGS = "command line"
_FLAG_NAMES = {"time_budget_s": "--time-budget", "model_options": "--option", "warmup": "--warmup-steps", "lengths": "--length",
               "sizes": "--size", "models": "--model", "seeds": "--seeds", "tasks": "--task", "task_files": "--task-file",
               "plugins": "--plugin"}


def where_key(origin: str, key: str) -> str:
    """How a message names ``key`` of a run that came from ``origin`` (``RunSpec.origin``): the flag as typed
    (``--time-budget``), or the suite file, block and key (``my.toml: [[runs]] block 2: key 'amp'``)."""
    if origin == FLAGS:
        return _FLAG_NAMES.get(key, "--" + key.replace("_", "-"))
    return f"{origin}: key {key!r}" if origin else key


def _typed(where: str, key: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    if isinstance(value, bool) and kind is not bool and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise UserError(f"{where}: key {key!r} must be {_kind(kind)}, got {value!r}")
    if not isinstance(value, kind):
        raise UserError(f"{where}: key {key!r} must be {_kind(kind)}, got {value!r}")
    return value


def _kind(kind: type | tuple[type, ...]) -> str:
    ks = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list",
                        dict: "a table"}.get(k, k.__name__) for k in ks)


def _list(where: str, key: str, v: Any, item: type) -> list:
    v = v if isinstance(v, list) else [v]
    for x in v:
        _typed(where, key, x, item)
    if not v:
        raise UserError(f"{where}: key {key!r} is an empty list")
    return v


def _as_list(v: Any) -> list:
    return [] if v is None else v if isinstance(v, list) else [v]


def _expand(m: dict[str, Any], where: str, data_dir: str, plugin_dir: str = "", check: Check | None = None) -> list[RunSpec]:
    bad = set(m) - _ALLOWED
    if bad:
        raise UserError(f"{where}: unknown key {sorted(bad)[0]!r}")
    if "models" not in m:
        raise UserError(f"{where}: key 'models' is required")
    if ("tasks" in m) == ("task_files" in m):
        raise UserError(f"{where}: give exactly one of 'tasks' or 'task_files'")
    models_ = _list(where, "models", m["models"], str)
    sizes = _list(where, "sizes", m.get("sizes", ["small"]), str)
    seeds = _list(where, "seeds", m.get("seeds", [0]), int)
    opts = _typed(where, "model_options", m.get("model_options", {}), dict)
    train_kw: dict[str, Any] = {}
    for k in _TRAIN & set(m):
        default = getattr(TrainConfig(), k)
        kind: Any = ((int, float) if isinstance(default, float) or k in ("target", "time_budget_s")
                     else type(default) if default is not None else (int, float))
        train_kw[k] = _typed(where, k, m[k], kind)
    measure_kw = {k: _typed(where, k, m[k], int) for k in _MEASURE & set(m)}
    tp_kw = {_THROUGHPUT[k]: _typed(where, k, m[k], (int, float) if k == "run_budget_s" else int) for k in set(_THROUGHPUT) & set(m)}
    idle = sorted(k for k in set(_THROUGHPUT) - {"steps"} if k in m)
    if idle and not tp_kw.get("steps"):  # they shape a throughput run; without one they would be recorded and ignored
        steps = where_key(FLAGS, "steps") if where == FLAGS else "'steps'"
        raise UserError(f"{where_key(where, idle[0])} applies to throughput runs only: give {steps} too (or leave it out)")
    # lengths = [16, 64]: one run per length, every example of that length (train, valid and test): a sweep
    lengths: list[int | None] = _list(where, "lengths", m["lengths"], int) if "lengths" in m else [None]
    if "lengths" in m and ({"train_lengths", "test_lengths"} & set(m)):
        raise UserError(f"{where}: give 'lengths' (a sweep) or 'train_lengths'/'test_lengths', not both")
    data_kw: dict[str, Any] = {}
    for k in _DATA & set(m):
        v = m[k]
        if k in ("reverse_source", "keep_source_padding", "fixed_length_target", "keep_stress"):
            data_kw[k] = _typed(where, k, v, bool)
        elif k in _DATA_FILES:  # a standard split's other files, or a pair's target side: beside the task files
            f = _typed(where, k, v, str)
            data_kw[k] = f if os.path.isabs(f) or where == FLAGS else os.path.join(data_dir, f)
        elif k in _DATA_WORDS:
            data_kw[k] = _typed(where, k, v, str)
        elif k in ("train_lengths", "test_lengths"):
            if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)):
                raise UserError(f"{where}: key {k!r} must be [low, high], two integers, got {v!r}")
            data_kw[k] = (v[0], v[1])  # their range is DataSpec's to check
        elif k == "data_seed":
            data_kw["seed"] = _typed(where, k, v, int)
        else:
            data_kw[k] = _typed(where, k, v, int)
    try:  # the dataclasses check every value (bench.spec.run); here their message gets the file and block
        plugins = (tuple(dict.fromkeys(plugin_ref(p, plugin_dir) for p in _list(where, "plugins", m["plugins"], str)))
                   if "plugins" in m else ())
        train = replace(TrainConfig(), **train_kw)
        measure = replace(MeasureSpec(), **measure_kw)
        throughput = replace(ThroughputSpec(), **tp_kw)
        if "tasks" in m:
            datas = [DataSpec(task=t, **data_kw, **_fixed(L)) for t in _list(where, "tasks", m["tasks"], str) for L in lengths]
        else:
            if "lengths" in m:
                raise UserError(f"{where}: 'lengths' sweeps generated tasks; a data file has the lengths it has")
            files = [f if os.path.isabs(f) else os.path.join(data_dir, f) for f in _list(where, "task_files", m["task_files"], str)]
            if len(files) > 1 and set(_DATA_FILES) & set(data_kw):
                raise UserError(f"{where}: {', '.join(k for k in _DATA_FILES if k in data_kw)} belong to one training file; "
                                f"give one task file per block, not {len(files)}")
            datas = [DataSpec(task=os.path.splitext(os.path.basename(f))[0], task_file=f, **data_kw) for f in files]
        model_opts = tuple(sorted(opts.items()))
        # One run per configuration first (cheap checks before the product: names, options), then the seeds.
        bases = [RunSpec(model=mo, size=sz, seed=seeds[0], data=d, train=train, model_options=model_opts, measure=measure,
                         throughput=throughput, origin=where, plugins=plugins)
                 for d, mo, sz in itertools.product(datas, models_, sizes)]
        for b in bases if check is not None else ():
            check(b)
        return [b if se == b.seed else replace(b, seed=se) for b in bases for se in seeds]
    except TypeError as e:
        raise UserError(f"{where}: {e}") from None
    except SpecError as e:
        key = "data_seed" if e.key == "seed" and e.args[0].startswith("data:") else e.key
        if e.args[0].startswith("throughput:"):  # the dataclass's field -> the key the user wrote (budget_s -> run_budget_s)
            key = _THROUGHPUT_KEY.get(key, key)
        if key in ("train_lengths", "test_lengths") and "lengths" in m:  # a sweep point, made both ranges: say it as given
            raise UserError(f"{where_key(where, 'lengths')} must be in [1, {MAX_LENGTH:,}] each, got {m['lengths']!r}") from None
        raise UserError(f"{where_key(where, key)} {e.rule}") from None  # the flag typed (--train-size), or the file and key


def _fixed(length: int | None) -> dict[str, Any]:
    """A sweep point: every example of the task has a source of exactly ``length`` characters."""
    return {} if length is None else {"train_lengths": (length, length), "test_lengths": (length, length)}


def from_flags(what: dict[str, Any], overrides: dict[str, Any], check: Check | None = None) -> list[RunSpec]:
    """One matrix given on the command line (``tasks`` or ``task_files``, ``models``, ``sizes``, ...), expanded
    exactly as a suite's ``[[runs]]`` block is: one path from flags and from files to run specs."""
    return _expand({**what, **overrides}, FLAGS, "", check=check)


def check_files(name: str, specs: list[RunSpec]) -> None:
    """Every data file a suite names exists (before anything runs)."""
    for s in specs:
        for f in (s.data.task_file, s.data.target_file, s.data.valid_file, s.data.test_file):
            if f and not os.path.exists(f):
                raise UserError(f"suite {name}: data file {f} not found; give --data-dir with the folder that holds it")
