"""Toy models for the contract's tests: one that keeps it, and one per rule with that rule broken on purpose.

``Toy`` is a small correct model (a GRU encoder whose state after each row's last real token starts a GRU
decoder, as the book's seq2seq does with LSTMs); each subclass plants one bug. ``plant`` registers one under a
name of its own (the registries are restored after every test: ``tests/conftest.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import models
from models import ByWidth, Generation, ModelMeta, Seq2Seq
from models.base import greedy_decode, last_valid


@dataclass(frozen=True)
class ToyConfig:
    vocab_size: int = 0
    embed: int = 32  # embedding width, shared by source and target
    hidden: int = 72  # GRU width: 52 k parameters at vocabulary 60, within the tiny budget

    def host_sync(self) -> str | None:
        return None


class Toy(Seq2Seq):
    """Keeps the contract: GRU encoder, its last real state starts a GRU decoder, a linear output layer."""

    def __init__(self, cfg: ToyConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed, padding_idx=0)
        self.encoder = nn.GRU(cfg.embed, cfg.hidden, batch_first=True)
        self.decoder = nn.GRU(cfg.embed, cfg.hidden, batch_first=True)
        self.out = nn.Linear(cfg.hidden, cfg.vocab_size)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        hs, _ = self.encoder(self.embed(src))  # [B,S,H]
        return last_valid(hs, src_mask).unsqueeze(0)  # [1,B,H]

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        y, _ = self.decoder(self.embed(tgt_in), self.encode(src, src_mask))
        return self.out(y)  # [B,T,V]

    def step_state(self, h: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        """The state the next greedy step starts from (the bug of DecodesOtherwise lives here)."""
        return h

    @torch.no_grad()
    def generate(self, src, src_mask, max_len, bos, eos, return_attention=False) -> Generation:
        h0 = h = self.encode(src, src_mask)

        def step(tok: torch.Tensor) -> tuple[torch.Tensor, None]:
            nonlocal h
            y, h_new = self.decoder(self.embed(tok), h)
            h = self.step_state(h_new, h0)
            return self.out(y), None

        return greedy_decode(step, src.size(0), max_len, bos, eos, src.device)


class LooksAhead(Toy):
    """Position t's logits also see the decoder state at t+1, i.e. the next target token."""

    def forward(self, src, src_mask, tgt_in):
        y, _ = self.decoder(self.embed(tgt_in), self.encode(src, src_mask))
        return self.out(y + torch.roll(y, -1, dims=1))


class IgnoresTheMask(Toy):
    """The decoder starts from the encoder's state after the last *column*, padding included."""

    def encode(self, src, src_mask):
        hs, _ = self.encoder(self.embed(src))
        return hs[:, -1].unsqueeze(0).contiguous()


class DecodesOtherwise(Toy):
    """Greedy decoding restarts every step from the encoder's state: not what teacher forcing computes."""

    def step_state(self, h, h0):
        return h0


class Nondeterministic(Toy):
    """The output layer is drawn from the operating system's randomness, not from the seeded generator."""

    def __init__(self, cfg: ToyConfig) -> None:
        super().__init__(cfg)
        g = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
        with torch.no_grad():
            self.out.weight.copy_(torch.randn(self.out.weight.shape, generator=g) * 0.1)


class ReadsTheHost(Toy):
    """Reads a device value on the host in forward (``.item()``), but its config declares no host sync."""

    def forward(self, src, src_mask, tgt_in):
        longest = int(src_mask.sum(dim=1).max().item())  # a host read: no CUDA graph can hold it
        return super().forward(src[:, :longest], src_mask[:, :longest], tgt_in)


@dataclass(frozen=True)
class ClaimsASyncConfig(ToyConfig):
    def host_sync(self) -> str | None:
        return "it says it packs the source"


class WrongDtype(Toy):
    """Logits in float64 from a float32 model."""

    def forward(self, src, src_mask, tgt_in):
        return super().forward(src, src_mask, tgt_in).double()


class MapsMissing(Toy):
    """Registered with attention maps (ModelMeta.attention) but ``generate`` returns none."""


class IgnoresTheSource(Toy):
    """The decoder starts from zeros: it never learns which string to reverse."""

    def forward(self, src, src_mask, tgt_in):
        y, _ = self.decoder(self.embed(tgt_in))
        return self.out(y)

    @torch.no_grad()
    def generate(self, src, src_mask, max_len, bos, eos, return_attention=False) -> Generation:
        h = None

        def step(tok):
            nonlocal h
            y, h = self.decoder(self.embed(tok), h)
            return self.out(y), None

        return greedy_decode(step, src.size(0), max_len, bos, eos, src.device)


class ForwardRaises(Toy):
    def forward(self, src, src_mask, tgt_in):
        raise RuntimeError("this toy has no forward")


SIZES = {"tiny": ToyConfig()}
BY_WIDTH = ByWidth(lambda w: ToyConfig(hidden=w), low=8, high=256, step=8)  # reaches tiny and small, not base and up


def plant(name: str, cls: type[Seq2Seq] = Toy, sizes: Any = None, config_cls: type = ToyConfig, meta: ModelMeta | None = None) -> str:
    """Register ``cls`` as model ``name`` (a table with size tiny unless ``sizes``) -> ``name``."""
    models.register(name, cls, config_cls, SIZES if sizes is None else sizes, f"toy: {cls.__doc__ or cls.__name__}".splitlines()[0], meta)
    return name
