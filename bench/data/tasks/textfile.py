"""Loader for any text file in the book's format: ``question_answer`` on one line, both space-padded.

The source is everything before the first ``_``; the target is what follows it (the ``_`` is the book's
start symbol, replaced here by BOS). Trailing padding spaces are stripped: masks, not padding characters,
decide what the model sees. The split is the book's own (numpy seed 1984 shuffle, last 10 % held out as
test) so results compare with the book's; the book scores that held-out set after every epoch, and so do
we (``valid_is_test``), keeping the training set identical to the book's.

The book's split is not disjoint: a file may hold a question more than once, and the shuffle puts some
copies on each side (1,371 of the 4,907 distinct test questions of its date.txt are in training too). Each
run stores the overlap of the split it used (``split_overlap``) and the report shows it beside the task.

The book itself keeps the padding (``dataset/sequence.py`` turns each fixed-width line into ids as it is),
and two options reproduce that, one per side:

* ``keep_source_padding``: the source keeps its trailing spaces, so every source has the file's width and
  the encoder reads the padding as characters -- after the question, or *before* it once the source is
  reversed (the book reverses the padded line, book §7.4.1).
* ``keep_target_padding``: the answer keeps its trailing spaces, so the decoder must write them; with no
  end token (``bench.data.batching.encode_split(eos=False)``) this is the book's fixed-length decoding:
  ``eval_seq2seq`` generates exactly as many characters as the padded answer has and compares them all.
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


def parse_lines(lines: list[str], path: str, keep_source_padding: bool = False, keep_target_padding: bool = False) -> list[Example]:
    out = []
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip("\n").rstrip("\r")
        if not line.strip():
            raise UserError(f"{path}:{n}: empty line (expected 'question_answer')")
        i = line.find("_")
        if i < 0:
            raise UserError(f"{path}:{n}: no '_' separating question and answer")
        src, tgt = line[:i], line[i + 1 :]
        if not src.strip() or not tgt.strip():
            raise UserError(f"{path}:{n}: empty {'question' if not src.strip() else 'answer'}")
        for what, text in (("question", src.rstrip(" ")), ("answer", tgt.rstrip(" "))):
            if len(text) > MAX_CHARS:
                raise UserError(f"{path}:{n}: a {what} of {len(text):,} characters; at most {MAX_CHARS:,} are taken "
                                "(one 'question_answer' per line, as the book's files)")
        out.append(Example(src if keep_source_padding else src.rstrip(" "), tgt if keep_target_padding else tgt.rstrip(" ")))
    if not out:
        raise UserError(f"{path}: no examples (empty file)")
    return out


def load(path: str, train_size: int | None = None, keep_source_padding: bool = False, keep_target_padding: bool = False) -> TaskData:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except FileNotFoundError:
        raise UserError(f"{path}: no such data file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read data file ({e})") from None
    examples = parse_lines(lines, path, keep_source_padding, keep_target_padding)
    if keep_target_padding and len({len(e.tgt) for e in examples}) > 1:
        raise UserError(f"{path}: answers padded to different widths; keeping their padding needs fixed-width lines")
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
