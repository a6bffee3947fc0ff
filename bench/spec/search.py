"""What ``s2sbench tune`` searches, and how much: a search space of recipe settings and an equal budget per model.

A tuning session gives every model of a suite block the same number of trials (``TuneSettings.trials``) over
a declared space (Dodge et al. 2019, "Show Your Work": compare models at equal tuning budgets; Melis, Dyer &
Blunsom 2018: re-tune every architecture alike). A parameter is one of:

=================  ======================  ===================================  ============================
name               kind                    default range                        goes to
=================  ======================  ===================================  ============================
``lr``             log-uniform             [1e-4, 1e-2]                         TrainConfig.lr (the peak)
``lr_warmup``      integer, uniform        [0, a quarter of training]           TrainConfig.lr_warmup
``dropout``        uniform                 [0, 0.3], where the model has one    the model option ``dropout``
``label_smoothing`` uniform                [0, 0.2]                             TrainConfig.label_smoothing
``batch_size``     one of                  32, 64, 128                          TrainConfig.batch_size
``weight_decay``   uniform                 (not searched by default)            TrainConfig.weight_decay
``schedule``       one of                  (not searched by default)            TrainConfig.schedule
=================  ======================  ===================================  ============================

A space given by the user (a suite's ``[tune.space]`` table, ``--search``) replaces the default one whole: it
names exactly what is searched. A model's registry entry may narrow a range (``ModelMeta.search``); the range a
model is tuned over is then the intersection. Everything here is checked where it is built, without torch or
Optuna; what needs the model code (does the model take a dropout) or the data (how long is training) is
checked by the runner (``bench.runner.tune``) before anything runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from bench.errors import UserError
from bench.spec.run import SCHEDULES, RunSpec

SAMPLERS = ("random", "tpe")  # Optuna's RandomSampler (Dodge et al.'s setting), TPESampler (Bergstra et al. 2011)
# A model option rather than a training setting: only models whose config has the field take it.
MODEL_OPTIONS = ("dropout",)


@dataclass(frozen=True)
class Domain:
    """What values a parameter can take at all: its kind and its limits (``low_open``: low itself excluded)."""

    kind: str  # log | float | int | choice
    low: float | None = None
    high: float | None = None
    high_open: bool = False
    low_open: bool = False
    choices: tuple[Any, ...] = ()  # for kind choice with a closed set (schedule); () = any value of ``item``
    item: type = int  # the type of a choice

    def describe(self) -> str:
        if self.kind == "choice":
            return f"one of {', '.join(map(str, self.choices))}" if self.choices else f"{'integers' if self.item is int else 'values'} >= 1"
        lo = "(" if self.low_open else "["
        hi = "inf)" if self.high is None else f"{self.high:g}{')' if self.high_open else ']'}"
        return f"in {lo}{self.low:g}, {hi}"

    def contains(self, v: float) -> bool:
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return self.high is None or (v < self.high if self.high_open else v <= self.high)


DOMAINS: dict[str, Domain] = {
    "lr": Domain("log", 0.0, low_open=True),
    "lr_warmup": Domain("int", 0),
    "dropout": Domain("float", 0.0, 1.0, high_open=True),
    "label_smoothing": Domain("float", 0.0, 1.0, high_open=True),
    "weight_decay": Domain("float", 0.0),
    "batch_size": Domain("choice", item=int),
    "schedule": Domain("choice", choices=SCHEDULES, item=str),
}


@dataclass(frozen=True)
class Param:
    """One searched parameter: a range (``low``..``high``; log-uniform for ``lr``) or a list of ``choices``.

    ``high`` None (only the default warm-up range): a quarter of the run's training steps, settled once the data
    is known (``resolve_warmup``).
    """

    name: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def kind(self) -> str:
        return DOMAINS[self.name].kind

    def record(self) -> dict[str, Any]:
        """As stored with a tuning session and shown with its figure."""
        if self.kind == "choice":
            return {"kind": "choice", "choices": list(self.choices)}
        return {"kind": self.kind, "low": self.low, "high": self.high}

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{self.name} in {{{', '.join(map(str, self.choices))}}}"
        how = {"log": "log-uniform", "int": "integer", "float": "uniform"}[self.kind]
        return f"{self.name} {how} [{self.low:g}, {'1/4 of training' if self.high is None else format(self.high, 'g')}]"


DEFAULT_SPACE: tuple[Param, ...] = (
    Param("lr", 1e-4, 1e-2),
    Param("lr_warmup", 0, None),
    Param("dropout", 0.0, 0.3),
    Param("label_smoothing", 0.0, 0.2),
    Param("batch_size", choices=(32, 64, 128)),
)
WARMUP_SHARE = 4  # the default warm-up range reaches a quarter of training (Vaswani et al.: 4,000 of 100,000 steps, a 25th)


def param(name: str, value: Any, where: str) -> Param:
    """``value`` as given for ``name`` (a suite's ``[low, high]`` or list of choices) -> a checked :class:`Param`.

    ``where`` names it in a message: ``--search lr`` or ``my.toml: [tune.space] key 'lr'``.
    """
    if name not in DOMAINS:
        raise UserError(f"{where}: unknown search parameter {name!r}; tune searches {', '.join(DOMAINS)}")
    d = DOMAINS[name]
    want = "a list of choices" if d.kind == "choice" else "[low, high]"
    if not isinstance(value, (list, tuple)):
        raise UserError(f"{where} must be {want}, got {value!r}")
    if not value:
        raise UserError(f"{where} is empty; give {want}")
    if d.kind == "choice":
        for v in value:
            ok = isinstance(v, d.item) and not isinstance(v, bool) and (v in d.choices if d.choices else v >= 1)
            if not ok:
                raise UserError(f"{where}: each choice must be {d.describe()}, got {v!r}")
        if len(set(value)) != len(value):
            raise UserError(f"{where}: a choice is listed twice in {list(value)!r}")
        return Param(name, choices=tuple(value))
    if len(value) != 2:
        raise UserError(f"{where} must be [low, high], two numbers, got {list(value)!r}")
    lo, hi = value
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (d.kind == "int" and not isinstance(v, int)) or not math.isfinite(v):
            raise UserError(f"{where} must be [low, high], two {'integers' if d.kind == 'int' else 'finite numbers'}, got {list(value)!r}")
        if not d.contains(v):
            raise UserError(f"{where}: {v!r} is out of range; {name} must be {d.describe()}")
    if lo > hi:
        raise UserError(f"{where}: the range [{lo:g}, {hi:g}] is inverted (low > high)")
    if lo == hi:
        raise UserError(f"{where}: the range [{lo:g}, {hi:g}] is empty (low = high); to fix {name}, set it in [defaults] or as a flag "
                        "instead")
    return Param(name, float(lo) if d.kind != "int" else lo, float(hi) if d.kind != "int" else hi)


def parse_flag(text: str) -> tuple[str, Any]:
    """``--search NAME=LOW:HIGH`` or ``--search NAME=A,B,C`` -> (name, value as a suite would give it)."""
    name, sep, rest = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name:
        raise UserError(f"--search {text!r}: give NAME=LOW:HIGH or NAME=A,B,C")
    where = f"--search {name}"
    if ":" in rest:
        parts = rest.split(":")
    elif rest.strip():
        parts = rest.split(",")
    else:
        parts = []
    out: list[Any] = []
    for p in (x.strip() for x in parts):
        for conv in (int, float):
            try:
                out.append(conv(p))
                break
            except ValueError:
                pass
        else:
            out.append(p)
    if ":" in rest and len(out) != 2:
        raise UserError(f"{where} must be LOW:HIGH, got {rest!r}")
    if ":" not in rest and name in DOMAINS and DOMAINS[name].kind != "choice" and out:
        raise UserError(f"{where} must be LOW:HIGH (a range), got {rest!r}")
    return name, out


def space(entries: dict[str, Any], where: str) -> tuple[Param, ...]:
    """A whole space from ``name -> value`` (a suite's ``[tune.space]``, or the ``--search`` flags)."""
    if not entries:
        raise UserError(f"{where}: an empty search space; name at least one of {', '.join(DOMAINS)}")
    return tuple(param(k, v, f"--search {k}" if where == "--search" else f"{where} key {k!r}") for k, v in sorted(entries.items()))


@dataclass(frozen=True)
class TuneSettings:
    """How a tuning session searches: fixed when it starts (``--resume`` must give the same), stored with it."""

    trials: int = 8  # per model and block: the equal budget
    sampler: str = "random"  # random (Dodge et al.'s setting) | tpe
    seed: int = 0  # the sampler's seed, and the trial runs' model seed
    final_seeds: int = 3  # fresh seeds the default and the best recipe of each model are run with, scored on test
    space: tuple[Param, ...] = field(default=DEFAULT_SPACE)
    given: bool = False  # the space was given by the user (then a model option in it must be taken by some model of each block)
    where: str = field(default="--search", compare=False)  # where the space was given, for messages: --search, or a suite's [tune.space]

    def __post_init__(self) -> None:
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise UserError(f"--trials must be an integer >= 1 (a budget of {self.trials!r} trials tunes nothing)")
        if self.sampler not in SAMPLERS:
            raise UserError(f"--sampler must be {' or '.join(SAMPLERS)}, got {self.sampler!r}")
        if isinstance(self.final_seeds, bool) or not isinstance(self.final_seeds, int) or self.final_seeds < 1:
            raise UserError(f"--final-seeds must be an integer >= 1, got {self.final_seeds!r}")

    def record(self) -> dict[str, Any]:
        """What is stored with the session (and compared on ``--resume``)."""
        return {"trials": self.trials, "sampler": self.sampler, "seed": self.seed, "final_seeds": self.final_seeds,
                "space": {p.name: p.record() for p in self.space}, "space_given": self.given, "objective": "valid_exact_match"}


def narrow(p: Param, allowed: tuple[Any, ...], model: str) -> Param:
    """``p`` intersected with a model's own range or choices (``ModelMeta.search``); an empty intersection is refused."""
    if p.kind == "choice":
        keep = tuple(c for c in p.choices if c in allowed)
        if not keep:
            raise UserError(f"search {p.name}: none of {list(p.choices)} is among {model}'s own choices {list(allowed)}")
        return Param(p.name, choices=keep)
    lo = max(p.low, allowed[0]) if p.low is not None else allowed[0]
    hi = min(p.high, allowed[1]) if p.high is not None else allowed[1]
    if lo >= hi:
        raise UserError(f"search {p.name}: [{p.low:g}, {p.high if p.high is not None else 'auto'}] and {model}'s own range "
                        f"[{allowed[0]:g}, {allowed[1]:g}] leave an empty range")
    return Param(p.name, lo, hi)


def apply(base: RunSpec, params: dict[str, Any], seed: int) -> RunSpec:
    """The run of one trial: ``base`` (the block's own recipe) with ``params`` set, at ``seed``.

    Training settings replace the base's; a model option (dropout) joins the base's options.
    """
    train = {k: v for k, v in params.items() if k not in MODEL_OPTIONS}
    opts = dict(base.model_options) | {k: v for k, v in params.items() if k in MODEL_OPTIONS}
    return replace(base, seed=seed, train=replace(base.train, **train), model_options=tuple(sorted(opts.items())))
