"""``s2sbench tune``: the same tuning budget for every model, then the tuned comparison on test.

For each model of a suite block (a *study*: one task, model and size, the block's own recipe as its base),
``trials`` runs with recipes drawn from the search space (``bench.spec.search``) by an Optuna sampler seeded
from ``--seed`` and the study, each trial an ordinary run in the store and selected on validation only (its
final validation exact match; a failed trial scores 0). Then the best trial's recipe and the block's own
(default) recipe are each run with ``final_seeds`` fresh seeds and scored on test: the *tuned* comparison
beside the default one (Melis et al. 2018; Dodge et al. 2019).

One tuning session is one session of the store, planned in rounds (``bench.runner.session.Plan``):

* random search (the default): every trial's parameters are drawn up front -- a random sampler's draws do not
  depend on the scores -- so the first round holds every trial of every study, which an executor (local, Ray,
  a shard) runs as it runs any session; the second holds the finals.
* TPE: a study's next suggestion depends on the scores so far, so each round asks one trial of every study
  still tuning (the studies advance side by side), then the finals.

The plan is a pure function of the stored runs: every round rebuilds each study from nothing, asking the
sampler (same seed) for the trials in order and telling it each stored trial's score. A fresh process doing
this after an interruption (``--resume``) asks and tells exactly what the uninterrupted session did, so it
gets the same next suggestion (tests/runner/test_tune.py proves it against one long-lived Optuna study).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import models
from bench.errors import UserError
from bench.results.store import RunRecord, Store
from bench.runner.cache import DataCache
from bench.runner.executor import Executor
from bench.runner.session import check, check_warmup, run_session, validate
from bench.spec.run import RunSpec, SessionConfig
from bench.spec.search import MODEL_OPTIONS, WARMUP_SHARE, Param, TuneSettings, apply, narrow
from bench.train.schedule import total_steps

EXTRA = "s2sbench tune needs Optuna and opda: pip install 's2sbench[tune]'"
SIGNIFICANT = 4  # drawn numbers are kept to 4 significant digits: readable configs, the same draws


def require() -> Any:
    """Optuna (the samplers) and opda (the tuning curves' bands), or one line naming the extra."""
    try:
        import opda  # noqa: F401 -- checked here so a session never ends without its curves' bands
        import optuna
    except ImportError:
        raise UserError(EXTRA) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclass(frozen=True)
class Study:
    """One model of one block, tuned: its base run (the block's recipe, at the trial seed) and its own space."""

    base: RunSpec
    space: tuple[Param, ...]
    seed: int  # the sampler's

    @property
    def id(self) -> str:
        b = self.base
        return f"{b.data.name}/{b.model}/{b.size}/{b.config_hash()}"


def bases(specs: Sequence[RunSpec]) -> list[RunSpec]:
    """One base run per configuration of the suite (its seeds folded: the trials run at the first of them)."""
    out: dict[str, RunSpec] = {}
    for s in sorted(specs, key=lambda s: s.seed):
        out.setdefault(s.config_hash() + s.data.name + s.model + s.size, s)
    return [s for s in specs if s in out.values()]


def study_seed(seed: int, base: RunSpec) -> int:
    """The sampler's seed for one study: from ``--seed`` and what the study tunes, so that adding a model to a
    suite changes no other model's draws."""
    text = f"{seed}/{base.data.name}/{base.model}/{base.size}/{base.config_hash()}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") >> 1


def _takes(model: str) -> set[str]:
    return {f.name for f in fields(models.entry(model).config_cls)}


def model_space(settings: TuneSettings, base: RunSpec, examples: int) -> tuple[Param, ...]:
    """The space ``base.model`` is tuned over on this block (``examples``: its training examples).

    A model option the model does not take (a dropout for a model without one) is left out for that model (the
    block's other models search it; ``check_options`` refuses one no model of a block takes); a model's own
    narrower range (``ModelMeta.search``) is intersected; the default warm-up range ends at a quarter of training
    (at the largest batch size searched), and a given one longer than training is refused.
    """
    entry = models.entry(base.model)
    own = dict(entry.meta.search)
    takes = _takes(base.model)
    batches = [c for p in settings.space if p.name == "batch_size" for c in p.choices] or [base.train.batch_size]
    steps = total_steps(base.train.epochs, examples, max(batches))
    out = []
    for p in settings.space:
        if p.name in MODEL_OPTIONS and p.name not in takes:
            continue
        if p.name in own:
            p = narrow(p, tuple(own[p.name]), base.model)
        if p.name == "lr_warmup":
            if p.high is None:
                high = steps // WARMUP_SHARE
                if high <= p.low:
                    continue  # too short a run to warm up: no warm-up searched
                p = Param(p.name, p.low, high)
            elif p.high > steps:
                raise UserError(f"{settings.where} lr_warmup: up to {p.high:g} steps is longer than training ({base.data.name}: "
                                f"{base.train.epochs} epochs x {steps // base.train.epochs} batches of {max(batches)} = {steps} steps)")
        out.append(p)
    return tuple(out)


def check_options(settings: TuneSettings, base: Sequence[RunSpec]) -> None:
    """A model option searched in a space the user gave must be taken by some model of each block it is given for:
    ``--model ntm --search dropout=0:0.3`` searches nothing (the NTM has no dropout) and is refused, while a block of
    every model searches dropout for the models that have one."""
    if not settings.given:
        return
    blocks: dict[str, list[str]] = {}
    for b in base:
        blocks.setdefault(b.origin, []).append(b.model)
    for p in settings.space:
        if p.name not in MODEL_OPTIONS:
            continue
        for origin, names in blocks.items():
            if not any(p.name in _takes(m) for m in names):
                block = "" if origin in ("", "command line") else f" in {origin}"
                which = names[0] if len(set(names)) == 1 else "any of " + ", ".join(dict.fromkeys(names))
                raise UserError(f"{settings.where} {p.name}: {'model ' + which if len(set(names)) == 1 else which}{block} has no {p.name} "
                                f"(its options: {', '.join(sorted(_takes(names[0]) - {'vocab_size'}))})")


def corners(study: Study) -> list[RunSpec]:
    """The base with each parameter at each end of its range (or at each choice): what a trial can ask of the model."""
    out = []
    for p in study.space:
        values = p.choices if p.kind == "choice" else (p.low, p.high)
        out += [apply(study.base, {p.name: v}, study.base.seed) for v in values]
    return out


def prepare(specs: list[RunSpec], settings: TuneSettings, sc: SessionConfig,
            executor: Executor | None = None) -> tuple[list[Study], DataCache]:
    """Every study of the suite, checked before anything is stored: the runs as ``run`` checks them, each model's
    space (options it takes, warm-up against training), and every end of every range against the model."""
    if any(s.throughput.enabled for s in specs):
        raise UserError("tune tunes time-to-quality runs; --steps (a throughput run) has nothing to select on")
    base = bases(specs)
    check_options(settings, base)
    cache = check(base, sc, executor)
    studies = []
    for b in base:
        examples = len(cache.get(b.data).train)
        st = Study(b, model_space(settings, b, examples), study_seed(settings.seed, b))
        for c in corners(st):
            validate(c)
            check_warmup(c, examples)
        studies.append(st)
    return studies, cache


def score(rec: RunRecord | None) -> float | None:
    """A trial's score: its final validation exact match; a failed trial scores 0 (it learned nothing usable)."""
    if rec is None:
        return None
    return float(rec.metrics.get("valid_exact_match", 0.0)) if rec.status == "ok" else 0.0


def _round(v: Any) -> Any:
    return float(f"{v:.{SIGNIFICANT}g}") if isinstance(v, float) else v


@dataclass(frozen=True)
class Trial:
    index: int
    params: dict[str, Any]
    spec: RunSpec
    score: float | None  # None: not run yet


class TunePlan:
    """The rounds of a tuning session (module docstring), as ``run_session``'s plan."""

    def __init__(self, studies: list[Study], settings: TuneSettings, optuna: Any) -> None:
        self.studies, self.settings, self.optuna = studies, settings, optuna
        self.notes: dict[str, dict[str, Any]] = {}
        self.total = len(studies) * (settings.trials + 2 * settings.final_seeds)

    def _sampler(self, study: Study) -> Any:
        samplers = self.optuna.samplers
        if self.settings.sampler == "tpe":  # its random start-up trials: Optuna's 10, or half of a smaller budget
            return samplers.TPESampler(seed=study.seed, n_startup_trials=min(10, max(1, self.settings.trials // 2)))
        return samplers.RandomSampler(seed=study.seed)

    def distributions(self, study: Study) -> dict[str, Any]:
        d = self.optuna.distributions
        out = {}
        for p in study.space:
            if p.kind == "choice":
                out[p.name] = d.CategoricalDistribution(list(p.choices))
            elif p.kind == "int":
                out[p.name] = d.IntDistribution(int(p.low), int(p.high))
            else:
                out[p.name] = d.FloatDistribution(p.low, p.high, log=p.kind == "log")
        return out

    def trials(self, study: Study, stored: dict[str, RunRecord]) -> list[Trial]:
        """The study's trials so far, in order: asked of a fresh sampler, each stored one's score told back."""
        opt = self.optuna.create_study(direction="maximize", sampler=self._sampler(study))
        dists = self.distributions(study)
        out = []
        for i in range(self.settings.trials):
            t = opt.ask(dists)
            params = {k: _round(t.params[k]) for k in sorted(t.params)}
            spec = apply(study.base, params, study.base.seed)
            self.notes[spec.key()] = {"study": study.id, "role": "trial", "trial": i, "params": params,
                                      "space": {p.name: p.record() for p in study.space}}
            s = score(stored.get(spec.key()))
            out.append(Trial(i, params, spec, s))
            if s is None:
                if self.settings.sampler == "tpe":
                    break  # its next suggestion needs this score
                continue  # a random sampler's next draw does not
            opt.tell(t, s)
        return out

    def finals(self, study: Study, best: Trial) -> list[RunSpec]:
        """The block's recipe and the best trial's, each at ``final_seeds`` fresh seeds (after the trial seed)."""
        seeds = range(study.base.seed + 1, study.base.seed + 1 + self.settings.final_seeds)
        out = []
        for s in seeds:
            d = apply(study.base, {}, s)
            self.notes[d.key()] = {"study": study.id, "role": "default"}
            t = apply(study.base, best.params, s)
            self.notes[t.key()] = {"study": study.id, "role": "tuned", "trial": best.index, "params": best.params}
            out += [d, t]
        return out

    def next(self, runs: list[RunRecord]) -> list[RunSpec]:
        stored = {r.key: r for r in runs}  # in the order stored: a key's latest record wins
        out: list[RunSpec] = []
        for st in self.studies:
            trials = self.trials(st, stored)
            pending = [t.spec for t in trials if t.score is None]
            if pending or len(trials) < self.settings.trials:
                out += pending
                continue
            best = max(trials, key=lambda t: (t.score, -t.index))  # ties: the earlier trial
            out += [s for s in self.finals(st, best) if s.key() not in stored]
        return out

    def note(self, spec: RunSpec) -> dict[str, Any] | None:
        return self.notes.get(spec.key())


def run(studies: list[Study], settings: TuneSettings, store: Store, sc: SessionConfig, suite: str | None, command: str, *,
        resume: str | None = None, session_id: str | None = None, cache: DataCache | None = None, executor: Executor | None = None,
        env_extra: dict[str, Any] | None = None) -> str:
    """Run (or continue) a tuning session. Returns its id."""
    optuna = require()
    plan = TunePlan(studies, settings, optuna)
    stored = store.runs(resume) if resume else []
    first = plan.next(stored)
    env = (env_extra or {}) | {"tune": settings.record() | {"studies": [st.id for st in studies]}}
    return run_session(first, store, sc, suite, command, resume=resume, session_id=session_id, cache=cache, executor=executor,
                       env_extra=env, plan=plan)


def check_resume(session: dict[str, Any], settings: TuneSettings) -> None:
    """A tuning session's plan is fixed when it starts: ``--resume`` with other settings is refused."""
    old = session["env"].get("tune")
    if old is None:
        raise UserError(f"session {session['id']} is not a tuning session (resume it with `s2sbench run --resume`)")
    new = settings.record()
    diff = [k for k in new if old.get(k) != new[k]]
    if diff:
        k = diff[0]
        raise UserError(f"--resume {session['id']}: its {k} was {old.get(k)!r}, this command says {new[k]!r}; "
                        "a tuning session's plan is fixed when it starts (give the same settings, or start a new session)")


def shard(studies: list[Study], which: tuple[int, int], settings: TuneSettings) -> tuple[list[Study], dict[str, Any]]:
    """Shard K of N of a tuning session: whole studies (a study's finals need all its trials), balanced by the cost
    of their base runs (``bench.runner.shard``); what the session records about the shard counts the planned runs."""
    from bench.runner.shard import select

    mine, info = select([st.base for st in studies], which)
    keep = {b.key() for b in mine}
    chosen = [st for st in studies if st.base.key() in keep]
    per = settings.trials + 2 * settings.final_seeds
    return chosen, info | {"runs": len(chosen) * per, "suite_runs": len(studies) * per, "studies": len(chosen)}
