"""Scores for real outputs: error rates against the closest of several references, BLEU and chrF.

The error rates follow the grapheme-to-phoneme literature's scoring script (Phonetisaurus's
``calculateER.py``, used for the CMUdict results of Yao & Zweig 2015, Toshniwal & Livescu 2016, Yolchuyeva
et al. 2019): for each source, the reference closest to the hypothesis by Levenshtein distance over tokens
(the first such reference on a tie) is the one scored against;

* the **token error rate** is the total of those distances over the total length of the chosen references --
  at corpus level, not a mean of per-source rates (PER for phones, CER for characters, WER for words);
* the **sequence error rate** is the share of sources whose closest distance is not zero (G2P's "word error
  rate": the word's pronunciation is wrong; a sentence error rate for text). It is one minus exact match
  against any reference.

One difference from that script: an empty hypothesis is scored (every reference token deleted), not skipped.
Distances are computed on token ids by rapidfuzz (MIT), which takes sequences of any hashable items.

BLEU (Papineni et al. 2002) and chrF (Popović 2015) are sacrebleu's (Post 2018), on detokenised text with
every reference of a source, and their signatures are stored with the run so the figures can be reproduced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz.distance import Levenshtein

from bench.data.batching import Encoded
from bench.data.vocab import EOS
from bench.errors import UserError

TEXT_UNITS = ("word", "subword")  # targets that are text: BLEU and chrF are reported for them
TEXT_EXTRA = "pip install 's2sbench[text]'"


def hypothesis(pred: Sequence[int], enc: Encoded, row: int) -> list[int]:
    """A decoded row (``bench.train.evaluate``: cut after its EOS) -> the hypothesis tokens, without EOS.

    Without an end token (the book's fixed-length decoding) the hypothesis is the target's width of tokens.
    """
    p = list(pred)
    if not enc.eos:
        return p[: int(enc.tgt_len[row])]
    return p[:-1] if p and p[-1] == EOS else p


def closest(hyp: Sequence[Any], refs: Sequence[Sequence[Any]]) -> tuple[int, int]:
    """-> (edit distance to the closest reference, its index): the first of the closest on a tie."""
    best, at = -1, 0
    for i, r in enumerate(refs):
        d = Levenshtein.distance(hyp, r)
        if best < 0 or d < best:
            best, at = d, i
            if d == 0:
                break
    return best, at


@dataclass(frozen=True)
class ErrorRates:
    distances: tuple[int, ...]  # per source: edits to the closest reference
    chosen: tuple[int, ...]  # per source: which reference that is
    edits: int  # their total
    ref_tokens: int  # the total length of the chosen references

    @property
    def token_error_rate(self) -> float | None:
        return self.edits / self.ref_tokens if self.ref_tokens else None

    @property
    def sequence_error_rate(self) -> float | None:
        return sum(d > 0 for d in self.distances) / len(self.distances) if self.distances else None


def error_rates(hyps: Sequence[Sequence[Any]], refs: Sequence[Sequence[Sequence[Any]]]) -> ErrorRates:
    """Hypotheses and, per source, its references (token sequences) -> corpus-level error rates."""
    dist, chosen = [], []
    edits = total = 0
    for h, rs in zip(hyps, refs, strict=True):
        d, i = closest(h, rs)
        dist.append(d)
        chosen.append(i)
        edits += d
        total += len(rs[i])
    return ErrorRates(tuple(dist), tuple(chosen), edits, total)


def require_text_scores() -> None:
    """BLEU and chrF need sacrebleu: refused before a session starts when it is missing."""
    try:
        import sacrebleu  # noqa: F401
    except ImportError:
        raise UserError(f"BLEU and chrF for word and subword targets need the sacrebleu package: {TEXT_EXTRA}") from None


def text_scores(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Corpus BLEU and chrF of detokenised hypotheses against every reference of each source, as fractions (sacrebleu
    reports 0-100), with sacrebleu's signatures. Sources with fewer references are padded with None (sacrebleu's
    variable number of references)."""
    from sacrebleu.metrics import BLEU, CHRF

    n = max((len(r) for r in refs), default=1)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(n)]
    bleu, chrf = BLEU(), CHRF()
    b, c = bleu.corpus_score(list(hyps), streams), chrf.corpus_score(list(hyps), streams)
    return {"test_bleu": b.score / 100, "test_chrf": c.score / 100, "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature())}
