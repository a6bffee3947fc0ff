"""Examples -> padded tensors -> length-bucketed batches trimmed to their longest member.

In the book's date.txt about half of every padded source is padding; bucketing batches by length and
trimming each to its longest example (what fairseq and OpenNMT do) removes most of that work without
changing what the model computes: padding is masked, never read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from bench.data.tasks import Example, Span
from bench.data.tokens import CHAR, Tokenizer
from bench.data.vocab import BOS, EOS, Vocab, lengths_mask, pad_batch


@dataclass(frozen=True)
class Encoded:
    """One split as padded tensors (on the CPU).

    src: [N,S] ids (reversed per row when ``reverse_source``), src_len: [N];
    tgt_in: [N,T] = BOS + target, tgt_out: [N,T] = target + EOS, tgt_len: [N] (target length + 1);
    (without an end token: tgt_in = BOS + target[:-1], tgt_out = target, tgt_len = target length);
    align[i]: per target character, its source span in the *model's* source order (reversal applied);
    refs[i]: the ids of every reference of row i (the target first, no EOS) -- what a hypothesis is scored against;
    eos: whether targets end with EOS (else the book's fixed-length decoding); unk: tokens of the split that became <unk>.
    """

    src: torch.Tensor
    src_len: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    tgt_len: torch.Tensor
    align: tuple[tuple[Span | None, ...] | None, ...]
    examples: tuple[Example, ...]
    reversed_source: bool
    refs: tuple[tuple[tuple[int, ...], ...], ...] = ()
    eos: bool = True
    unk: int = 0
    tokens: int = 0  # source and target tokens of the split (every reference): what ``unk`` is a share of

    def __len__(self) -> int:
        return self.src.size(0)


def _reverse_span(span: Span | None, n: int) -> Span | None:
    return None if span is None else (n - span[1], n - span[0])


def encode_split(examples: Sequence[Example], vocab: Vocab, reverse_source: bool = False, eos: bool = True,
                 source: Tokenizer = CHAR, target: Tokenizer = CHAR) -> Encoded:
    """``eos=False``: no end token -- tgt_in = BOS + target[:-1], tgt_out = target, so the decoder learns and is
    scored on exactly the target's characters (the book's fixed-length decoding, for fixed-width targets).

    ``source``/``target``: how each side is cut into tokens (``bench.data.tokens``). Alignments are spans of
    characters, so they are kept only where both sides are characters.
    """
    srcs, tins, touts, aligns, refs = [], [], [], [], []
    unknown = total = 0
    index = vocab.index
    chars = source.kind == "char" and target.kind == "char"
    for ex in examples:
        s, u = vocab.encode_tokens(source.split(ex.src), index)
        rs = []
        for r in ex.references:
            ids, ur = vocab.encode_tokens(target.split(r), index)
            rs.append(tuple(ids))
            u += ur
            total += len(ids)
        unknown += u
        total += len(s)
        t = list(rs[0])
        srcs.append(s[::-1] if reverse_source else s)
        tins.append([BOS] + (t if eos else t[:-1]))
        touts.append(t + [EOS] if eos else t)
        refs.append(tuple(rs))
        if ex.align is None or not chars:
            aligns.append(None)
        elif reverse_source:
            aligns.append(tuple(_reverse_span(sp, len(s)) for sp in ex.align))
        else:
            aligns.append(ex.align)
    return Encoded(
        src=pad_batch(srcs),
        src_len=torch.tensor([len(s) for s in srcs], dtype=torch.long),
        tgt_in=pad_batch(tins),
        tgt_out=pad_batch(touts),
        tgt_len=torch.tensor([len(t) for t in touts], dtype=torch.long),
        align=tuple(aligns),
        examples=tuple(examples),
        reversed_source=reverse_source,
        refs=tuple(refs),
        eos=eos,
        unk=unknown,
        tokens=total,
    )


@dataclass(frozen=True)
class Batch:
    index: torch.Tensor  # [B] rows of the split
    src: torch.Tensor  # [B,S'] trimmed to the longest source in the batch
    src_mask: torch.Tensor  # [B,S'] True on real tokens
    tgt_in: torch.Tensor  # [B,T']
    tgt_out: torch.Tensor  # [B,T'] PAD after EOS

    def pin(self) -> Batch:
        """Page-locked copies, so that ``to(cuda)`` copies asynchronously."""
        return Batch(*(t.pin_memory() for t in (self.index, self.src, self.src_mask, self.tgt_in, self.tgt_out)))

    def to(self, device: torch.device | str) -> Batch:
        nb = torch.device(device).type == "cuda"
        return Batch(*(t.to(device, non_blocking=nb) for t in (self.index, self.src, self.src_mask, self.tgt_in, self.tgt_out)))

    @property
    def target_tokens(self) -> int:
        return int((self.tgt_out != 0).sum())


def make_batch(enc: Encoded, index: torch.Tensor) -> Batch:
    S = int(enc.src_len[index].max())
    T = int(enc.tgt_len[index].max())
    src = enc.src[index, :S]
    return Batch(index, src, lengths_mask(enc.src_len[index], S), enc.tgt_in[index, :T], enc.tgt_out[index, :T])


def batches(enc: Encoded, batch_size: int, shuffle: bool, generator: torch.Generator | None = None, bucket: int = 5) -> Iterator[Batch]:
    """Yield batches covering the split once.

    With ``shuffle``: rows are shuffled, cut into pools of ``bucket`` batches, each pool sorted by source
    length and cut into batches, and the batch order shuffled again -- random, yet each batch holds
    similar lengths. Without: rows sorted by length (evaluation; results are mapped back by ``index``).

    Pools of 5 batches, measured on the book's date.txt (attention, book size, 3 epochs): 35 % less time per
    epoch than unbucketed random batches, and the same convergence (100 % test exact match at epoch 3);
    pools of 50 trimmed no more but grouped the date formats into batches and slowed convergence
    (97.6 % at epoch 3). Pools of 5 group formats too, once padding is stripped (a date's length says its
    format: a batch holds 3.4 of the 7 formats of date.txt on average): size ``book``'s initialisation does not
    learn through that in 3 epochs (0.0 % at epoch 2, against 33.4 % with pools of 1; docs/first-hour.md).
    """
    n = len(enc)
    if shuffle:
        perm = torch.randperm(n, generator=generator)
        pools = perm.split(batch_size * bucket)
        chunks = []
        for pool in pools:
            order = torch.argsort(enc.src_len[pool], stable=True)
            chunks.extend(pool[order].split(batch_size))
        for i in torch.randperm(len(chunks), generator=generator).tolist():
            yield make_batch(enc, chunks[i])
    else:
        order = torch.argsort(enc.src_len, stable=True)
        for chunk in order.split(batch_size):
            yield make_batch(enc, chunk)
