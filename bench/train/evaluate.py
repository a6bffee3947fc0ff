"""Batched greedy decoding and the quality metrics: exact match (the book's metric: the whole answer
right -- any of a source's references, where it has several), token accuracy (against the first reference),
accuracy by source length, and the alignment score. Error rates, BLEU and chrF of the decoded test split are
``bench.train.scores``'.

Metrics are small pure functions over tensors and lists, tested on hand-made inputs; ``evaluate`` is the
edge that runs the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import torch

from bench.data.batching import Encoded, batches
from bench.data.tasks import Span
from bench.data.vocab import BOS, EOS, PAD
from bench.train.scores import hypothesis
from models import Seq2Seq


def exact_match(pred: torch.Tensor, tgt_out: torch.Tensor) -> torch.Tensor:
    """pred, tgt_out: [N,T] (EOS-terminated, PAD after) -> bool [N]: every target token and the EOS right.

    Tokens ``pred`` emits after the EOS position are PAD by construction, so comparing over the target's
    width (pred padded or cut to it) is the same as comparing the decoded strings.
    """
    T = tgt_out.size(1)
    p = _fit(pred, T)
    mask = tgt_out != PAD
    return ((p == tgt_out) | ~mask).all(dim=1)


def token_hits(pred: torch.Tensor, tgt_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (correct target tokens per row, target tokens per row), both [N]; EOS counts as a token."""
    T = tgt_out.size(1)
    p = _fit(pred, T)
    mask = tgt_out != PAD
    return ((p == tgt_out) & mask).sum(dim=1), mask.sum(dim=1)


def _fit(pred: torch.Tensor, T: int) -> torch.Tensor:
    if pred.size(1) >= T:
        return pred[:, :T]
    return torch.cat([pred, pred.new_full((pred.size(0), T - pred.size(1)), PAD)], dim=1)


def alignment_hits(attention: torch.Tensor, spans: Sequence[Span | None]) -> tuple[int, int]:
    """attention: [T',S] for one example; spans: per target character. -> (hits, scored positions).

    A position is a hit when its strongest attention weight falls inside its span. Positions without a
    span (separators) and positions the model did not generate are not scored.
    """
    hits = scored = 0
    for t, span in enumerate(spans):
        if span is None or t >= attention.size(0):
            continue
        scored += 1
        s = int(attention[t].argmax())
        hits += int(span[0] <= s < span[1])
    return hits, scored


def alignment_score(maps: Sequence[torch.Tensor], spans: Sequence[Sequence[Span | None] | None]) -> float | None:
    """Share of scored output positions, over all examples, whose attention peak is in the right span."""
    hits = scored = 0
    for a, sp in zip(maps, spans):
        if sp is None:
            continue
        h, s = alignment_hits(a, sp)
        hits, scored = hits + h, scored + s
    return hits / scored if scored else None


@dataclass
class EvalResult:
    exact_match: float
    token_accuracy: float
    n: int
    by_length: dict[int, tuple[int, int]]  # source length -> (correct, count)
    alignment: float | None
    predictions: list[list[int]] = field(default_factory=list)  # per row of the split, EOS-cut ids
    samples: list[dict] = field(default_factory=list)  # attention maps for the first few rows

    def summary(self) -> dict:
        return {
            "exact_match": self.exact_match,
            "token_accuracy": self.token_accuracy,
            "n": self.n,
            "alignment": self.alignment,
            "by_length": {str(k): list(v) for k, v in sorted(self.by_length.items())},
        }


@torch.inference_mode()  # no autograd bookkeeping at all while decoding
def evaluate(
    model: Seq2Seq,
    enc: Encoded,
    device: torch.device,
    batch_size: int = 512,
    with_attention: bool = False,
    n_samples: int = 0,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
) -> EvalResult:
    """Greedy-decode a whole split in length-sorted batches and score it.

    The only host syncs are one per batch (collecting results), none per decoding step. Attention maps are
    gathered (``with_attention``) for the alignment score and the first ``n_samples`` rows' heatmaps.
    """
    was_training = model.training
    model.eval()
    N = len(enc)
    correct = torch.zeros(N, dtype=torch.bool)
    tok_hit = torch.zeros(N, dtype=torch.long)
    tok_all = torch.zeros(N, dtype=torch.long)
    maps: list[torch.Tensor | None] = [None] * N
    preds: list[list[int]] = [[] for _ in range(N)]
    max_len = int(enc.tgt_len.max()) + 1  # one spare step: a model that overruns is wrong, not truncated right
    for b in batches(enc, batch_size, shuffle=False):
        b = b.to(device)
        with autocast():
            gen = model.generate(b.src, b.src_mask, max_len, BOS, EOS, return_attention=with_attention)
        pred = gen.tokens.cpu()
        idx = b.index.cpu()
        tgt = enc.tgt_out[idx]
        correct[idx] = exact_match(pred, tgt)
        h, a = token_hits(pred, tgt)
        tok_hit[idx], tok_all[idx] = h, a
        for r, i in enumerate(idx.tolist()):
            row = pred[r].tolist()
            preds[i] = row[: row.index(EOS) + 1] if EOS in row else row
        if with_attention and gen.attention is not None:
            att = gen.attention.float().cpu()
            lens = enc.src_len[idx]
            for r, i in enumerate(idx.tolist()):
                maps[i] = att[r, : len(preds[i]), : int(lens[r])]
    model.train(was_training)
    for i, refs in enumerate(enc.refs):  # several references: right when equal to any of them
        if len(refs) > 1 and not correct[i]:
            correct[i] = tuple(hypothesis(preds[i], enc, i)) in refs[1:]

    by_len: dict[int, list[int]] = {}
    for L, ok in zip(enc.src_len.tolist(), correct.tolist()):
        c = by_len.setdefault(L, [0, 0])
        c[0] += int(ok)
        c[1] += 1
    align = None
    if with_attention and any(m is not None for m in maps):
        align = alignment_score([m for m in maps if m is not None], [a for m, a in zip(maps, enc.align) if m is not None])
    samples = []
    for i in range(min(n_samples, N)):
        if maps[i] is None:
            break
        samples.append({"row": i, "src": list(enc.examples[i].src[::-1] if enc.reversed_source else enc.examples[i].src),
                        "reversed_source": enc.reversed_source, "pred": preds[i], "target": enc.examples[i].tgt,
                        "attention": [[round(float(x), 4) for x in r] for r in maps[i]]})
    return EvalResult(
        exact_match=float(correct.float().mean()) if N else 0.0,
        token_accuracy=float(tok_hit.sum() / tok_all.sum().clamp(min=1)),
        n=N,
        by_length={k: (v[0], v[1]) for k, v in by_len.items()},
        alignment=align,
        predictions=preds,
        samples=samples,
    )

