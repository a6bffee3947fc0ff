"""A session: checks every run before anything starts, then runs them and records each in the store at once.

A run that diverges, runs out of memory or raises is recorded as failed with its reason, and the session
goes on; Ctrl-C marks the session interrupted and leaves every finished run in the store, so ``--resume``
continues where it stopped (a run is identified by task, model, size, seed and the hash of its config).

One process works on a session at a time (``bench.results.owners``): it owns the session, keeps a heartbeat,
and claims each run before it starts, so two ``--resume`` of one session never store a run twice, and a
session whose process was killed reads ``interrupted`` without anyone cleaning up. A session is
``finished`` only when every one of its runs is stored; a store that refused a write, Ctrl-C or any other
error leaves it ``interrupted``, for ``--resume`` to continue.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import asdict, replace
from typing import Any, Protocol

import torch

import models
from bench.data import tasks
from bench.data.tokens import OptionError
from bench.errors import UserError
from bench.measure.device import resolve_device
from bench.results import outputs
from bench.results.calibration import peak_flops
from bench.results.owners import Heartbeat, Owner, SessionLost
from bench.results.store import RunRecord, Store
from bench.runner.cache import DataCache, Prepared
from bench.runner.execute import now
from bench.runner.executor import Executor, LocalExecutor, RunContext
from bench.runner.plugins import load_for, smoke
from bench.runner.progress import Progress
from bench.spec.run import AMP, RunSpec, SessionConfig
from bench.spec.suite import where_key
from bench.train.schedule import total_steps
from bench.train.scores import TEXT_UNITS, require_text_scores
from bench.train.seeding import set_deterministic


class Plan(Protocol):
    """A session planned in rounds (``run_session``'s ``plan``). ``total``: how many runs the whole plan holds."""

    total: int

    def next(self, runs: list[RunRecord]) -> list[RunSpec]: ...

    def note(self, spec: RunSpec) -> dict[str, Any] | None: ...


def validate(spec: RunSpec) -> None:
    """What the spec cannot check without the model code: the model and its size exist, and its options fit the
    model's config -- known fields, of the right type and range (``models.options``), and a model its
    constructor accepts (built once on the meta device: no memory, no time). So ``--option hidden=0`` is
    refused here, before any run starts, not stored as a failed run.

    Every value of the spec itself was checked when it was built (``bench.spec.run``). The plugins the run names are
    loaded first (once per process), and a plugin's model must run on the contract's first batch.
    """
    load_for([spec])
    if spec.model not in models.names():
        raise UserError(f"{where_key(spec.origin, 'models')}: unknown model {spec.model!r}; known models: {', '.join(models.names())}")
    if spec.size in (miss := models.unreachable(spec.model)):
        raise UserError(f"{where_key(spec.origin, 'sizes')}: model {spec.model!r} cannot reach size {spec.size!r}: {miss[spec.size]}")
    if spec.size not in models.sizes(spec.model):
        raise UserError(f"{where_key(spec.origin, 'sizes')}: model {spec.model!r} has no size {spec.size!r}; sizes: "
                        f"{', '.join(models.sizes(spec.model))}")
    where = where_key(spec.origin, "model_options")
    options = dict(spec.model_options)
    try:
        models.config(spec.model, 10, spec.size, **options)
    except models.OptionError as e:
        raise UserError(f"{where}: {spec.model} option {e.key} {e.rule}") from None
    except (KeyError, TypeError) as e:
        why = str(e).strip("'\"")  # a KeyError's message comes quoted
        raise UserError(f"{where}: {why}") from None
    if options:  # what ties fields together (an even width for a bidirectional encoder, heads dividing d_model)
        try:
            with torch.device("meta"):
                models.build(spec.model, 10, spec.size, **options)
        except ValueError as e:
            raise UserError(f"{where}: {spec.model} at size {spec.size} with {', '.join(f'{k}={v}' for k, v in spec.model_options)}: "
                            f"{e}") from None
    smoke(spec)
    check_lengths(spec)
    sync = models.host_sync(spec.model, spec.size, **options) if spec.train.graph else None
    if sync:
        raise UserError(f"{where_key(spec.origin, 'capture')} {spec.train.capture} cannot capture {spec.model}: {sync}, a wait no CUDA "
                        "graph can hold; use --capture compile (it splits the graph there) or eager")
    longest = models.longest_sequence(spec.model, spec.size, **dict(spec.model_options))
    lengths = [hi for lo_hi in (spec.data.train_lengths, spec.data.test_lengths) if lo_hi for hi in lo_hi[1:]]
    if longest is not None and lengths and max(lengths) + 1 > longest:  # the target is one longer (EOS)
        raise UserError(f"{where_key(spec.origin, 'lengths')}: sources of {max(lengths)} characters (targets of {max(lengths) + 1}) are "
                        f"beyond what {spec.model} at size {spec.size} can position ({longest}); drop the point or give a longer table "
                        "(model option max_positions)")


def check_lengths(spec: RunSpec) -> None:
    """The task exists, and takes the lengths the run asks for: a task that draws its examples as it defines them
    (date, addition) or a data file would ignore them, and the run would be stored as a sweep point it never was.
    Whether a task takes lengths is metadata on its registry entry (``TaskEntry.lengths``)."""
    d = spec.data
    entry = tasks.entry(d.task) if d.task_file is None else None
    asked = [k for k in ("train_lengths", "test_lengths") if getattr(d, k) is not None]
    if not asked or (entry is not None and entry.lengths):
        return
    point = d.train_lengths is not None and d.train_lengths == d.test_lengths and d.train_lengths[0] == d.train_lengths[1]
    where = where_key(spec.origin, "lengths" if point else asked[0])
    if entry is None:
        raise UserError(f"{where}: the data file {d.task_file} has the lengths it has; lengths apply to generated tasks")
    takers = [n for n in tasks.names() if tasks.entry(n).lengths]
    raise UserError(f"{where}: task {d.task} has no lengths to set (it draws its examples as it defines them); "
                    f"lengths apply to {', '.join(takers)}")


def check_positions(spec: RunSpec, prep: Prepared) -> None:
    """The data fits the model's position table (``models.longest_sequence``): every source, every teacher-forced
    target and every decode (an answer and its end token, plus the one spare step greedy decoding takes) -- checked
    on the data itself, before any run, so that ``--option max_positions=8`` on date is refused here rather than
    stored as a failed run for every seed."""
    longest = models.longest_sequence(spec.model, spec.size, **dict(spec.model_options))
    if longest is None:
        return
    splits = (prep.train, prep.valid, prep.test)
    src = max((int(e.src_len.max()) for e in splits if len(e)), default=0)
    tgt = max((int(e.tgt_len.max()) for e in splits if len(e)), default=0)
    need = max(src, tgt if spec.throughput.enabled else tgt + 1)  # bench.train.evaluate decodes tgt_len + 1 steps
    if need > longest:
        raise UserError(f"{where_key(spec.origin, 'model_options')}: {spec.model} at size {spec.size} covers {longest} positions "
                        f"(model option max_positions), but {spec.data.name}'s data needs {need} (sources up to {src} tokens, "
                        f"answers up to {tgt} with the end token); give max_positions >= {need}, or leave it at its default")


def check_device(spec: RunSpec, device: torch.device, data_parallel: bool = False) -> None:
    """The one device and precision check: what a run asks of the device it will run on.

    fp16 autocast needs CUDA (its loss scaling and kernels; on a CPU the LSTM kernels fail with an opaque
    oneDNN error), and so does capturing steps as CUDA graphs, which also cannot capture data-parallel steps.
    A model option may need what the device or this machine lacks (the SSM's ``kernel=mamba``: CUDA and the
    mamba-ssm package); the registry says what (``models.unmet_requirement``).
    """
    need = models.unmet_requirement(spec.model, device.type, spec.size, **dict(spec.model_options))
    if need:
        raise UserError(f"{where_key(spec.origin, 'model_options')}: {spec.model} {need}")
    if device.type != "cuda":
        if spec.train.amp == "fp16":
            raise UserError(f"{where_key(spec.origin, 'amp')} fp16 needs a CUDA device; this session runs on "
                            f"{device.type} (use bf16 or off)")
        if spec.train.graph:
            raise UserError(f"{where_key(spec.origin, 'capture')} {spec.train.capture} needs a CUDA device; this session runs on "
                            f"{device.type} (use eager or compile)")
    if data_parallel and spec.train.graph:
        raise UserError(f"{where_key(spec.origin, 'capture')} {spec.train.capture} cannot capture data-parallel (--ddp) steps; use eager "
                        "or compile")


def distinct(specs: list[RunSpec]) -> list[RunSpec]:
    """One run of each configuration apart from its seed: what every check below looks at (a check that holds for
    one seed holds for all), so a matrix of many seeds is checked as fast as one."""
    seen: dict[tuple[Any, ...], RunSpec] = {}
    for s in specs:
        seen.setdefault((s.model, s.size, s.data, s.train, s.model_options, s.measure, s.throughput), s)
    return list(seen.values())


def check(specs: list[RunSpec], sc: SessionConfig, executor: Executor | None = None) -> DataCache:
    """Refuse bad input before a session exists: unknown names, impossible configs, bad data files -- the cheap
    checks first (names and options), then the device, then the data (built once, and kept for the runs)."""
    configs = distinct(specs)
    for s in configs:
        validate(s)
    device = (executor.resolve_device if executor is not None else resolve_device)(sc.device)
    for s in configs:
        check_device(s, device, getattr(executor, "parallel", None) is not None)
    cache = DataCache()
    for s in configs:
        try:
            prep = cache.get(s.data)
        except OptionError as e:  # a data option the data refuses: named as the user wrote it
            raise UserError(f"{where_key(s.origin, e.key)} {e.rule}") from None
        if not s.throughput.enabled and prep.unit in TEXT_UNITS:
            require_text_scores()
        check_warmup(s, len(prep.train))
        check_positions(s, prep)
    return cache


def check_warmup(spec: RunSpec, examples: int) -> None:
    """A warm-up longer than the run's training (``examples`` per epoch) would never reach the rate asked for."""
    t = spec.train
    total = spec.throughput.warmup + spec.throughput.steps if spec.throughput.enabled else total_steps(t.epochs, examples, t.batch_size)
    if t.lr_warmup > total:
        how = (f"{spec.throughput.warmup} + {spec.throughput.steps} steps" if spec.throughput.enabled
               else f"{t.epochs} epochs x {total // t.epochs} batches of {t.batch_size} = {total} steps")
        raise UserError(f"{where_key(spec.origin, 'lr_warmup')} {t.lr_warmup} is longer than training ({spec.data.name}: {how})")


def run_session(
    specs: list[RunSpec],
    store: Store,
    sc: SessionConfig,
    suite: str | None,
    command: str,
    resume: str | None = None,
    progress: Progress | None = None,
    session_id: str | None = None,
    cache: DataCache | None = None,
    executor: Executor | None = None,
    env_extra: dict[str, Any] | None = None,
    plan: Plan | None = None,
) -> str:
    """Run every spec, committing each run as it ends. Returns the session id.

    ``plan``: a session whose later runs depend on earlier results (``bench.runner.tune``): once ``specs`` are
    done, ``plan.next`` is given every run the session has stored and answers the runs to do next, until it
    answers none; ``plan.note`` is stored with each run's metrics (``"tune"``). Each round's runs join the
    session's stored plan (``bench.results.plans``) before they run.

    ``resume``: the id of an earlier session to continue; its finished runs are skipped. Only the runs of its plan
    may be given (``bench.results.plans``), and never to a finished session: both are refused before anything runs.
    ``executor``: where runs execute (``bench.runner.executor``; default: here, one after another). Whichever
    it is, this process alone writes the store, one transaction per run as its result comes back.
    ``env_extra``: recorded with the session's environment (the shard, the data-parallel world, ...).
    """
    ex = executor or LocalExecutor()
    cache = cache or check(specs, sc, ex)
    device = ex.resolve_device(sc.device)
    if sc.threads:
        torch.set_num_threads(sc.threads)
    set_deterministic(sc.deterministic)
    # A fixed workload timed now, in this process: compare divides speed by it (machine normalisation), and
    # its matmul rate is MFU's denominator on a device without a spec-sheet peak.
    cal = ex.calibrate(device, sc)
    sc = replace(sc, peaks=tuple((amp, f) for amp in AMP if (f := peak_flops(cal, amp)) is not None))
    keys = list(dict.fromkeys(s.key() for s in specs))  # the session's plan (bench.results.plans), in the order given
    if resume:
        sid = resume
        # refused while another process runs the session, when it finished, or for runs it did not plan
        owner = store.acquire(sid, resume=True, runs=None if plan is not None else set(keys))
        if plan is not None:  # a tuning session's plan grows round by round: this round's runs join it
            store.extend_plan(sid, keys)
    else:
        sid = session_id or dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S-") + os.urandom(2).hex()
        env = ex.environment(device) | {"session_config": asdict(sc), "suite": suite, "calibration": cal} | (env_extra or {})
        store.add_session(sid, now(), suite, command, env, plan=keys)  # the plan is fixed when the session starts
        owner = store.acquire(sid, resume=False)
    done = store.done_keys(sid)  # read as the owner: nobody adds to it meanwhile
    todo = list({s.key(): s for s in specs if s.key() not in done}.values())
    progress = progress or Progress(len(todo))
    progress.total = len(todo) if plan is None else max(plan.total - len(store.stored_keys(sid)), len(todo))
    beat = Heartbeat(store.path, owner.token).start() if store.path != ":memory:" else None
    status: str | None = "interrupted"  # until every run of the session is stored
    clean = False
    ctx = RunContext(cache, device, sc, progress, claim=lambda spec: store.claim(owner, spec.key()))
    planned = {s.key() for s in specs}
    try:
        while todo:
            if plan is not None:  # a tuning round's runs join the plan before they run (store.planned stays the truth)
                store.extend_plan(sid, [s.key() for s in todo])
            for o in ex.map(todo, ctx):  # each outcome as its run ends
                spec = o.spec
                rec_status = "ok" if o.error is None else "failed"
                detail = o.error or (f"{o.metrics['step_s'] * 1000:.2f} ms/step, {o.metrics['train_tokens_per_s']:,.0f} tok/s"
                                     if spec.throughput.enabled
                                     else f"test exact {o.metrics['test_exact_match']:.1%}")
                metrics = dict(o.metrics)
                predictions = metrics.pop(outputs.KEY, None)  # every test example's output: stored beside the run, not in its metrics
                note = plan.note(spec) if plan is not None else None
                if note:
                    metrics["tune"] = note
                store.add_run(RunRecord(session=sid, key=spec.key(), task=spec.data.name, model=spec.model, size=spec.size, seed=spec.seed,
                                        config=spec.config(), config_hash=spec.config_hash(), status=rec_status, error=o.error,
                                        started=o.started, finished=o.finished, metrics=metrics, history=o.history, samples=o.samples,
                                        predictions=predictions),
                              claim=owner.token)
                progress.end_run(rec_status, detail)
            # A plan's next runs depend on what is stored now; each run is tried once per invocation.
            tried = {s.key() for s in todo}
            todo = [s for s in plan.next(store.runs(sid)) if s.key() not in tried and s.key() not in planned] if plan is not None else []
            todo = list({s.key(): s for s in todo}.values())
            planned |= {s.key() for s in todo}
        # Only a session that ran every run of its plan is finished (a resume may run part of it); one whose store
        # refused a write, or that was stopped, is not.
        if store.planned(sid) <= store.stored_keys(sid) and (plan is None or not plan.next(store.runs(sid))):
            status = "finished"
        clean = True
    except SessionLost:
        status = None  # the session is another process's now: its status is not ours to set
        raise
    finally:
        if beat is not None:
            beat.stop()
        _release(store, owner, status, raising=not clean)
    return sid


def _release(store: Store, owner: Owner, status: str | None, raising: bool) -> None:
    """Let go of the session. When that write fails too (the store still locked) while an error is already on its
    way out (``raising``), that error is the one to report: the session reads ``interrupted`` once this process
    has ended, its owner gone."""
    try:
        store.release(owner, status)
    except UserError:
        if not raising:
            raise
