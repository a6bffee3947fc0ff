"""What runs and how, as frozen dataclasses: validated once, here, where they are built.

A run is (data, model, size, seed, training settings, model options, measurement settings); a session
adds how it runs (device, threads, determinism). Every value is checked in ``__post_init__``, so a spec
that exists is a valid one, whichever door it came in by -- command-line flags, a suite file, a Ray worker,
a torchrun rank. What needs the model code to check (does the model exist, does it take this option) is
checked by the runner against the registry (``bench.runner.session.check``); nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.errors import UserError

AMP = ("off", "bf16", "fp16")
# How a side's text is cut into tokens, and what a target token is (bench.data.tokens holds the tokenizers;
# the names are here, with every other option's choices, so that a spec is checked without the data code).
TOKENS = ("char", "space", "sentencepiece")
SENTENCEPIECE_TYPES = ("unigram", "bpe")
UNITS = ("char", "phone", "word", "subword")  # autocast precisions (bf16 also on CPUs with bf16 instructions)
# How the training (and decode) step is launched: eager PyTorch; torch.compile (mode reduce-overhead on CUDA);
# or the step captured once as a CUDA graph and replayed (fixed shapes; CUDA only).
# (docs/design.md, "Launch overhead is a dimension of the run")
CAPTURE = ("eager", "compile", "cudagraph", "compile-cudagraph")
# The modes that capture the whole step as CUDA graphs (bench.train.capture.GraphStep); compile-cudagraph
# runs the model through torch.compile first, so the graph replays inductor's fused kernels.
GRAPH_CAPTURES = ("cudagraph", "compile-cudagraph")
# Learning-rate schedules (bench.train.schedule): the peak lr held, Vaswani et al.'s inverse square root (2017, §5.3),
# or a cosine decay (Loshchilov & Hutter 2017, SGDR, without restarts); each after an optional linear warm-up.
SCHEDULES = ("constant", "inverse-sqrt", "cosine")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
# The longest generated source a run may ask for (train_lengths, test_lengths, a --length sweep point): Long
# Range Arena's longest sequences. Far beyond it, generating the data alone takes minutes and gigabytes.
MAX_LENGTH = 16_384


class SpecError(UserError):
    """A value of a spec refused: ``key`` names the field, ``rule`` says what it must be.

    The message reads ``<owner>: <key> <rule>``; a suite file re-words it as ``<file>: key '<key>' <rule>``.
    """

    def __init__(self, owner: str, key: str, rule: str) -> None:
        super().__init__(f"{owner}: {key} {rule}")
        self.key, self.rule = key, rule


def _number(owner: str, name: str, v: Any, *, low: float | None = None, low_open: bool = True, high: float | None = None,
            integer: bool = False) -> None:
    """One range check, one message: ``owner: name must be ...``."""
    kind = "an integer" if integer else "a number"
    if low is not None and high is not None:
        want = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
    elif low is not None:
        want = f"{'>' if low_open else '>='} {low:g}"
    else:
        want = "finite"
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
        raise SpecError(owner, name, f"must be {kind} {want}, got {v!r}")
    if not math.isfinite(v):
        raise SpecError(owner, name, f"must be a finite number{'' if want == 'finite' else ' ' + want}, got {v!r}")
    if (low is not None and (v <= low if low_open else v < low)) or (high is not None and v > high):
        raise SpecError(owner, name, f"must be {want}, got {v!r}")


def plugin_ref(ref: str, base: str = "") -> str:
    """A plugin as a suite or ``--plugin`` names it -> what a run carries: a path (it ends in ``.py`` or holds a ``/``:
    a Python file, or a folder that is a package) made absolute against ``base`` (default: the working directory),
    so that a Ray worker or another shard finds it; or a module name, as it is. Anything else is refused."""
    if not isinstance(ref, str) or not ref.strip():
        raise SpecError("run", "plugins", f"must be paths to .py files or module names, got {ref!r}")
    ref = ref.strip()
    if ref.endswith(".py") or "/" in ref or os.sep in ref:
        return os.path.abspath(os.path.join(base, os.path.expanduser(ref)))
    if not all(part.isidentifier() for part in ref.split(".")):
        raise SpecError("run", "plugins", f"{ref!r} is neither a path (a .py file, or a folder written with a /) nor a module name")
    return ref


def parse_device(name: str) -> str:
    """``auto | cpu | cuda | cuda:N`` -> the same string; anything else is refused (the one device parser)."""
    if not isinstance(name, str) or not _DEVICE.match(name):
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    return name


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # budget: at most this many passes over the training split
    batch_size: int = 128  # the book's batch size
    lr: float = 1e-3  # Adam, as the book
    clip: float = 5.0  # global gradient-norm clip, as the book (max_grad=5.0)
    target: float | None = 0.99  # stop once validation exact match reaches this (None: run all epochs)
    time_budget_s: float | None = None  # stop after the epoch during which this much training time passed
    eval_batch_size: int = 512  # batched greedy decoding; the book decodes one example at a time
    amp: str = "off"  # off | bf16 | fp16
    capture: str = "eager"  # eager | compile | cudagraph | compile-cudagraph: launch overhead as a dimension of the run
    # The recipe beyond plain Adam at one rate (docs/tuning.md). Each default is today's recipe, and a field at its
    # default is left out of the stored config (RECIPE_DEFAULTS), so runs stored before these fields keep their keys.
    schedule: str = "constant"  # constant | inverse-sqrt | cosine: how the lr moves from step to step (bench.train.schedule)
    lr_warmup: int = 0  # steps of linear warm-up to lr (Vaswani et al. 2017 §5.3: 4,000); 0: none
    label_smoothing: float = 0.0  # weight on the uniform target distribution (Szegedy et al. 2016; Vaswani et al.: 0.1)
    weight_decay: float = 0.0  # decoupled weight decay (AdamW, Loshchilov & Hutter 2019); 0: plain Adam, as the book

    def __post_init__(self) -> None:
        w = "training"
        if self.schedule not in SCHEDULES:
            raise SpecError(w, "schedule", f"must be {', '.join(SCHEDULES)}, got {self.schedule!r}")
        _number(w, "lr_warmup", self.lr_warmup, low=0, low_open=False, integer=True)
        _number(w, "label_smoothing", self.label_smoothing, low=0, low_open=False, high=1)
        if self.label_smoothing == 1:  # every target the uniform distribution: nothing left to learn
            raise SpecError(w, "label_smoothing", f"must be in [0, 1), got {self.label_smoothing!r}")
        _number(w, "weight_decay", self.weight_decay, low=0, low_open=False)
        if self.capture not in CAPTURE:
            raise SpecError(w, "capture", f"must be {', '.join(CAPTURE)}, got {self.capture!r}")
        if self.graph and self.amp == "fp16":
            raise SpecError(w, "capture", f"{self.capture} cannot capture fp16's dynamic loss scaling; use amp bf16 or off")
        _number(w, "epochs", self.epochs, low=1, low_open=False, integer=True)
        _number(w, "batch_size", self.batch_size, low=1, low_open=False, integer=True)
        _number(w, "eval_batch_size", self.eval_batch_size, low=1, low_open=False, integer=True)
        _number(w, "lr", self.lr, low=0)
        _number(w, "clip", self.clip, low=0)
        if self.target is not None:
            _number(w, "target", self.target, low=0, high=1)
        if self.time_budget_s is not None:
            _number(w, "time_budget_s", self.time_budget_s, low=0)
        if self.amp not in AMP:
            raise SpecError(w, "amp", f"must be {', '.join(AMP)}, got {self.amp!r}")

    @property
    def graph(self) -> bool:
        """Whether the step is captured as CUDA graphs (needs CUDA; no fp16, no data-parallel steps)."""
        return self.capture in GRAPH_CAPTURES

    @property
    def scheduled(self) -> bool:
        """Whether the learning rate changes during training (a schedule other than constant, or a warm-up)."""
        return self.schedule != "constant" or self.lr_warmup > 0


# The recipe fields added after the store's first schema, at their defaults: left out of ``RunSpec.config()``.
RECIPE_DEFAULTS: dict[str, Any] = {"schedule": "constant", "lr_warmup": 0, "label_smoothing": 0.0, "weight_decay": 0.0}


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
    # Parallel-corpus files (bench.data.tasks.parallel): task_file is a tab-separated file, or with target_file the
    # source side of two line-aligned files. valid_file/test_file: a standard split, used as it is (else held out
    # of task_file by distinct source).
    target_file: str | None = None
    valid_file: str | None = None
    test_file: str | None = None
    # Tokens per side (bench.data.tokens): char | space | sentencepiece. None: the data's own (characters; the
    # g2p task's phones are separated by spaces).
    source_tokens: str | None = None
    target_tokens: str | None = None
    sentencepiece_type: str = "unigram"  # unigram | bpe: the SentencePiece model trained on the training split
    sentencepiece_vocab: int = 1000  # pieces per side's SentencePiece model: fixed, so a model is a function of its text
    target_unit: str | None = None  # what a target token is: names the error rate (CER/PER/WER) and asks for BLEU/chrF
    keep_stress: bool = False  # g2p: keep CMUdict's stress digits (AH0, AH1); the papers remove them

    def __post_init__(self) -> None:
        w = "data"
        if (self.keep_source_padding or self.fixed_length_target) and not self.task_file:
            raise SpecError(w, "keep_source_padding" if self.keep_source_padding else "fixed_length_target",
                            "applies to book-format files (task_files) only")
        for k in ("target_file", "valid_file", "test_file"):
            if getattr(self, k) is not None and not self.task_file:
                raise SpecError(w, k, "goes with a parallel-corpus file (task_files), not a generated task")
        for k in ("source_tokens", "target_tokens"):
            v = getattr(self, k)
            if v is not None and v not in TOKENS:
                raise SpecError(w, k, f"must be {', '.join(TOKENS)}, got {v!r}")
        if self.sentencepiece_type not in SENTENCEPIECE_TYPES:
            raise SpecError(w, "sentencepiece_type", f"must be {' or '.join(SENTENCEPIECE_TYPES)}, got {self.sentencepiece_type!r}")
        _number(w, "sentencepiece_vocab", self.sentencepiece_vocab, low=1, low_open=False, integer=True)
        if "sentencepiece" not in (self.source_tokens, self.target_tokens):
            for k in ("sentencepiece_type", "sentencepiece_vocab"):
                if getattr(self, k) != getattr(DataSpec, k):
                    raise SpecError(w, k, "goes with source_tokens or target_tokens sentencepiece")
        if self.target_unit is not None and self.target_unit not in UNITS:
            raise SpecError(w, "target_unit", f"must be {', '.join(UNITS)}, got {self.target_unit!r}")
        if self.keep_stress and (self.task != "g2p" or self.task_file):
            raise SpecError(w, "keep_stress", "applies to task g2p only (CMUdict's stress digits)")
        for k in ("train", "valid", "test"):
            _number(w, k, getattr(self, k), low=1, low_open=False, integer=True)
        _number(w, "seed", self.seed, low=0, low_open=False, integer=True)
        if self.train_size is not None:
            _number(w, "train_size", self.train_size, low=1, low_open=False, integer=True)
        for k in ("train_lengths", "test_lengths"):
            v = getattr(self, k)
            if v is not None and not (len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
                                      and 1 <= v[0] <= v[1] <= MAX_LENGTH):
                raise SpecError(w, k, f"must be [low, high] with 1 <= low <= high <= {MAX_LENGTH:,}, got {list(v)!r}")

    @property
    def name(self) -> str:
        return os.path.splitext(os.path.basename(self.task_file))[0] if self.task_file else self.task


# DataSpec fields added after the store's first schema: in a run's config only when not at their default.
_LATER_DATA_FIELDS = ("keep_source_padding", "fixed_length_target", "target_file", "valid_file", "test_file", "source_tokens",
                      "target_tokens", "sentencepiece_type", "sentencepiece_vocab", "target_unit", "keep_stress")


@dataclass(frozen=True)
class MeasureSpec:
    decode_batch: int = 256  # the "large batch" of the decode-latency figure
    decode_repeats: int = 5  # median over repeats, after one warm-up call
    samples: int = 4  # attention maps of the first test inputs kept for the report

    def __post_init__(self) -> None:
        _number("measure", "decode_batch", self.decode_batch, low=1, low_open=False, integer=True)
        _number("measure", "decode_repeats", self.decode_repeats, low=1, low_open=False, integer=True)
        _number("measure", "samples", self.samples, low=0, low_open=False, integer=True)


@dataclass(frozen=True)
class ThroughputSpec:
    """A throughput run instead of a time-to-quality run: ``steps`` timed training steps on fixed-shape batches
    after ``warmup`` untimed ones, no evaluation (docs/design.md, "On a GPU: measure the architecture, not the
    launches"). ``steps = 0`` (the default) is a time-to-quality run: train to the target with evaluation, as
    MLPerf times it."""

    steps: int = 0  # timed training steps; 0: not a throughput run
    warmup: int = 10  # untimed steps first: allocator growth, autotuning, compilation, graph capture
    batches: int = 4  # distinct fixed-shape batches cycled through (device-resident before the clock)
    budget_s: float | None = None  # a run whose timed steps would take longer (judged after warm-up) fails "over budget"

    def __post_init__(self) -> None:
        _number("throughput", "steps", self.steps, low=0, low_open=False, integer=True)
        if self.budget_s is not None:
            _number("throughput", "budget_s", self.budget_s, low=0)
        _number("throughput", "warmup", self.warmup, low=1, low_open=False, integer=True)
        _number("throughput", "batches", self.batches, low=1, low_open=False, integer=True)

    @property
    def enabled(self) -> bool:
        return self.steps > 0


@dataclass(frozen=True)
class RunSpec:
    model: str
    size: str
    seed: int
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainConfig = field(default_factory=TrainConfig)
    model_options: tuple[tuple[str, Any], ...] = ()  # e.g. (("bidirectional", True),)
    measure: MeasureSpec = field(default_factory=MeasureSpec)
    throughput: ThroughputSpec = field(default_factory=ThroughputSpec)
    origin: str = field(default="", compare=False)  # where it was written (suite file and block), for messages; not config
    # The plugins (``--plugin`` files or modules, see ``plugin_ref``) the run's model or task come from: loaded by whoever
    # executes the run -- a Ray worker, a torchrun rank -- before it builds them. Where the code came from, not what
    # runs: stored in the config, left out of its hash (the model's name is in the key).
    plugins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _number("run", "seed", self.seed, low=0, low_open=False, integer=True)
        for k, v in self.model_options:
            if isinstance(v, float) and not math.isfinite(v):  # the key is the one the user wrote (--option, model_options)
                raise SpecError("run", "model_options", f"{k} must be a finite number, got {v!r}")
        for p in self.plugins:
            if plugin_ref(p) != p:
                raise SpecError("run", "plugins", f"must be absolute paths or module names (bench.spec.run.plugin_ref), got {p!r}")

    @property
    def mode(self) -> str:
        """``quality`` (time to quality, evaluated) or ``throughput`` (timed steps on fixed shapes)."""
        return "throughput" if self.throughput.enabled else "quality"

    def config(self) -> dict[str, Any]:
        """The canonical config: stored with the run, hashed into its key.

        Fields added after the store's first schema (the capture mode, the throughput section, the book
        format's padding options, the parallel-corpus files and token options, the plugins, the recipe: schedule,
        warm-up, label smoothing, weight decay) appear only
        when they differ from their default, so the runs of earlier stores keep their keys (``--resume``
        and baselines still match them).
        """
        d = asdict(self)
        del d["origin"]
        if self.plugins:
            d["plugins"] = list(self.plugins)
        else:
            del d["plugins"]
        d["model_options"] = dict(self.model_options)
        if not self.throughput.enabled:
            del d["throughput"]
        for k in _LATER_DATA_FIELDS:  # absent at their default: the runs stored before they existed keep their keys
            if d["data"][k] == getattr(DataSpec, k):
                del d["data"][k]
        if self.train.capture == "eager":
            del d["train"]["capture"]
        for k, default in RECIPE_DEFAULTS.items():
            if d["train"][k] == default:
                del d["train"][k]
        return d

    def config_hash(self) -> str:
        """The config's hash, less the seed (a run's key names it apart) and the plugins (where a model's code came
        from, as for a built-in model its commit: the same run from a plugin found at another path pairs with it)."""
        c = self.config()
        c.pop("seed")
        c.pop("plugins", None)
        return hashlib.sha256(json.dumps(c, sort_keys=True).encode()).hexdigest()[:12]

    def key(self) -> str:
        return f"{self.data.name}/{self.model}/{self.size}/{self.seed}/{self.config_hash()}"

    def label(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.model_options)
        d = self.data
        fixed = f" L={d.train_lengths[0]}" if d.train_lengths and d.train_lengths[0] == d.train_lengths[1] else ""
        t = self.train
        recipe = (f"lr={t.lr:.3g}" if t.scheduled or t.label_smoothing or t.weight_decay else "",
                  t.schedule if t.schedule != "constant" else "", f"warmup={t.lr_warmup}" if t.lr_warmup else "",
                  f"ls={t.label_smoothing:.3g}" if t.label_smoothing else "", f"wd={t.weight_decay:.3g}" if t.weight_decay else "")
        how = fixed + "".join(f" {x}" for x in (t.amp if t.amp != "off" else "", t.capture if t.capture != "eager" else "",
                                          f"{self.throughput.steps} steps" if self.throughput.enabled else "", *recipe) if x)
        return f"{self.data.name} {self.model}{'(' + opts + ')' if opts else ''} {self.size}{how} seed={self.seed}"


@dataclass(frozen=True)
class SessionConfig:
    """How (not what) a session runs; recorded with the session."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # CPU intra-op threads (torch.set_num_threads); None: torch's default
    deterministic: bool = False
    peak_flops: float | None = None  # a FLOP/s figure for MFU given by hand (every precision); else measured
    peaks: tuple[tuple[str, float], ...] = ()  # measured at session start: (precision, matmul FLOP/s)

    def peak(self, amp: str) -> float | None:
        """MFU's denominator for a run in precision ``amp``: the given figure, else the measured one."""
        return self.peak_flops or dict(self.peaks).get(amp)

    def __post_init__(self) -> None:
        parse_device(self.device)
        if self.threads is not None:
            _number("session", "threads", self.threads, low=1, low_open=False, integer=True)
        if self.peak_flops is not None:
            _number("session", "peak_flops", self.peak_flops, low=0)
