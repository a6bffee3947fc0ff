"""The task family's shared parts: examples, options, splits, and the registry the task modules fill.

A task from outside s2sbench (an installed package's entry point, a ``--plugin`` file) registers through the
same ``register``; while its code is imported, ``loading(plugin, version)`` says where it comes from. A name is
registered once, and a plugin that fails leaves nothing registered.
"""


from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bench.errors import UserError

Span = tuple[int, int]


@dataclass(frozen=True)
class Example:
    src: str
    tgt: str  # the target trained on, and the first reference scored against
    align: tuple[Span | None, ...] | None = None  # one entry per target character, or None: no alignment
    # Further correct answers for the same source (a word's other pronunciations, another translation): a
    # hypothesis equal to any reference is right, and error rates are counted against the closest one.
    others: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.align is not None and len(self.align) != len(self.tgt):
            raise ValueError(f"alignment has {len(self.align)} entries for a {len(self.tgt)}-character target")

    @property
    def references(self) -> tuple[str, ...]:
        return (self.tgt, *self.others)


@dataclass(frozen=True)
class TaskOptions:
    """What to generate. The data seed is separate from the model seed (docs/design.md, "Seeds")."""

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
    # How the data's texts are cut into tokens unless the run says otherwise (bench.data.tokens): characters for
    # the generators and the book's files; CMUdict's phones are separated by spaces.
    source_tokens: str = "char"
    target_tokens: str = "char"
    target_unit: str | None = None  # what one target token is (char, phone, word, subword); None: what target_tokens implies
    # Real data: the vocabulary comes from the training split alone and a token first seen in valid or test is
    # <unk>. Generated tasks and the book's files have a closed alphabet and keep their vocabulary of every
    # split, so that their token ids (and every stored result) stay what they were.
    open_vocabulary: bool = False

    def texts(self) -> Iterator[str]:
        for split in (self.train, self.valid, self.test):
            for ex in split:
                yield ex.src
                yield ex.tgt
                yield from ex.others


@dataclass(frozen=True)
class TaskEntry:
    name: str
    make: Callable[[TaskOptions], TaskData]
    summary: str
    aligned: bool  # does the task define alignments?
    plugin: str = ""  # where a task from outside s2sbench came from (distribution, or --plugin file); "" for the built-ins
    plugin_version: str = ""
    # A generator draws as many examples as TaskOptions asks for; a dataset (g2p) has the examples it has, split
    # in its own proportions (only ``valid`` and the seed apply).
    generated: bool = True
    # Does the task draw its sources at the lengths TaskOptions asks for (train_lengths, test_lengths: a length
    # split, a --length sweep point)? A task that does not (date, addition, g2p) would ignore them, and a run would
    # be stored as a sweep point it never was; the runner refuses lengths for it before anything runs.
    lengths: bool = False

    def describe(self) -> str:
        """Whose the name is, as a message says it: ``the built-in task date`` or ``task rot13 of plugin x 1.0``."""
        if not self.plugin:
            return f"the built-in task {self.name}"
        return f"task {self.name} of plugin {self.plugin}" + (f" {self.plugin_version}" if self.plugin_version else "")

    def record(self) -> dict[str, str]:
        """Stored with each run of a plugin's task: which plugin, which version ({} for the built-ins)."""
        return {"plugin": self.plugin, "plugin_version": self.plugin_version} if self.plugin else {}


_REGISTRY: dict[str, TaskEntry] = {}
_LOADING: list[tuple[str, str]] = []  # the plugin whose code is being imported, innermost last: (name, version)
_PLUGINS: dict[str, object] = {}  # entry-point group -> "loading", "loaded", or the UserError it failed with (tasks._load)


@contextmanager
def loading(plugin: str, version: str) -> Iterator[None]:
    """While a plugin's code is imported: what it registers records ``plugin`` and ``version``; if the import fails,
    what it registered so far is taken out again."""
    before = dict(_REGISTRY)
    _LOADING.append((plugin, version))
    try:
        yield
    except BaseException:
        _REGISTRY.clear()
        _REGISTRY.update(before)
        raise
    finally:
        _LOADING.pop()


def register(name: str, summary: str, aligned: bool, generated: bool = True, lengths: bool = False) -> Callable:
    """Decorate a task's ``make(TaskOptions) -> TaskData`` to register it as ``name``. A name taken already (by a
    built-in task or another plugin's) is refused with one line. ``generated``: False for a dataset with sizes of its
    own (g2p). ``lengths``: the task draws its sources at the lengths asked for (``TaskEntry.lengths``)."""

    def deco(fn: Callable[[TaskOptions], TaskData]) -> Callable[[TaskOptions], TaskData]:
        if name in _REGISTRY:
            raise UserError(f"task name {name!r} is taken by {_REGISTRY[name].describe()}")
        plugin, version = _LOADING[-1] if _LOADING else ("", "")
        _REGISTRY[name] = TaskEntry(name, fn, summary, aligned, plugin, version, generated=generated, lengths=lengths)
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
