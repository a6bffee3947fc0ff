"""``s2sbench run``: a suite, or one matrix from flags, as a session (locally, on Ray, sharded or under torchrun)."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from bench.cli import args
from bench.errors import UserError
from bench.results.store import DEFAULT_PATH
from bench.spec.run import CAPTURE, SCHEDULES, SENTENCEPIECE_TYPES, TOKENS, UNITS, DataSpec, ThroughputSpec, TrainConfig


def shard_parse(s: str) -> tuple[int, int]:
    from bench.runner.shard import parse

    return parse(s)


def _names(kind: str) -> str:
    """Every registered name of ``kind`` for --help (read when help is shown: the registries import torch)."""
    if kind == "tasks":
        from bench.data import tasks

        return ", ".join(tasks.names())
    import models

    if kind == "models":
        return ", ".join(models.names())
    return ", ".join(dict.fromkeys(s for n in models.names() for s in models.sizes(n)))  # every size any model has


def _d(cls: type, name: str) -> str:
    """A flag's default as --help says it: the suite's value, else the spec's default."""
    return f"default: the suite's, else {args.default_of(cls, name)}"


def add(sub: Any) -> None:
    r = sub.add_parser("run", help="run a benchmark session (a suite, or one configuration)")
    add_flags(r)
    r.set_defaults(func=cmd_run)


def add_flags(r: Any, ddp: bool = True) -> None:
    """The flags that say what runs and how: ``run``'s, which ``tune`` takes too (without --ddp)."""
    d = _d
    what = r.add_argument_group("what runs (a suite, or one matrix from these flags)")
    what.add_argument("--suite", metavar="NAME|FILE", help="suite name (see `s2sbench list --suites`) or path to a .toml file")
    what.add_argument("--data-dir", metavar="DIR", help="folder holding the data files a suite names (e.g. the book's date.txt, "
                      "addition.txt); default: the suite file's folder")
    args.late_help(what.add_argument("--task", metavar="TASK"), lambda: f"registered task: {_names('tasks')}")
    what.add_argument("--task-file", metavar="FILE",
                      help="a data file: tab-separated pairs (source<TAB>target; a .tsv file, or any file whose first line holds a tab), "
                           "the source side of two line-aligned files (with --target-file), or the book's question_answer lines")
    what.add_argument("--target-file", metavar="FILE", help="with --task-file SOURCE: the line-aligned target side (line n answers line n; "
                      "default: none)")
    what.add_argument("--valid-file", metavar="FILE", help="a standard split's valid file, used as it is (default: held out of --task-file "
                      "by source)")
    what.add_argument("--test-file", metavar="FILE", help="a standard split's test file, used as it is (default: a tenth of --task-file's "
                      "sources)")
    args.late_help(what.add_argument("--model", metavar="MODEL[,MODEL...]"), lambda: "model, or several separated by commas: "
                   f"{_names('models')}")
    args.late_help(what.add_argument("--size", metavar="SIZE[,SIZE...]"),
                   lambda: f"model size, or several separated by commas: {_names('sizes')} (default: the suite's, else small)")
    what.add_argument("--seed", type=args.nonneg_int, metavar="N", help="model seed (default: the suite's, else 0)")
    what.add_argument("--seeds", type=args.seeds, metavar="N,N,...", help="several model seeds, e.g. 0,1,2")
    what.add_argument("--option", type=args.option, action="append", default=[], metavar="KEY=VALUE",
                      help="model option, e.g. bidirectional=true, score=general (repeat for several; `s2sbench list --models`)")
    args.add_plugin_flag(what)
    budget = r.add_argument_group("budget and training (each overrides the suite's value)")
    budget.add_argument("--epochs", type=args.nonneg_int, metavar="N", help="at most this many passes over the training data "
                        f"({d(TrainConfig, 'epochs')})")
    budget.add_argument("--target", type=args.fraction, metavar="ACCURACY",
                        help=f"stop at this validation exact match (0.99 or 99; {d(TrainConfig, 'target')})")
    budget.add_argument("--time-budget", type=float, dest="time_budget_s", metavar="SECONDS",
                        help="stop after the epoch during which this many seconds of training passed (default: no limit)")
    budget.add_argument("--batch-size", type=args.nonneg_int, metavar="N", help="training examples per step "
                        f"({d(TrainConfig, 'batch_size')})")
    budget.add_argument("--lr", type=float, metavar="RATE", help=f"the peak learning rate ({d(TrainConfig, 'lr')})")
    add_recipe(budget)
    budget.add_argument("--steps", type=args.nonneg_int, metavar="N",
                        help="a throughput run: this many timed training steps on fixed-shape batches, no evaluation "
                             f"({d(ThroughputSpec, 'steps')}: a training run)")
    budget.add_argument("--warmup-steps", type=args.nonneg_int, dest="warmup_steps", metavar="N",
                        help=f"untimed steps before a throughput run's clock ({d(ThroughputSpec, 'warmup')})")
    budget.add_argument("--length", type=args.nonneg_int, dest="lengths", metavar="N",
                        help="every example of this source length (generated tasks): a sweep point (default: the task's lengths)")
    budget.add_argument("--train-size", type=args.nonneg_int, metavar="N",
                        help=f"cap the number of training examples (default: the suite's, else no cap: {DataSpec().train:,} generated, or "
                        "a file's whole training split)")
    budget.add_argument("--reverse-source", action="store_true", default=None, help="reverse each source (book ch. 7; default: the "
                        "suite's, else off)")
    toks = r.add_argument_group("tokens (docs/real-data.md)")
    toks.add_argument("--source-tokens", choices=list(TOKENS),
                      help="how sources are cut into tokens: char, space (whitespace-separated) or sentencepiece (trained on the training "
                           "split) (default: the data's own: char; g2p's words are characters)")
    toks.add_argument("--target-tokens", choices=list(TOKENS),
                      help="how targets are cut into tokens: char, space or sentencepiece (default: the data's own: char; g2p's phones: "
                      "space)")
    toks.add_argument("--sentencepiece-type", choices=list(SENTENCEPIECE_TYPES), help="the SentencePiece model: unigram or bpe (default "
                      "unigram)")
    toks.add_argument("--sentencepiece-vocab", type=args.nonneg_int, metavar="N", help="pieces in each side's SentencePiece model (default "
                      "1000)")
    toks.add_argument("--target-unit", choices=list(UNITS),
                      help="what a target token is: char, phone, word or subword; names the token error rate (CER, PER, WER) and asks "
                           "for BLEU/chrF for word and subword (default: char for char tokens, word for space, subword for sentencepiece; "
                           "g2p: phone)")
    toks.add_argument("--keep-stress", action="store_true", default=None, help="task g2p: keep CMUdict's stress digits (default: removed, "
                      "as the papers)")
    how = r.add_argument_group("how it runs")
    how.add_argument("--device", default="auto", metavar="DEVICE", help="auto | cpu | cuda | cuda:N; auto: cuda when there is one")
    how.add_argument("--amp", choices=["off", "bf16", "fp16"],
                     help=f"mixed precision (bf16 also on CPUs with bf16 instructions; {d(TrainConfig, 'amp')})")
    how.add_argument("--threads", type=args.nonneg_int, metavar="N",
                     help="CPU threads per run (torch.set_num_threads; default: 1 on a CPU -- torch's one per core collapses when other "
                          "jobs share the machine; more pays for large models on an idle machine)")
    how.add_argument("--deterministic", action="store_true", help="deterministic kernels (GPU), cuDNN benchmark off")
    how.add_argument("--capture", choices=list(CAPTURE),
                     help="how steps are launched: eager, torch.compile, captured CUDA graphs, or graphs of the compiled model "
                          f"(the last two CUDA only; {d(TrainConfig, 'capture')})")
    how.add_argument("--compile", action="store_true", help="the same as --capture compile")
    how.add_argument("--check-models", action="store_true",
                     help="before anything runs, hold every model of the session to the contract (s2sbench check-model) and refuse one "
                          "that breaks a rule (default: off; a plugin model whose forward raises is refused either way)")
    how.add_argument("--resume", nargs="?", const="auto", metavar="ID",
                     help="continue an interrupted session (without ID: the latest unfinished one of this suite)")
    how.add_argument("--store", default=DEFAULT_PATH, metavar="PATH", help="the results store (SQLite)")
    far = r.add_argument_group("beyond one machine (docs/scale-out.md)")
    far.add_argument("--shard", type=shard_parse, metavar="K/N", help="run only shard K of N (K counts from 1): a deterministic, "
                     "cost-balanced part of the runs")
    far.add_argument("--session-id", type=args.session_id, metavar="ID", help="the session's id (give every shard the same one; `merge` "
                     "joins them; default: the start time and a random suffix)")
    far.add_argument("--executor", choices=["local", "ray"], default="local", help="local: this process; ray: each run a Ray task")
    far.add_argument("--address", metavar="auto|HOST:PORT", help="with --executor ray: auto (the running cluster) or HOST:PORT; default: "
                     "start a local Ray")
    if ddp:
        far.add_argument("--ddp", action="store_true", help="under torchrun: train each run DistributedDataParallel across the processes")


def add_recipe(group: Any) -> None:
    """The recipe flags (docs/tuning.md), shared by ``run`` and ``tune``."""
    group.add_argument("--schedule", choices=list(SCHEDULES),
                       help="learning-rate schedule after the warm-up: constant, inverse-sqrt (Vaswani et al.) or cosine "
                       f"({_d(TrainConfig, 'schedule')})")
    group.add_argument("--lr-warmup", type=args.nonneg_int, dest="lr_warmup", metavar="STEPS",
                       help=f"steps of linear warm-up to --lr, any schedule; not --warmup-steps, which belongs to throughput runs "
                            f"({_d(TrainConfig, 'lr_warmup')}: none)")
    group.add_argument("--label-smoothing", type=float, dest="label_smoothing", metavar="E",
                       help=f"label smoothing in [0, 1) ({_d(TrainConfig, 'label_smoothing')})")
    group.add_argument("--weight-decay", type=float, dest="weight_decay", metavar="W",
                       help=f"decoupled weight decay: AdamW instead of Adam when > 0 ({_d(TrainConfig, 'weight_decay')})")


_TRAIN_FLAGS = ("epochs", "target", "time_budget_s", "batch_size", "lr", "amp", "capture", "steps", "warmup_steps", "schedule", "lr_warmup",
                "label_smoothing", "weight_decay")
_DATA_FLAGS = ("train_size", "reverse_source", "target_file", "valid_file", "test_file", "source_tokens", "target_tokens",
               "sentencepiece_type", "sentencepiece_vocab", "target_unit", "keep_stress")


def specs_from_flags(a: argparse.Namespace) -> tuple[str | None, list]:
    from bench.runner.session import validate
    from bench.spec import suite as suite_mod

    overrides: dict[str, Any] = {k: getattr(a, k) for k in _TRAIN_FLAGS + _DATA_FLAGS if getattr(a, k) is not None}
    if a.model:
        overrides["models"] = a.model.split(",")
    if a.size:
        overrides["sizes"] = a.size.split(",")
    if a.seeds is not None or a.seed is not None:
        overrides["seeds"] = a.seeds if a.seeds is not None else [a.seed]
    if a.option:
        overrides["model_options"] = dict(a.option)
    if a.compile:
        if a.capture not in (None, "compile"):
            raise UserError(f"--compile and --capture {a.capture} contradict each other")
        overrides["capture"] = "compile"
    if a.lengths is not None:
        overrides["lengths"] = [a.lengths]
    if a.plugin:
        overrides["plugins"] = args.plugin_refs(a.plugin)
    if a.suite:
        if a.task or a.task_file:
            raise UserError("give either --suite or --task/--task-file, not both")
        name, _, specs = suite_mod.load(a.suite, overrides, data_dir=a.data_dir, check=validate)  # names before the product
        suite_mod.check_files(name, specs)
        return name, specs
    if not (a.task or a.task_file):
        raise UserError("nothing to run: give --suite NAME, or --task NAME / --task-file PATH with --model")
    if a.task and a.task_file:
        raise UserError("give --task or --task-file, not both")
    if not a.model:
        raise UserError("--model is required with --task/--task-file (see `s2sbench list --models`)")
    what = {"task_files": [a.task_file]} if a.task_file else {"tasks": [a.task]}
    return None, suite_mod.from_flags(what, overrides, check=validate)


def cmd_run(a: argparse.Namespace) -> int:
    from bench.results.store import Store
    from bench.runner import plugins
    from bench.runner.session import check, run_session
    suite, specs = specs_from_flags(a)
    specs = plugins.attach(specs)  # loaded here (and by every torchrun rank, which reads the same flags); each run keeps its own
    sc = args.session_config(a.device, a.threads, a.deterministic)
    if sc.threads is None and a.executor == "local" and not a.ddp:
        from dataclasses import replace

        from bench.measure.device import resolve_device

        if resolve_device(sc.device).type == "cpu":
            sc = replace(sc, threads=CPU_THREADS)
    env_extra: dict[str, Any] = {}
    if a.suite:
        from bench.spec.suite import note

        if text := note(a.suite):  # the suite's own caveat, kept with the session for its last lines and its report
            env_extra["suite_note"] = text
    if a.shard:
        from bench.runner.shard import select

        specs, env_extra["shard"] = select(specs, a.shard)
    if a.address and a.executor != "ray":
        raise UserError("--address goes with --executor ray")
    if a.ddp and a.executor == "ray":
        raise UserError("--ddp runs under torchrun, not with --executor ray")
    executor: Any = None
    group: Any = None
    try:
        if a.ddp:
            from bench.runner.ddp import Group
            from bench.runner.executor import LocalExecutor

            group = Group.from_torchrun(a.device)
            sc, executor, env_extra["ddp"] = group.session_config(sc), LocalExecutor(parallel=group), group.describe()
        elif a.executor == "ray":
            from bench.runner.ray_executor import RayExecutor
            from bench.runner.session import validate

            for s in specs:  # the cheap refusals before starting or joining Ray
                validate(s)
            executor = RayExecutor(a.address, threads=a.threads)
        cache = check(specs, sc, executor)  # bad input is refused before the store is touched
        if a.check_models:
            plugins.refuse_broken(specs)  # models that run, held to the whole contract

        def open_store() -> tuple[Store, str | None]:
            store = Store(a.store)
            try:
                return store, _resume(store, a, suite, {s.key() for s in specs})
            except BaseException:
                store.close()
                raise

        store, resume, specs = group.open_store(open_store, specs) if group else (*open_store(), specs)
        command = "s2sbench " + " ".join(shlex.quote(x) for x in sys.argv[1:])
        try:
            sid = run_session(specs, store, sc, suite, command, resume=resume, cache=cache, session_id=a.session_id, executor=executor,
                              env_extra=env_extra, progress=group.progress() if group else None)
            if group is not None and group.rank != 0:
                return 0
            from bench.analysis.conclusions import session_lines
            from bench.results.outcome import outcomes
            from bench.results.tidy import runs_frame

            counts = outcomes(store.runs(sid))
            found = session_lines(runs_frame(store, [sid]), store.session(sid)["env"], sid)
        finally:
            store.close()  # closed here, not at exit: a store whose disk filled up is tidied (no empty -wal/-shm left beside it)
    finally:
        if hasattr(executor, "close"):
            executor.close()
        if group is not None:
            group.close()
    if a.shard:
        print(f"shard {a.shard[0]}/{a.shard[1]}: {len(specs)} of {env_extra['shard']['suite_runs']} runs")
    for line in found:
        print(line)
    print(f"session {sid}: {counts.text()}; stored in {a.store}")
    print(f"report: s2sbench report --store {shlex.quote(a.store)} --session {sid}")
    return NO_RUN_OK if counts.ok == 0 and counts.failed else 0


# A local session on a CPU runs on one thread unless --threads says otherwise. torch's default (one thread per
# core) collapsed when other jobs shared the machine: one epoch of date/attention/small took 2.5-3.3 s on one
# thread and 9.9-81.9 s on torch's two, side by side on 2 cores at load 7-12 (docs/first-hour.md). One thread is
# also what the CI baselines, bisect and the tests use, so a session's speeds compare with theirs.
CPU_THREADS = 1

# ``run``'s exit codes: 0 when at least one run succeeded (failures are stored with their reasons, and the
# session goes on), NO_RUN_OK when every run failed -- a benchmark that measured nothing must not pass a
# script or a CI step -- 2 for bad input (nothing runs), 130 when interrupted.
NO_RUN_OK = 1


def _resume(store: Any, a: argparse.Namespace, suite: str | None, runs: set[str]) -> str | None:
    """The session ``run`` continues, if any. With --session-id: that session when the store has it and --resume is given.

    A session is resumed only for runs of its plan, and never once finished (``bench.results.plans``): checked here,
    before the session's calibration, and again when the session is taken over."""
    sid: str | None = None
    if a.session_id:
        found = [s for s in store.sessions() if s["id"] == a.session_id]
        if found and not a.resume:
            advice = ("it finished: choose another --session-id" if found[0]["status"] == "finished"
                      else "add --resume to continue it, or choose another --session-id")
            raise UserError(f"session {a.session_id!r} is already in {a.store}: {advice}")
        if a.resume not in (None, "auto", a.session_id):
            raise UserError(f"--resume {a.resume} and --session-id {a.session_id} name different sessions")
        sid = a.session_id if found else None
    elif a.resume:
        sid = store.resumable(suite, runs) if a.resume == "auto" else store.session(a.resume)["id"]
    if sid is not None:
        store.check_resume(sid, runs)
    return sid
