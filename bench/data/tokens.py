"""How a side's text is cut into tokens: characters, whitespace-separated tokens, or SentencePiece subwords.

* ``char`` -- every character is a token (the book's data, dates, digits: what s2sbench always did);
* ``space`` -- tokens are separated by whitespace: CMUdict's phones (``AH B AE D IY``), or words of text
  already tokenised as OpenNMT-py and fairseq read it;
* ``sentencepiece`` -- subwords of a SentencePiece model (Kudo & Richardson 2018; unigram language model,
  Kudo 2018, or BPE, Sennrich et al. 2016) trained on the *training split's* text of that side only, with a
  fixed seed, one thread and a fixed vocabulary size, so the same training text always gives the same model.

A model is trained once per training text (``SubwordMemo``: keyed by the hash of the text and the settings),
however many runs of a session use it. Training options are fixed here, not exposed: every character of the
training text is kept (``character_coverage`` 1.0: a character unseen there is ``<unk>`` anyway) and the text
is not normalised (``identity``), so pieces joined again give the text back.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from bench.errors import UserError

TOKENS = ("char", "space", "sentencepiece")
SENTENCEPIECE_TYPES = ("unigram", "bpe")
UNITS = ("char", "phone", "word", "subword")  # what one target token is: names the token error rate (CER, PER, WER, TER)
_UNIT_OF = {"char": "char", "space": "word", "sentencepiece": "subword"}
WORD_BOUNDARY = "\u2581"  # SentencePiece's "▁": a piece that starts a word
TEXT_EXTRA = "pip install 's2sbench[text]'"


class OptionError(UserError):
    """A data option the data refuses (a vocabulary the training text cannot fill): ``key`` names the option, so the
    runner can name it as the user wrote it (the flag, or the suite file and key)."""

    def __init__(self, key: str, rule: str) -> None:
        super().__init__(f"data: {key} {rule}")
        self.key, self.rule = key, rule


def unit_of(tokens: str) -> str:
    """The unit a side's tokens are when nothing more is known: characters, words, subwords."""
    return _UNIT_OF[tokens]


@dataclass(frozen=True)
class Tokenizer:
    """One side's tokenisation. ``model``: the serialised SentencePiece model (``sentencepiece`` only)."""

    kind: str  # char | space | sentencepiece
    model: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in TOKENS:
            raise ValueError(f"unknown tokens {self.kind!r}")
        if (self.kind == "sentencepiece") != (self.model is not None):
            raise ValueError("a sentencepiece tokenizer needs its model, and only it")

    @cached_property
    def _processor(self) -> Any:
        import sentencepiece as spm

        return spm.SentencePieceProcessor(model_proto=self.model)

    def __getstate__(self) -> dict[str, Any]:  # the processor is rebuilt where it is needed, not pickled
        return {k: v for k, v in self.__dict__.items() if k != "_processor"}

    def split(self, text: str) -> list[str]:
        if self.kind == "char":
            return list(text)
        if self.kind == "space":
            return text.split()
        return list(self._processor.encode(text, out_type=str))

    def join(self, tokens: Sequence[str]) -> str:
        """Tokens as people read them in an export: characters run together, other tokens separated by spaces."""
        return "".join(tokens) if self.kind == "char" else " ".join(tokens)

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Tokens back to text (what BLEU and chrF score): subwords joined at SentencePiece's word boundaries."""
        if self.kind == "sentencepiece":
            return "".join(tokens).replace(WORD_BOUNDARY, " ").strip()
        return self.join(tokens)


CHAR = Tokenizer("char")


@dataclass(frozen=True)
class SubwordSettings:
    kind: str = "unigram"  # unigram | bpe
    vocab_size: int = 1000  # pieces of each side's model (SentencePiece's vocab_size, its <unk> included)
    seed: int = 0  # SentencePiece's random generator seed (the data seed)


class SubwordMemo:
    """Trained SentencePiece models by the hash of their training text and settings: trained once per session."""

    def __init__(self) -> None:
        self._models: dict[str, bytes] = {}

    def model(self, texts: Sequence[str], settings: SubwordSettings, side: str) -> bytes:
        h = hashlib.sha256()
        h.update(f"{settings.kind}\x00{settings.vocab_size}\x00{settings.seed}\x00".encode())
        for t in texts:
            h.update(t.encode("utf-8") + b"\n")
        key = h.hexdigest()
        if key not in self._models:
            self._models[key] = train_sentencepiece(texts, settings, side)
        return self._models[key]

    def __len__(self) -> int:
        return len(self._models)


def train_sentencepiece(texts: Sequence[str], settings: SubwordSettings, side: str) -> bytes:
    """A SentencePiece model trained on ``texts`` -> its serialised proto. Deterministic: fixed seed, one thread."""
    try:
        import sentencepiece as spm
    except ImportError:
        raise UserError(f"tokens 'sentencepiece' need the sentencepiece package: {TEXT_EXTRA}") from None
    spm.set_random_generator_seed(settings.seed)
    out = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=out, vocab_size=settings.vocab_size, model_type=settings.kind,
            character_coverage=1.0, normalization_rule_name="identity", num_threads=1, minloglevel=2, bos_id=-1, eos_id=-1,
        )
    except RuntimeError as e:
        msg = str(e)
        high = re.search(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)", msg)
        if high:
            raise OptionError("sentencepiece_vocab", f"{settings.vocab_size:,} is larger than the {side} side's training text allows "
                                                     f"(at most {int(high.group(2)):,} {settings.kind} pieces)") from None
        low = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", msg)
        if low:
            raise OptionError("sentencepiece_vocab", f"{settings.vocab_size:,} is smaller than the {int(low.group(2)):,} distinct "
                                                     f"characters (and special pieces) of the {side} side's training text") from None
        raise OptionError("sentencepiece_vocab", f"{settings.vocab_size:,}: SentencePiece cannot train on the {side} side's training text "
                                                 f"({msg.splitlines()[0][-200:]})") from None
    return out.getvalue()
