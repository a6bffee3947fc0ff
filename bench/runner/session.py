"""Expands run specs into runs, executes them one by one, records each in the store at once.

A run that diverges, runs out of memory or raises is recorded as failed with its reason, and the session
goes on; Ctrl-C marks the session interrupted and leaves every finished run in the store, so ``--resume``
continues where it stopped (a run is identified by task, model, size, seed and the hash of its config).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import threading
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch

import models
from bench.data import tasks
from bench.data.batching import Encoded, encode_split
from bench.data.tasks import TaskData, TaskOptions, textfile
from bench.data.vocab import BOS, EOS, Vocab
from bench.errors import UserError
from bench.measure.calibrate import peak_flops
from bench.measure.timing import Precision, median, peak_memory_bytes, reset_peak_memory, time_fn
from bench.results.store import RunRecord, Store
from bench.runner.progress import Progress
from bench.train.evaluate import evaluate
from bench.train.loop import Diverged, TrainConfig, fit
from bench.train.seeding import seed_everything, set_deterministic

if TYPE_CHECKING:
    from bench.runner.ddp import Group
    from bench.runner.executor import Executor


@dataclass(frozen=True)
class DataSpec:
    task: str = "date"  # a registered task, or a path to a book-format file (task_file)
    task_file: str | None = None
    seed: int = 0  # data seed, separate from the model seed
    train: int = 20_000
    valid: int = 1_000
    test: int = 2_000
    train_size: int | None = None  # cap on training examples (files)
    reverse_source: bool = False  # book ch. 7: reversing the source shortens the paths that matter
    train_lengths: tuple[int, int] | None = None
    test_lengths: tuple[int, int] | None = None
    # Book-format files only (bench.data.tasks.textfile): what the book's own loader does with the padding.
    keep_source_padding: bool = False  # the encoder reads the padding spaces as characters (book ch. 7-8)
    fixed_length_target: bool = False  # the decoder writes the space-padded answer, no end token (book's eval_seq2seq)

    @property
    def name(self) -> str:
        return os.path.splitext(os.path.basename(self.task_file))[0] if self.task_file else self.task


# DataSpec fields added after runs were stored: left out of a run's config (and hash) at their default.
_LATE_DATA_FIELDS = ("keep_source_padding", "fixed_length_target")


@dataclass(frozen=True)
class MeasureSpec:
    decode_batch: int = 256  # the "large batch" of the decode-latency figure
    decode_repeats: int = 5  # median over repeats, after one warm-up call
    samples: int = 4  # attention maps of the first test inputs kept for the report


@dataclass(frozen=True)
class RunSpec:
    model: str
    size: str
    seed: int
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainConfig = field(default_factory=TrainConfig)
    model_options: tuple[tuple[str, Any], ...] = ()  # e.g. (("bidirectional", True),)
    measure: MeasureSpec = field(default_factory=MeasureSpec)

    def config(self) -> dict[str, Any]:
        d = asdict(self)
        d["model_options"] = dict(self.model_options)
        for k in _LATE_DATA_FIELDS:  # at their default, as runs stored before these fields existed: same key
            if d["data"][k] == getattr(DataSpec(), k):
                del d["data"][k]
        return d

    def config_hash(self) -> str:
        c = self.config()
        c.pop("seed")
        return hashlib.sha256(json.dumps(c, sort_keys=True).encode()).hexdigest()[:12]

    def key(self) -> str:
        return f"{self.data.name}/{self.model}/{self.size}/{self.seed}/{self.config_hash()}"

    def label(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.model_options)
        return f"{self.data.name} {self.model}{'(' + opts + ')' if opts else ''} {self.size} seed={self.seed}"


@dataclass(frozen=True)
class SessionConfig:
    """How (not what) a session runs; recorded with the session."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # CPU intra-op threads (torch.set_num_threads)
    deterministic: bool = False
    compile: bool = False
    peak_flops: float | None = None  # the device's FLOP/s for MFU; measured at session start when not given


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but CUDA is not available here")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"device {name!r} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def validate(spec: RunSpec) -> None:
    """Reject impossible configs before a session starts (bad input, exit 2), not run by run."""
    if spec.model not in models.names():
        raise UserError(f"unknown model {spec.model!r}; known models: {', '.join(models.names())}")
    if spec.size not in models.sizes(spec.model):
        raise UserError(f"model {spec.model!r} has no size {spec.size!r}; sizes: {', '.join(models.sizes(spec.model))}")
    try:
        models.config(spec.model, 10, spec.size, **dict(spec.model_options))
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(str(e).strip("'\"")) from None
    if spec.data.task_file is None:
        tasks.entry(spec.data.task)
        if spec.data.keep_source_padding or spec.data.fixed_length_target:
            raise UserError(f"{spec.label()}: keep_source_padding and fixed_length_target apply to book-format files (task_file) only")
    t = spec.train
    if t.epochs < 1 or t.batch_size < 1 or t.lr <= 0 or t.clip <= 0 or t.eval_batch_size < 1:
        raise UserError(f"{spec.label()}: epochs, batch size, lr, clip and eval batch size must be positive")
    if t.target is not None and not 0 < t.target <= 1:
        raise UserError(f"{spec.label()}: target accuracy must be in (0, 1], got {t.target}")
    if t.amp not in ("off", "bf16", "fp16"):
        raise UserError(f"{spec.label()}: amp must be off, bf16 or fp16, got {t.amp!r}")
    d = spec.data
    if d.train_size is not None and d.train_size < 1:
        raise UserError("--train-size must be at least 1")
    if min(d.train, d.valid, d.test) < 1:
        raise UserError("train, valid and test sizes must be at least 1")


@dataclass
class Prepared:
    data: TaskData
    vocab: Vocab
    train: Encoded
    valid: Encoded
    test: Encoded


class DataCache:
    """Task data is a pure function of its DataSpec: build it once per session, share it across runs."""

    def __init__(self) -> None:
        self._c: dict[DataSpec, Prepared] = {}

    def get(self, d: DataSpec) -> Prepared:
        if d not in self._c:
            if d.task_file:
                data = textfile.load(d.task_file, d.train_size, d.keep_source_padding, d.fixed_length_target)
            else:
                opts = TaskOptions(seed=d.seed, train=d.train, valid=d.valid, test=d.test,
                                   train_lengths=d.train_lengths, test_lengths=d.test_lengths)
                data = tasks.make(d.task, opts)
                if d.train_size is not None:
                    data = replace(data, train=data.train[: d.train_size])
            vocab = Vocab.from_texts(data.texts())
            enc = [encode_split(s, vocab, d.reverse_source, eos=not d.fixed_length_target) for s in (data.train, data.valid, data.test)]
            self._c[d] = Prepared(data, vocab, *enc)
        return self._c[d]


class PeakRSS:
    """Peak resident memory of this process while a run is in flight, sampled every 50 ms.

    ``ru_maxrss`` is the process's peak since it started, not this run's (DESIGN: measurement pitfalls).
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            return 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self.rss()
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.rss())


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


MIN_TIMED_S = 0.3


def decode_latency(model: models.Seq2Seq, enc: Encoded, batch: int, device: torch.device, repeats: int, autocast: Callable) -> dict[str, float]:
    """Median seconds of one greedy decode of ``batch`` test inputs, and decoded tokens per second.

    A decode of a few milliseconds is at the mercy of one scheduler hiccup: calls are repeated until they
    add up to at least ``MIN_TIMED_S`` (``repeats`` at least, 50 at most), so the median rests on many.
    """
    from bench.data.batching import make_batch

    idx = torch.arange(min(batch, len(enc)))
    b = make_batch(enc, idx).to(device)
    max_len = int(enc.tgt_len.max()) + 1
    model.eval()

    def run() -> None:
        with torch.inference_mode(), autocast():
            model.generate(b.src, b.src_mask, max_len, BOS, EOS)

    first = time_fn(run, device, repeats=1, warmup=1)[0]
    n = min(50, max(repeats, math.ceil(MIN_TIMED_S / max(first, 1e-6))))
    secs = median(time_fn(run, device, repeats=n, warmup=0) + [first])
    return {"seconds": secs, "tokens_per_s": len(idx) * max_len / secs}


def execute(spec: RunSpec, prep: Prepared, device: torch.device, sc: SessionConfig, progress: Progress | None = None,
            parallel: Group | None = None) -> tuple[dict, list, list]:
    """Train, evaluate and measure one run. -> (metrics, per-epoch history, attention samples).

    ``parallel``: this process is one rank of a data-parallel run (``bench.runner.ddp``, under torchrun).
    """
    seed_everything(spec.seed)
    model = models.build(spec.model, len(prep.vocab), spec.size, **dict(spec.model_options)).to(device)
    params = models.count_params(model)
    runnable = torch.compile(model) if sc.compile else model
    if parallel is not None:
        runnable = parallel.wrap(runnable)
    from bench.data.batching import make_batch
    from bench.measure.flops import train_step_flops

    probe = make_batch(prep.train, torch.arange(min(spec.train.batch_size, len(prep.train)))).to(device)
    flops_per_token = train_step_flops(model, probe) / max(probe.target_tokens, 1)
    reset_peak_memory(device)
    autocast = Precision(spec.train.amp).autocast(device)
    with PeakRSS() as mem:
        on_epoch = (lambda e: progress.epoch(e.epoch, e.valid_exact_match, e.train_s)) if progress else None
        on_batch = None
        if progress is not None:
            epoch_no = [1]

            def on_batch(i: int, n: int) -> None:
                progress.batch(i, n, epoch_no[0])
                if i == n:
                    epoch_no[0] += 1

        fr = fit(runnable, prep.train, prep.valid, spec.train, device, spec.seed, on_epoch=on_epoch, on_batch=on_batch, parallel=parallel)
        ev = evaluate(model, prep.test, device, spec.train.eval_batch_size, with_attention=True, n_samples=spec.measure.samples, autocast=autocast)
        lat1 = decode_latency(model, prep.test, 1, device, spec.measure.decode_repeats, autocast)
        latb = decode_latency(model, prep.test, spec.measure.decode_batch, device, spec.measure.decode_repeats, autocast)
    steady = fr.epochs[1:] or fr.epochs  # the first epoch carries the warm-up
    train_s = sum(e.train_s for e in steady)
    tok_s = sum(e.tokens for e in steady) / train_s if train_s else None
    peak = (sc.peak_flops or 0.0)
    metrics = {
        "params": params,
        "flops_per_token": flops_per_token,  # one training step (forward + backward), per target token
        "mfu": flops_per_token * tok_s / peak if tok_s and peak else None,
        "epochs": len(fr.epochs),
        "stopped": fr.stopped,
        "epoch_seconds": [e.train_s for e in fr.epochs],
        "eval_seconds": [e.eval_s for e in fr.epochs],
        "train_tokens_per_s": tok_s,
        "train_examples_per_s": sum(e.examples for e in steady) / train_s if train_s else None,
        "time_to_target_s": fr.time_to_target_s,
        "wall_to_target_s": fr.wall_to_target_s,
        "target": spec.train.target,
        "final_loss": fr.epochs[-1].loss,
        "valid_exact_match": fr.epochs[-1].valid_exact_match,
        "test_exact_match": ev.exact_match,
        "test_token_accuracy": ev.token_accuracy,
        "test_n": ev.n,
        "test_by_length": ev.summary()["by_length"],
        "alignment": ev.alignment,
        "decode_latency_b1_s": lat1["seconds"],
        "decode_latency_batch_s": latb["seconds"],
        "decode_batch": min(spec.measure.decode_batch, len(prep.test)),
        "decode_tokens_per_s": latb["tokens_per_s"],
        "peak_memory_bytes": peak_memory_bytes(device) if device.type == "cuda" else mem.peak,
        "peak_memory_kind": "cuda_max_allocated" if device.type == "cuda" else "process_rss_peak",
        "peak_memory_run_bytes": peak_memory_bytes(device) if device.type == "cuda" else mem.peak - mem.start,
        "vocab_size": len(prep.vocab),
        "train_examples": len(prep.train),
    }
    if parallel is not None:
        metrics |= parallel.metrics(metrics)
    samples = []
    for s in ev.samples:
        s = dict(s)
        s["pred"] = [prep.vocab.token(i) for i in s["pred"]]
        samples.append(s)
    return metrics, fr.history(), samples


def check(specs: list[RunSpec], sc: SessionConfig, executor: Executor | None = None) -> DataCache:
    """Refuse bad input before a session exists: unknown names, impossible configs, bad data files."""
    for s in specs:
        validate(s)
    (executor.resolve_device if executor is not None else resolve_device)(sc.device)
    cache = DataCache()
    for s in specs:
        cache.get(s.data)
    return cache


def failure_reason(e: BaseException) -> str:
    if isinstance(e, Diverged):
        return f"diverged: {e}"
    if isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower():
        return f"out of memory: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    tb = traceback.extract_tb(e.__traceback__)
    where = f" at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno}" if tb else ""
    return f"{type(e).__name__}: {e}{where}"


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
) -> str:
    """Run every spec, committing each run as it ends. Returns the session id.

    ``resume``: the id of an earlier session to continue; its finished runs are skipped.
    ``executor``: where runs execute (``bench.runner.executor``; default: here, one after another). Whichever it
    is, this process alone writes the store, one transaction per run as its result comes back.
    ``env_extra``: recorded with the session's environment (the shard, the data-parallel world, ...).
    """
    from bench.runner.executor import LocalExecutor, RunContext

    ex = executor or LocalExecutor()
    cache = cache or check(specs, sc, ex)
    device = ex.resolve_device(sc.device)
    if sc.threads:
        torch.set_num_threads(sc.threads)
    set_deterministic(sc.deterministic)
    # A fixed workload timed now, in this process: compare divides speed by it (machine normalisation), and
    # its matmul rate is MFU's denominator on a device without a spec-sheet peak.
    cal = ex.calibrate(device, sc)
    if sc.peak_flops is None:
        sc = replace(sc, peak_flops=peak_flops(cal))
    if resume:
        sid = resume
        done = store.done_keys(sid)
        store.finish_session(sid, None, "running")  # type: ignore[arg-type]
    else:
        sid = session_id or dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S-") + os.urandom(2).hex()
        env = ex.environment(device) | {"session_config": asdict(sc), "suite": suite, "calibration": cal} | (env_extra or {})
        store.add_session(sid, now(), suite, command, env)
        done = set()
    todo = [s for s in specs if s.key() not in done]
    progress = progress or Progress(len(todo))
    progress.total = len(todo)
    status = "finished"
    try:
        for o in ex.map(todo, RunContext(cache, device, sc, progress)):  # each outcome as its run ends
            spec = o.spec
            rec_status = "ok" if o.error is None else "failed"
            detail = o.error or f"test exact {o.metrics['test_exact_match']:.1%}"
            store.add_run(RunRecord(sid, spec.key(), spec.data.name, spec.model, spec.size, spec.seed, spec.config(), spec.config_hash(),
                                    rec_status, o.error, o.started, o.finished, o.metrics, o.history, o.samples))
            progress.end_run(rec_status, detail)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        store.finish_session(sid, now(), status)
    return sid
