"""``s2sbench tune``: every model of a suite the same number of trials over one search space, then the tuned
comparison on test (``bench.runner.tune``; docs/tuning.md)."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from bench.cli import args, run
from bench.errors import UserError
from bench.spec.search import SAMPLERS


def add(sub: Any) -> None:
    t = sub.add_parser("tune", help="tune every model of a suite with the same budget, then compare the tuned recipes on test")
    g = t.add_argument_group("the tuning (a suite's [tune] table gives the defaults; see docs/tuning.md)")
    g.add_argument("--trials", type=args.nonneg_int, metavar="N", help="trials per model on each task: the equal budget (default: the "
                   "suite's [tune] trials, else 8)")
    g.add_argument("--sampler", choices=list(SAMPLERS), help="random (Dodge et al.'s setting) or tpe (Optuna's TPE) (default: the suite's "
                   "[tune] sampler, else random)")
    g.add_argument("--final-seeds", type=args.nonneg_int, dest="final_seeds",
                   metavar="K", help="fresh seeds the default and the tuned recipe of each model are run with, scored on test (default: "
                   "the suite's [tune] final_seeds, else 3)")
    g.add_argument("--search", action="append", default=[], metavar="NAME=LOW:HIGH|A,B,C",
                   help="search this parameter over a range or choices (repeatable; replaces the default space: lr log-uniform 1e-4:1e-2, "
                        "lr_warmup 0:a quarter of training, dropout 0:0.3 where a model has one, label_smoothing 0:0.2, batch_size "
                        "32,64,128; also weight_decay, schedule)")
    run.add_flags(t, ddp=False)
    t.set_defaults(func=cmd_tune)


def settings(a: argparse.Namespace) -> Any:
    """The session's ``TuneSettings``: flags over the suite's ``[tune]`` table over the defaults."""
    from bench.spec import search, suite

    table: dict[str, Any] = {}
    where = "--search"
    if a.suite:
        table, path = suite.tune_table(a.suite)
        where = f"{path}: [tune.space]"
    kw: dict[str, Any] = {k: table[k] for k in ("trials", "sampler", "final_seeds") if k in table}
    kw |= {k: getattr(a, k) for k in ("trials", "sampler", "final_seeds") if getattr(a, k) is not None}
    kw["seed"] = a.seed if a.seed is not None else 0
    if a.search:
        entries: dict[str, Any] = {}
        for text in a.search:
            name, value = search.parse_flag(text)
            if name in entries:
                raise UserError(f"--search {name} is given twice")
            entries[name] = value
        kw |= {"space": search.space(entries, "--search"), "given": True, "where": "--search"}
    elif "space" in table:
        kw |= {"space": search.space(table["space"], where), "given": True, "where": where}
    return search.TuneSettings(**kw)


def cmd_tune(a: argparse.Namespace) -> int:
    from bench.runner import tune

    tune.require()  # one line naming the extra, before anything else
    if a.seeds is not None:
        raise UserError("tune runs every trial at one seed (--seed) and the finals at --final-seeds fresh seeds; --seeds is for run")
    ts = settings(a)
    suite, specs = run.specs_from_flags(a)
    from bench.runner import plugins

    specs = plugins.attach(specs)  # plugin models are tuned like the built-in ones
    sc = args.session_config(a.device, a.threads, a.deterministic)
    if a.address and a.executor != "ray":
        raise UserError("--address goes with --executor ray")
    executor: Any = None
    try:
        if a.executor == "ray":
            from bench.runner.ray_executor import RayExecutor

            executor = RayExecutor(a.address, threads=a.threads)
        studies, cache = tune.prepare(specs, ts, sc, executor)  # bad input is refused before the store is touched
        if a.check_models:
            plugins.refuse_broken([st.base for st in studies])
        env_extra: dict[str, Any] = {}
        if a.shard:
            studies, env_extra["shard"] = tune.shard(studies, a.shard, ts)
        from bench.results.store import Store

        store = Store(a.store)
        name = f"tune:{suite}" if suite else "tune"
        resume = _resume(store, a, name, ts)
        command = "s2sbench " + " ".join(shlex.quote(x) for x in sys.argv[1:])
        sid = tune.run(studies, ts, store, sc, name, command, resume=resume, session_id=a.session_id, cache=cache, executor=executor,
                       env_extra=env_extra)
    finally:
        if hasattr(executor, "close"):
            executor.close()
    from bench.analysis import tuning
    from bench.analysis.markdown import table
    from bench.results.outcome import outcomes

    runs = store.runs(sid)
    results = tuning.studies(runs)
    if results:
        print(table(*tuning.summary_rows(results)))
        for r in tuning.rankings(results):
            print(tuning.verdict(r))
    print(f"session {sid}: {outcomes(runs).text()}; stored in {a.store}")
    print(f"report: s2sbench report --store {shlex.quote(a.store)} --session {sid}")
    return 0


def _resume(store: Any, a: argparse.Namespace, suite: str, ts: Any) -> str | None:
    """The tuning session to continue, if any (checked to have the same settings)."""
    from bench.runner.tune import check_resume

    sid: str | None = None
    if a.session_id:
        exists = any(s["id"] == a.session_id for s in store.sessions())
        if exists and not a.resume:
            raise UserError(f"session {a.session_id!r} is already in {a.store}: add --resume to continue it, or choose another "
                            "--session-id")
        if a.resume not in (None, "auto", a.session_id):
            raise UserError(f"--resume {a.resume} and --session-id {a.session_id} name different sessions")
        sid = a.session_id if exists else None
    elif a.resume:
        sid = store.resumable(suite) if a.resume == "auto" else store.session(a.resume)["id"]
    if sid is not None:
        check_resume(store.session(sid), ts)
    return sid
