"""Token vocabulary with PAD/BOS/EOS (and, for real data, UNK), encoding, decoding and padding.

PAD is id 0 everywhere (models embed it as zeros, the loss ignores it); masks built from lengths, not
padding characters, decide what the model and the loss see -- so a space inside a date is a real token.

Tokens are characters for the generated tasks and the book's files, and whatever a side's tokenizer makes
for real data (``bench.data.tokens``): phones, words, subwords. Source and target share one vocabulary (the
models take one size), sorted, so that the same tokens always get the same ids. Where valid or test data hold
a token the training split does not, the vocabulary ends with ``<unk>`` -- after every real token, so that
adding it moves no other id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<bos>", "<eos>")
UNK_TOKEN = "<unk>"


@dataclass(frozen=True)
class Vocab:
    chars: tuple[str, ...]  # the real tokens (characters for the built-in tasks), ids 3..
    unk: bool = False  # an <unk> id after the real tokens, for tokens the training split never had

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Vocab:
        return cls(tuple(sorted(set("".join(texts)))))

    @classmethod
    def from_tokens(cls, tokens: Iterable[str], unk: bool = False) -> Vocab:
        return cls(tuple(sorted(set(tokens))), unk)

    def __len__(self) -> int:
        return len(SPECIALS) + len(self.chars) + int(self.unk)

    @property
    def unk_id(self) -> int | None:
        return len(SPECIALS) + len(self.chars) if self.unk else None

    @property
    def index(self) -> dict[str, int]:
        return {c: i + len(SPECIALS) for i, c in enumerate(self.chars)}

    def encode_tokens(self, tokens: Iterable[str], index: dict[str, int] | None = None) -> tuple[list[int], int]:
        """Tokens -> (ids, how many became <unk>). Without an <unk> id an unknown token is an error.

        ``index``: ``self.index`` computed once by a caller encoding many sequences.
        """
        idx = self.index if index is None else index
        unk = self.unk_id
        out, unknown = [], 0
        for t in tokens:
            i = idx.get(t)
            if i is None:
                if unk is None:
                    raise ValueError(f"token {t!r} is not in the vocabulary")
                i, unknown = unk, unknown + 1
            out.append(i)
        return out, unknown

    def encode(self, text: str) -> list[int]:
        idx = self.index
        try:
            return [idx[c] for c in text]
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Ids to text, stopping at EOS and skipping PAD/BOS."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i >= len(SPECIALS):
                out.append(self.token(i))
        return "".join(out)

    def token(self, i: int) -> str:
        if i < len(SPECIALS):
            return SPECIALS[i]
        return UNK_TOKEN if i == self.unk_id else self.chars[i - len(SPECIALS)]


def pad_batch(seqs: Sequence[Sequence[int]], length: int | None = None) -> torch.Tensor:
    """Right-pad id lists with PAD -> LongTensor[N, length or longest]."""
    n = max((len(s) for s in seqs), default=0) if length is None else length
    out = torch.full((len(seqs), n), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return out


def lengths_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """lengths: [N] -> bool mask [N, width], True on the first lengths[i] positions."""
    return torch.arange(width, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)
