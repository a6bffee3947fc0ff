"""The task family's shared parts: examples, options, splits, and the registry the task modules fill."""


from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from bench.errors import UserError

Span = tuple[int, int]


@dataclass(frozen=True)
class Example:
    src: str
    tgt: str
    align: tuple[Span | None, ...] | None = None  # one entry per target character, or None: no alignment

    def __post_init__(self) -> None:
        if self.align is not None and len(self.align) != len(self.tgt):
            raise ValueError(f"alignment has {len(self.align)} entries for a {len(self.tgt)}-character target")


@dataclass(frozen=True)
class TaskOptions:
    """What to generate. The data seed is separate from the model seed (DESIGN: seeds)."""

    seed: int = 0  # data seed: same seed, same examples, on every machine
    train: int = 20_000  # examples per split (generators); capped by --train-size for files
    valid: int = 1_000
    test: int = 2_000
    # Length split (algorithmic tasks): train/valid on lengths in train_lengths, test also on test_lengths.
    train_lengths: tuple[int, int] | None = None
    test_lengths: tuple[int, int] | None = None
    extra: dict[str, object] = field(default_factory=dict)  # task-specific knobs, e.g. alphabet


@dataclass(frozen=True)
class TaskData:
    name: str
    train: list[Example]
    valid: list[Example]
    test: list[Example]
    source: str  # "generator:<name>" or "file:<basename>"
    valid_is_test: bool = False  # book files: the book scores its held-out 10 % each epoch

    def texts(self) -> Iterator[str]:
        for split in (self.train, self.valid, self.test):
            for ex in split:
                yield ex.src
                yield ex.tgt


@dataclass(frozen=True)
class TaskEntry:
    name: str
    make: Callable[[TaskOptions], TaskData]
    summary: str
    aligned: bool  # does the task define alignments?
    # Does the task draw its sources at the lengths TaskOptions asks for (train_lengths, test_lengths: a length
    # split, a --length sweep point)? A task that does not (date, addition) would ignore them, and a run would be
    # stored as a sweep point it never was; the runner refuses lengths for it before anything runs.
    lengths: bool = False


_REGISTRY: dict[str, TaskEntry] = {}


def register(name: str, summary: str, aligned: bool, lengths: bool = False) -> Callable:
    def deco(fn: Callable[[TaskOptions], TaskData]) -> Callable[[TaskOptions], TaskData]:
        _REGISTRY[name] = TaskEntry(name, fn, summary, aligned, lengths=lengths)
        return fn

    return deco


def split_overlap(data: TaskData) -> dict[str, int]:
    """How many test questions (sources) also appear in the training split, as trained on.

    Generated tasks are disjoint by construction (``unique_split``): 0. A file's split need not be: the book's
    own split of its date.txt holds 1,371 of its 4,907 distinct test questions in training as well, so exact
    match on that test set is partly memory. -> distinct test questions, those also in training, and the
    test examples (duplicates counted) whose question is in training.
    """
    train = {ex.src for ex in data.train}
    test = {ex.src for ex in data.test}
    return {"test_questions": len(test), "test_questions_in_train": len(test & train),
            "test_examples_in_train": sum(ex.src in train for ex in data.test)}


def unique_split(name: str, gen: Callable[[random.Random], Example], opts: TaskOptions, max_tries: int = 50) -> TaskData:
    """Draw examples from ``gen`` with a seeded RNG until the three splits are full of *distinct* sources.

    Disjointness is by source string, so no test question was seen in training.
    """
    rng = random.Random(opts.seed)
    want = opts.train + opts.valid + opts.test
    seen: set[str] = set()
    out: list[Example] = []
    tries = 0
    while len(out) < want:
        ex = gen(rng)
        if ex.src in seen:
            tries += 1
            if tries > max_tries * want:
                raise UserError(f"task {name}: only {len(out)} distinct examples exist, {want} were asked for")
            continue
        seen.add(ex.src)
        out.append(ex)
    a, b = opts.train, opts.train + opts.valid
    return TaskData(name, out[:a], out[a:b], out[b:], source=f"generator:{name}")
