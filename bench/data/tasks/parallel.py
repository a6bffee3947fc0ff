"""Parallel-corpus files, in the two formats OpenNMT-py and fairseq read: a tab-separated file (``source<TAB>target``,
one pair per line) or two line-aligned files (line n of the one is the source of line n of the other).

A source on several lines has several correct answers: the pairs are grouped by source, and a valid or test
example carries every answer of its source as a reference (``Example.others``); training sees each pair.

The split: files given for valid and test (a standard split, e.g. CMUdict's g014b2b) are used as they are.
Otherwise the distinct sources are shuffled with the data seed and cut -- test first (a tenth, as the book's
loader holds out), then valid (``valid`` sources, at most a tenth of what is left) -- so that no source is in
two splits and the same file and seed give the same split on every machine. Training examples follow the
shuffled order, so a cap on them (``train_size``) is a random subset, not the file's first lines.

Bad lines are refused with the file and line: no tab, more than one, an empty side, text that is not UTF-8,
two line-aligned files of different lengths.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass

from bench.data.tasks.base import Example, TaskData
from bench.errors import UserError

# The longest source or target a line may hold (characters), as for the book's format: a line of thousands is a
# file of another format or without line breaks, and a padded batch of it would ask for gigabytes.
MAX_CHARS = 1_000
TEST_SHARE = 0.1  # of the distinct sources, when no test file is given (the book's loader holds out a tenth too)
VALID_SHARE = 0.1  # at most this share of the remaining sources is held out for validation
SNIFF_BYTES = 65_536
FORMATS = ("a tab-separated file (source<TAB>target per line), a pair of line-aligned files (--target-file), "
           "or the book's question_answer lines")


@dataclass(frozen=True)
class Pair:
    src: str
    tgt: str
    line: int  # 1-based line of the file it came from


@dataclass(frozen=True)
class Files:
    """Where a parallel corpus is: the training file (or the source side of a pair), and optionally its target side
    and separate valid and test files. A pair's valid and test files are named by their source side; the target
    side is the same name with the training target's suffix (fairseq's ``prefix.src`` / ``prefix.tgt``)."""

    train: str
    target: str | None = None
    valid: str | None = None
    test: str | None = None


def is_tab_separated(path: str) -> bool:
    """A ``.tsv`` file, or one whose first non-empty line holds a tab (the book's format has none)."""
    if path.lower().endswith(".tsv"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError:
        return False  # the book's loader says why it cannot be read
    for line in head.splitlines():
        if line.strip():
            return b"\t" in line
    return False


def read_lines(path: str) -> list[str]:
    """The file's lines (line ends dropped); a missing, unreadable or non-UTF-8 file is refused with its line."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise UserError(f"{path}: no such data file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: a folder, not a data file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read data file ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}); save the file as UTF-8") from None
    lines = text.removeprefix("\ufeff").split("\n")
    while lines and not lines[-1].strip():  # the final newline, and blank lines after the last example
        lines.pop()
    return [ln.removesuffix("\r") for ln in lines]


def _check(path: str, n: int, side: str, text: str) -> str:
    text = text.strip()
    if not text:
        raise UserError(f"{path}:{n}: empty {side}")
    if len(text) > MAX_CHARS:
        raise UserError(f"{path}:{n}: a {side} of {len(text):,} characters; at most {MAX_CHARS:,} are taken")
    return text


def parse_tsv(lines: Sequence[str], path: str) -> list[Pair]:
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            raise UserError(f"{path}:{n}: empty line (expected source<TAB>target)")
        if "\t" not in line:
            raise UserError(f"{path}:{n}: no tab between source and target (expected source<TAB>target)")
        src, tgt = line.split("\t", 1)
        if "\t" in tgt:
            raise UserError(f"{path}:{n}: more than one tab (expected source<TAB>target, one tab per line)")
        out.append(Pair(_check(path, n, "source", src), _check(path, n, "target", tgt), n))
    if not out:
        raise UserError(f"{path}: no examples (empty file)")
    return out


def parse_pair(src_lines: Sequence[str], tgt_lines: Sequence[str], src_path: str, tgt_path: str) -> list[Pair]:
    if len(src_lines) != len(tgt_lines):
        raise UserError(f"{src_path} has {len(src_lines):,} lines and {tgt_path} has {len(tgt_lines):,}: "
                        "line-aligned files need one line per example in each")
    if not src_lines:
        raise UserError(f"{src_path}: no examples (empty file)")
    return [Pair(_check(src_path, n, "source", s), _check(tgt_path, n, "target", t), n)
            for n, (s, t) in enumerate(zip(src_lines, tgt_lines), 1)]


def target_of(source_path: str, files: Files) -> str:
    """The target side of a pair's valid or test file: its source name with the training target's suffix."""
    assert files.target is not None
    src_stem, src_ext = os.path.splitext(files.train)
    tgt_stem, tgt_ext = os.path.splitext(files.target)
    stem, ext = os.path.splitext(source_path)
    if src_stem != tgt_stem or ext != src_ext or not tgt_ext:
        raise UserError(f"{source_path}: with a pair of files, valid and test files are named like the training pair "
                        f"(PREFIX{src_ext or '.src'} and PREFIX{tgt_ext or '.tgt'}, e.g. {files.train} and {files.target}), "
                        "and are given by their source side")
    return stem + tgt_ext


def read_pairs(path: str, files: Files) -> list[Pair]:
    if files.target is None:
        return parse_tsv(read_lines(path), path)
    tgt = files.target if path == files.train else target_of(path, files)
    return parse_pair(read_lines(path), read_lines(tgt), path, tgt)


def group(pairs: Sequence[Pair]) -> dict[str, list[str]]:
    """Source -> its distinct targets, in the order they first appear."""
    out: dict[str, list[str]] = {}
    for p in pairs:
        refs = out.setdefault(p.src, [])
        if p.tgt not in refs:
            refs.append(p.tgt)
    return out


def scored(groups: dict[str, list[str]], sources: Sequence[str]) -> list[Example]:
    """One example per source, every answer a reference."""
    return [Example(s, groups[s][0], others=tuple(groups[s][1:])) for s in sources]


def trained(groups: dict[str, list[str]], sources: Sequence[str]) -> list[Example]:
    """One example per (source, answer) pair."""
    return [Example(s, t) for s in sources for t in groups[s]]


def held_out(n: int, share: float, at_most: int | None = None) -> int:
    k = max(1, round(n * share))
    return min(k, at_most) if at_most is not None else k


def load(files: Files, seed: int = 0, valid: int = 1_000, train_size: int | None = None) -> TaskData:
    """The corpus at ``files`` as train/valid/test examples (see the module's docstring for the split)."""
    groups = group(read_pairs(files.train, files))
    sources = list(groups)
    rng = random.Random(seed)
    rng.shuffle(sources)
    needs = (files.test is None) + (files.valid is None)
    if len(sources) < needs + 1:
        raise UserError(f"{files.train}: {len(sources)} distinct source(s) are too few to hold out "
                        f"{'a test and a valid set' if needs == 2 else 'a test set' if files.test is None else 'a valid set'}")
    if files.test is None:
        k = held_out(len(sources), TEST_SHARE, len(sources) - needs)
        test = scored(groups, sources[:k])
        sources = sources[k:]
    else:
        tg = group(read_pairs(files.test, files))
        test = scored(tg, list(tg))
    if files.valid is None:
        k = held_out(len(sources), VALID_SHARE, min(valid, len(sources) - 1))
        dev = scored(groups, sources[:k])
        sources = sources[k:]
    else:
        vg = group(read_pairs(files.valid, files))
        dev = scored(vg, list(vg))
    train = trained(groups, sources)
    if train_size is not None:
        train = train[:train_size]
    name = os.path.splitext(os.path.basename(files.train))[0]
    return TaskData(name, train, dev, test, source=f"file:{os.path.basename(files.train)}", open_vocabulary=True)
