"""Loader for any text file in the book's format: ``question_answer`` on one line, both space-padded.

The source is everything before the first ``_``; the target is what follows it (the ``_`` is the book's
start symbol, replaced here by BOS). Trailing padding spaces are stripped: masks, not padding characters,
decide what the model sees. The split is the book's own (numpy seed 1984 shuffle, last 10 % held out as
test) so results compare with the book's; the book scores that held-out set after every epoch, and so do
we (``valid_is_test``), keeping the training set identical to the book's.

The book's split is not disjoint: a file may hold a question more than once, and the shuffle puts some
copies on each side (1,371 of the 4,907 distinct test questions of its date.txt are in training too). Each
run stores the overlap of the split it used (``split_overlap``) and the report shows it beside the task.
"""

from __future__ import annotations

import os

import numpy as np

from bench.data.tasks.base import Example, TaskData
from bench.errors import UserError

BOOK_SEED = 1984
# The longest question or answer a data file may hold. The book's lines are under 30 characters; a line of
# thousands is a file of another format (or one without line breaks), and a padded batch of it asks for tens
# of gigabytes: refused with its line number before anything runs.
MAX_CHARS = 1_000


def parse_lines(lines: list[str], path: str) -> list[Example]:
    out = []
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip("\n").rstrip("\r")
        if not line.strip():
            raise UserError(f"{path}:{n}: empty line (expected 'question_answer')")
        i = line.find("_")
        if i < 0:
            raise UserError(f"{path}:{n}: no '_' separating question and answer")
        src, tgt = line[:i].rstrip(" "), line[i + 1 :].rstrip(" ")
        if not src or not tgt:
            raise UserError(f"{path}:{n}: empty {'question' if not src else 'answer'}")
        for what, text in (("question", src), ("answer", tgt)):
            if len(text) > MAX_CHARS:
                raise UserError(f"{path}:{n}: a {what} of {len(text):,} characters; at most {MAX_CHARS:,} are taken "
                                "(one 'question_answer' per line, as the book's files)")
        out.append(Example(src, tgt))
    if not out:
        raise UserError(f"{path}: no examples (empty file)")
    return out


def load(path: str, train_size: int | None = None) -> TaskData:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except FileNotFoundError:
        raise UserError(f"{path}: no such data file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read data file ({e})") from None
    examples = parse_lines(lines, path)
    if len(examples) < 10:
        raise UserError(f"{path}: {len(examples)} examples are too few to hold out a test set")
    rs = np.random.RandomState(BOOK_SEED)  # the book: numpy.random.seed(1984); numpy.random.shuffle(indices)
    idx = np.arange(len(examples))
    rs.shuffle(idx)
    shuffled = [examples[i] for i in idx]
    split_at = len(shuffled) - len(shuffled) // 10
    train, test = shuffled[:split_at], shuffled[split_at:]
    if train_size is not None:
        train = train[:train_size]
    name = os.path.splitext(os.path.basename(path))[0]
    return TaskData(name, train, test, test, source=f"file:{os.path.basename(path)}", valid_is_test=True)
