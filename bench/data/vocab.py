"""Character vocabulary with PAD/BOS/EOS, encoding, decoding and padding.

PAD is id 0 everywhere (models embed it as zeros, the loss ignores it); masks built from lengths, not
padding characters, decide what the model and the loss see -- so a space inside a date is a real token.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<bos>", "<eos>")


@dataclass(frozen=True)
class Vocab:
    chars: tuple[str, ...]  # the real characters, ids 3..

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Vocab:
        return cls(tuple(sorted(set("".join(texts)))))

    def __len__(self) -> int:
        return len(SPECIALS) + len(self.chars)

    @property
    def index(self) -> dict[str, int]:
        return {c: i + len(SPECIALS) for i, c in enumerate(self.chars)}

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
                out.append(self.chars[i - len(SPECIALS)])
        return "".join(out)

    def token(self, i: int) -> str:
        return SPECIALS[i] if i < len(SPECIALS) else self.chars[i - len(SPECIALS)]


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
