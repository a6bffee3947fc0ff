"""Published grapheme-to-phoneme results on the standard CMUdict split: the table a report holds s2sbench's g2p rows
against, as ``bench.results.bookfigures`` holds the book's.

The standard split (``g014b2b``: CMUdict 0.7a as distributed with Sequitur and Phonetisaurus; 106,837 training
and 12,000 test words, no stress) and the papers' scoring: for each test word the closest reference
pronunciation; WER is the share of words whose closest distance is not zero, PER the total edits over the total
length of the chosen references (``bench.train.scores``). Figures as later papers and G2P repositories quote
them (phoneme / word error rate, %); they are facts from the papers, not data of this project.

Two kinds of s2sbench rows stand beside them: runs on the standard split itself (the ``g2p-standard`` suite,
its files given by the user), comparable like for like; and runs of task ``g2p``, on the ``cmudict`` package's
later edition (126,052 words, some pronunciations changed) split in the same proportions -- a range to hold
against the table, not a like-for-like comparison.

No torch here: a report can read this table on a machine without it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedG2P:
    system: str  # as the paper names it
    per: float  # phoneme error rate, %
    wer: float  # word error rate, %
    paper: str  # authors and year
    model: str | None = None  # s2sbench's model of the same family, where there is one


FIGURES: tuple[PublishedG2P, ...] = (
    PublishedG2P("Sequitur joint-sequence model", 5.88, 24.53, "Bisani & Ney 2008"),
    PublishedG2P("encoder-decoder LSTM", 7.63, 28.61, "Yao & Zweig 2015", "seq2seq"),
    PublishedG2P("bidirectional LSTM, 3 layers, with alignments", 5.45, 23.55, "Yao & Zweig 2015"),
    PublishedG2P("LSTM with global attention", 5.04, 21.69, "Toshniwal & Livescu 2016", "attention"),
    PublishedG2P("Transformer 4x4", 5.23, 22.1, "Yolchuyeva et al. 2019", "transformer"),
    PublishedG2P("Transformer + ensemble distillation", 4.6, 19.88, "Sun et al. 2019"),
)

# What the s2sbench rows ran on: the task ``g2p`` (the package's edition), or a file of the standard split.
PACKAGE_TASK = "g2p"
STANDARD_FILE = "g014b2b"  # the standard split's files: g014b2b.train, g014b2b.test


def edition(task: str, data_source: object) -> str | None:
    """``standard`` for runs on the standard split's files, ``package`` for task g2p, None for anything else (a run
    that recorded no data source included: a frame's missing value)."""
    src = data_source if isinstance(data_source, str) else ""
    if task == PACKAGE_TASK and src.startswith("package:"):
        return "package"
    if src.startswith(f"file:{STANDARD_FILE}"):
        return "standard"
    return None
