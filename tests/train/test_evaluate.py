"""Quality metrics on hand-made tensors, ``evaluate`` with a scripted model, and the seed statistics."""

from __future__ import annotations

import math

import pytest
import torch

from bench.analysis.stats import pareto_front, summarize, t95
from bench.data.batching import encode_split
from bench.data.tasks import Example
from bench.data.vocab import EOS, PAD, Vocab
from bench.train.evaluate import alignment_hits, alignment_score, evaluate, exact_match, token_hits
from models.base import Generation, Seq2Seq

# Target "ab" (ids 5, 6) + EOS, padded to width 4.
TGT = torch.tensor([[5, 6, EOS, PAD]] * 5)
PRED = torch.tensor(
    [
        [5, 6, EOS, PAD],  # exactly right
        [5, EOS, PAD, PAD],  # stops early
        [5, 6, 7, EOS],  # runs past where EOS belongs
        [5, 6, PAD, PAD],  # right characters, no EOS
        [9, 6, EOS, PAD],  # one wrong character
    ]
)


def test_exact_match() -> None:
    assert exact_match(PRED, TGT).tolist() == [True, False, False, False, False]


def test_token_hits_count_eos_as_a_token() -> None:
    hits, total = token_hits(PRED, TGT)
    assert total.tolist() == [3, 3, 3, 3, 3]
    assert hits.tolist() == [3, 1, 2, 2, 2]


def test_predictions_of_another_width() -> None:
    tgt = torch.tensor([[5, 6, EOS, PAD], [5, EOS, PAD, PAD]])
    short = torch.tensor([[5, 6], [5, EOS]])  # decoding stopped before the target's EOS position
    assert exact_match(short, tgt).tolist() == [False, True]
    assert [h.tolist() for h in token_hits(short, tgt)] == [[2, 2], [3, 2]]
    long = torch.tensor([[5, 6, EOS, PAD, PAD, PAD], [5, 7, 8, 9, 10, 11]])
    assert exact_match(long, tgt).tolist() == [True, False]
    assert token_hits(long, tgt)[0].tolist() == [3, 1]


SPANS = [(2, 4), None, (5, 7), (7, 8), (3, 4)]  # S = 8; one separator without a span


def _one_hot(rows: list[int], S: int = 8) -> torch.Tensor:
    a = torch.zeros(len(rows), S)
    a[torch.arange(len(rows)), torch.tensor(rows)] = 1.0
    return a


def test_alignment_perfect_map_scores_one() -> None:
    att = _one_hot([3, 0, 6, 7, 3])
    assert alignment_hits(att, SPANS) == (4, 4)
    assert alignment_score([att, att], [SPANS, SPANS]) == 1.0


def test_alignment_uniform_map_scores_at_most_the_span_share() -> None:
    att = torch.full((5, 8), 1 / 8)
    share = sum((b - a) / 8 for a, b in (s for s in SPANS if s)) / 4
    assert alignment_score([att], [SPANS]) <= share


def test_alignment_wrong_peaks_score_zero_and_partial_counts() -> None:
    assert alignment_score([_one_hot([0, 0, 0, 0, 0])], [SPANS]) == 0.0
    # two of four scored positions right
    assert alignment_score([_one_hot([2, 5, 1, 7, 0])], [SPANS]) == 0.5


def test_alignment_scores_only_generated_positions_and_aligned_examples() -> None:
    short = _one_hot([3, 0])  # the model stopped after two tokens: one scored position
    assert alignment_hits(short, SPANS) == (1, 1)
    assert alignment_score([short, _one_hot([0] * 3)], [SPANS, None]) == 1.0  # an example without alignment is skipped
    assert alignment_score([_one_hot([0])], [None]) is None


# --- evaluate() with a scripted model ----------------------------------------------------------------


class Oracle(Seq2Seq):
    """Answers from a table keyed by the (unpadded) source; wrong on purpose for some sources.

    Attention: one-hot on the first character of each target position's span (or position 0).
    """

    def __init__(self, answers: dict[tuple[int, ...], tuple[list[int], list]]) -> None:
        super().__init__()
        self.answers = answers
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    @torch.no_grad()
    def generate(self, src, src_mask, max_len, bos, eos, return_attention=False) -> Generation:
        B, S = src.shape
        toks = torch.full((B, max_len), PAD, dtype=torch.long)
        att = torch.zeros(B, max_len, S)
        for r in range(B):
            key = tuple(src[r][src_mask[r]].tolist())
            ids, spans = self.answers[key]
            toks[r, : len(ids)] = torch.tensor(ids)
            for t in range(len(ids)):
                sp = spans[t] if t < len(spans) else None
                att[r, t, sp[0] if sp else 0] = 1.0
        return Generation(toks, att if return_attention else None)


def test_evaluate_maps_batched_results_back_to_rows() -> None:
    # Sources of different lengths, so length-sorted batches reorder the rows.
    exs = [Example("x" * n + "y", "ab"[n % 2] * n, tuple((i, i + 1) for i in range(n))) for n in range(1, 13)]
    vocab = Vocab.from_texts([e.src for e in exs] + [e.tgt for e in exs])
    enc = encode_split(exs, vocab)
    answers = {}
    for i, e in enumerate(exs):
        right = vocab.encode(e.tgt) + [EOS]
        flipped = ("a" if e.tgt[0] == "b" else "b") + e.tgt[1:]
        pred = right if i % 3 != 0 else vocab.encode(flipped) + [EOS]  # rows 0, 3, 6, 9: first character wrong
        spans = list(e.align) if i < 6 else [(len(e.src) - 1, len(e.src))] * len(e.tgt)  # rows 6..: attention on 'y'
        answers[tuple(vocab.encode(e.src))] = (pred, spans)
    res = evaluate(Oracle(answers), enc, torch.device("cpu"), batch_size=5, with_attention=True, n_samples=2)
    wrong = {0, 3, 6, 9}
    assert res.n == 12
    assert res.exact_match == pytest.approx(8 / 12)
    for i, e in enumerate(exs):
        assert res.predictions[i] == answers[tuple(vocab.encode(e.src))][0]
        assert res.by_length[len(e.src)] == (0 if i in wrong else 1, 1)
    total_tokens = sum(len(e.tgt) + 1 for e in exs)
    assert res.token_accuracy == pytest.approx((total_tokens - len(wrong)) / total_tokens)
    scored = sum(len(e.tgt) for e in exs)
    hits = sum(len(e.tgt) for e in exs[:6])
    assert res.alignment == pytest.approx(hits / scored)
    assert [s["row"] for s in res.samples] == [0, 1]
    assert res.samples[1]["target"] == exs[1].tgt and res.samples[1]["pred"] == answers[tuple(vocab.encode(exs[1].src))][0]
    assert len(res.samples[1]["attention"]) == len(res.samples[1]["pred"]) and len(res.samples[1]["attention"][0]) == len(exs[1].src)


def test_evaluate_without_attention_has_no_alignment() -> None:
    exs = [Example("ab", "ba"), Example("abc", "cba")]
    vocab = Vocab.from_texts(["abc"])
    enc = encode_split(exs, vocab)
    answers = {tuple(vocab.encode(e.src)): (vocab.encode(e.tgt) + [EOS], []) for e in exs}
    res = evaluate(Oracle(answers), enc, torch.device("cpu"))
    assert res.exact_match == 1.0 and res.token_accuracy == 1.0 and res.alignment is None


# --- stats -------------------------------------------------------------------------------------------


def test_summarize_known_values() -> None:
    s = summarize([1, 2, 3])
    assert (s.n, s.mean, s.std) == (3, 2.0, 1.0)
    assert s.half_width == pytest.approx(4.303 / math.sqrt(3))
    assert (s.low, s.high) == pytest.approx((2 - 4.303 / math.sqrt(3), 2 + 4.303 / math.sqrt(3)))


def test_summarize_edge_cases() -> None:
    one = summarize([0.7])
    assert (one.n, one.mean, one.std) == (1, 0.7, 0.0) and math.isnan(one.half_width)
    none = summarize([])
    assert none.n == 0 and math.isnan(none.mean)
    gaps = summarize([1.0, None, float("nan"), 3.0])  # missing values are dropped, not zeros
    assert (gaps.n, gaps.mean) == (2, 2.0)
    assert gaps.std == pytest.approx(math.sqrt(2))
    assert gaps.half_width == pytest.approx(12.706)
    assert t95(100) == 1.96 and t95(1) == 12.706


def test_pareto_front() -> None:
    pts = [(1.0, 50.0), (2.0, 80.0), (3.0, 70.0), (2.0, 60.0), (1.0, 50.0), (4.0, 90.0), (0.5, 10.0)]
    assert pareto_front(pts) == [True, True, False, False, True, True, True]
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 1.0)]) == [True]
