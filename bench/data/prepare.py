"""A task's examples -> tokenizers, one vocabulary and padded tensors: what a run trains and is scored on.

Everything here is a pure function of the data and the token options (a SentencePiece model is trained on the
training split's text of its side only, and memoised by that text's hash: ``bench.data.tokens.SubwordMemo``),
so a session does it once per distinct data and before any clock starts (``bench.runner.cache``).

The vocabulary: for real data (``TaskData.open_vocabulary``) and for any side cut into words or subwords, the
tokens of the training split alone -- a token first seen in valid or test becomes ``<unk>`` and is counted.
The generated tasks and the book's files keep the vocabulary of all their splits, as s2sbench always built it:
their alphabets are closed (the training split of the quick suite holds every character of its test split, so
the two rules agree there), and their token ids, hence every stored result, stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.data.batching import Encoded, encode_split
from bench.data.tasks import TaskData
from bench.data.tokens import SubwordMemo, SubwordSettings, Tokenizer, unit_of
from bench.data.vocab import Vocab


@dataclass(frozen=True)
class TokenOptions:
    source: str | None = None  # char | space | sentencepiece; None: the data's own (TaskData.source_tokens)
    target: str | None = None
    subwords: SubwordSettings = SubwordSettings()
    unit: str | None = None  # what a target token is; None: the data's own, else what the target tokens imply


@dataclass(frozen=True)
class Tokenised:
    vocab: Vocab
    source: Tokenizer
    target: Tokenizer
    unit: str  # char | phone | word | subword
    train: Encoded
    valid: Encoded
    test: Encoded


def tokenizer(kind: str, texts: list[str], subwords: SubwordSettings, memo: SubwordMemo, side: str) -> Tokenizer:
    if kind != "sentencepiece":
        return Tokenizer(kind)
    return Tokenizer(kind, memo.model(texts, subwords, side))


def prepare(data: TaskData, opts: TokenOptions, memo: SubwordMemo, reverse_source: bool = False, eos: bool = True) -> Tokenised:
    src_kind = opts.source or data.source_tokens
    tgt_kind = opts.target or data.target_tokens
    train_src = [ex.src for ex in data.train]
    train_tgt = [r for ex in data.train for r in ex.references]
    source = tokenizer(src_kind, train_src, opts.subwords, memo, "source")
    target = tokenizer(tgt_kind, train_tgt, opts.subwords, memo, "target")
    if data.open_vocabulary or src_kind != "char" or tgt_kind != "char":
        seen = {t for s in train_src for t in source.split(s)} | {t for s in train_tgt for t in target.split(s)}
        later = (t for split in (data.valid, data.test) for ex in split
                 for t in (*source.split(ex.src), *(x for r in ex.references for x in target.split(r))))
        vocab = Vocab.from_tokens(seen, unk=any(t not in seen for t in later))
    else:
        vocab = Vocab.from_texts(data.texts())  # closed alphabets: every split's characters, ids as they always were
    enc = [encode_split(s, vocab, reverse_source, eos, source, target) for s in (data.train, data.valid, data.test)]
    unit = opts.unit or data.target_unit or unit_of(tgt_kind)
    if opts.target is not None and opts.unit is None and opts.target != data.target_tokens:
        unit = unit_of(tgt_kind)  # the run re-cut the data's targets: the data's own unit no longer names them
    return Tokenised(vocab, source, target, unit, *enc)
