"""The contract every registered model and task keeps, built-in or plugin, as checks anyone can run.

``s2sbench check-model NAME`` and ``s2sbench check-task NAME`` run them; a plugin's own tests import them::

    from bench.train.contract import assert_model, assert_task

    def test_my_model_keeps_the_contract() -> None:
        assert_model("gru")          # AssertionError listing every rule it breaks, one line each

What a benchmark must be able to assume of a model (``models.base.Seq2Seq``: the Annotated Transformer's split
of model and decoding) is checked through the public interface only -- ``models.build``, ``forward``,
``generate`` and the registry's metadata -- so a model is held to exactly what the harness relies on:

* ``shapes``: ``forward`` gives finite float32 logits ``[B,T,V]``; ``generate`` a ``Generation`` of long tokens
  ``[B,max_len]`` in the vocabulary, PAD after each row's first EOS, the same whether maps are asked for or not;
  maps ``[B,max_len,S]`` exactly when the registry says the configuration has attention (``models.attention_maps``:
  the config's word where an option adds or removes it, else ``ModelMeta.attention``), each a distribution over the
  real source up to the row's EOS and zero after it.
* ``padding``: changing padded source positions, or adding padded columns, changes no output.
* ``look-ahead``: changing ``tgt_in[:, t+1:]`` leaves ``logits[:, :t+1]`` unchanged (teacher forcing is causal).
* ``greedy``: ``generate``'s tokens are the argmax of ``forward`` on its own output -- one model, two code paths.
* ``seed``: two builds under one seed have identical parameters, and the same batch gives the same outputs twice.
* ``budget``: every budgeted size within +-10 % of its budget (``models.BUDGETS``, counted on the meta device), and
  that count equal to a real build's.
* ``host-sync``: ``models.host_sync`` is declared exactly when ``forward`` reads a device value on the host --
  on the meta device, where a tensor has no values, such a read raises and nothing else does.
* ``learns``: memorises a tiny task (reverse 32 strings of 2-5 symbols) to 100 % exact match in at most 400
  Adam steps -- about a second for each built-in model on one CPU thread, and deterministic (seeded data and
  model, fixed step count).

A task's contract (``check_task``): ``splits`` -- train, valid and test hold the examples asked for (a dataset,
registered ``generated=False``, the valid examples asked for and a non-empty train and test) and share no
source (no test question was seen in training); ``seed`` -- one seed gives the same examples twice;
``examples`` -- non-empty strings, alignments exactly when the registry says the task has them, each span
inside its source.

Each rule that fails gives one line, ``rule: what happened``. A model that cannot be built, or whose ``forward``
raises on the contract's first batch (``first_batch``), cannot be checked at all: :class:`Unusable`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

import models
from bench.data import tasks
from bench.data.vocab import BOS, EOS, PAD
from bench.train.loss import loss_fn
from bench.train.rules import MODEL_RULES, TASK_RULES
from bench.train.seeding import seed_everything
from models.base import Generation, after_eos
from models.sizing import TOLERANCE

__all__ = ["MODEL_RULES", "TASK_RULES", "Breach", "Subject", "Unusable", "assert_model", "assert_task", "check_model", "check_task",
           "default_size", "first_batch", "tiny_task", "usable"]

ATOL = 1e-5  # "unchanged" in float32: the same computation may sum in another order on another batch shape
LEARN_STEPS, LEARN_EVERY, LEARN_LR = 400, 10, 1e-2
TASK_OPTIONS = tasks.TaskOptions(seed=0, train=200, valid=50, test=50)


class Unusable(Exception):
    """The model cannot be checked: building it, or its ``forward`` on the contract's first batch, raised."""


@dataclass(frozen=True)
class Breach:
    """One rule broken: ``rule`` (a key of ``MODEL_RULES``/``TASK_RULES``) and what happened, in one line."""

    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"


@dataclass(frozen=True)
class Subject:
    """What is checked: a registered model at one size with its options (the rules build it as they need)."""

    name: str
    size: str
    options: dict[str, Any] = field(default_factory=dict)

    def build(self, vocab: int = models.BUDGET_VOCAB, seed: int = 0, **extra: Any) -> models.Seq2Seq:
        seed_everything(seed)
        return models.build(self.name, vocab, self.size, **{**self.options, **extra})


def default_size(name: str) -> str:
    """``tiny`` where the model has it, else its smallest size: the rules that run the model are quick there."""
    sizes = models.sizes(name)
    if not sizes:
        raise Unusable(f"model {name} has no size at all" + _unreachable(name))
    return "tiny" if "tiny" in sizes else min(sizes, key=lambda s: models.param_count(name, models.BUDGET_VOCAB, s))


def _unreachable(name: str) -> str:
    miss = models.unreachable(name)
    return f" ({'; '.join(f'{s}: {w}' for s, w in miss.items())})" if miss else ""


def first_batch(vocab: int = models.BUDGET_VOCAB, B: int = 5, S: int = 9, T: int = 7,
                seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The contract's first batch: a right-padded random source (lengths 2..S, one full row, one of length 2), its
    mask, and a target prefix starting with BOS. -> src [B,S] long, src_mask [B,S] bool, tgt_in [B,T] long."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, S + 1, (B,), generator=g)
    lengths[0], lengths[-1] = S, 2
    mask = torch.arange(S).unsqueeze(0) < lengths.unsqueeze(1)  # [B,S]
    src = torch.randint(3, vocab, (B, S), generator=g).masked_fill(~mask, PAD)
    tgt_in = torch.randint(3, vocab, (B, T), generator=g)
    tgt_in[:, 0] = BOS
    return src, mask, tgt_in


def _other(ids: torch.Tensor, vocab: int, by: int = 7) -> torch.Tensor:
    """A different real token (id >= 3) at every position of ``ids``."""
    return 3 + (ids - 3 + by) % (vocab - 3)


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max()) if a.numel() else 0.0


# --------------------------------------------------------------------------------------------------- model rules


def _shapes(s: Subject) -> list[str]:
    V = models.BUDGET_VOCAB
    model = s.build().eval()
    src, mask, tgt_in = first_batch()
    B, S = src.shape
    out: list[str] = []
    with torch.no_grad():
        logits = model(src, mask, tgt_in)
    if not isinstance(logits, torch.Tensor):
        return [f"forward returned {type(logits).__name__}, not a tensor of logits"]
    if tuple(logits.shape) != (B, tgt_in.size(1), V):
        out.append(f"forward gave logits of shape {tuple(logits.shape)}, expected {(B, tgt_in.size(1), V)} [B,T,V]")
    if logits.dtype != torch.float32:
        out.append(f"forward gave {logits.dtype} logits in a float32 model, expected torch.float32")
    elif not torch.isfinite(logits).all():
        out.append("forward gave logits that are not finite")
    max_len = 6
    plain = model.generate(src, mask, max_len, BOS, EOS)
    gen = model.generate(src, mask, max_len, BOS, EOS, return_attention=True)
    for g in (plain, gen):
        if not isinstance(g, Generation):
            return [*out, f"generate returned {type(g).__name__}, not a models.Generation"]
    tok = gen.tokens
    if tuple(tok.shape) != (B, max_len) or tok.dtype != torch.long:
        out.append(f"generate gave tokens {tok.dtype} of shape {tuple(tok.shape)}, expected torch.int64 of shape {(B, max_len)} "
                   "[B,max_len]")
        return out
    if ((tok < 0) | (tok >= V)).any():
        out.append(f"generate gave token ids outside the vocabulary [0, {V})")
    if not torch.equal(plain.tokens, tok):
        out.append("generate gave other tokens when asked for attention maps")
    if (tok.masked_select(after_eos(tok, EOS)) != PAD).any():
        out.append("generate left tokens other than PAD after a row's first EOS")
    raw = model.generate(src, mask, 8, BOS, -1).tokens  # no row ends: every step's own token
    eos = int(raw[0, 2])  # a token row 0 does emit, taken as the end token: rows must end there
    ended = model.generate(src, mask, 8, BOS, eos).tokens
    if tuple(ended.shape) == tuple(raw.shape) and not torch.equal(ended, raw.masked_fill(after_eos(raw, eos), PAD)):
        out.append(f"generate with eos={eos} is not the full-length decode with PAD after each row's first {eos}")
    has_maps = models.attention_maps(s.name, s.size, **s.options)  # the config's word where an option decides (a form)
    a = gen.attention
    if not has_maps:
        if a is not None:
            out.append("generate returned attention maps, but the registry says this configuration has none (models.attention_maps)")
        return out
    if a is None:
        return [*out, "generate returned no attention maps, but the registry says this configuration has them (models.attention_maps)"]
    if tuple(a.shape) != (B, max_len, S) or not a.is_floating_point():
        return [*out, f"attention maps {a.dtype} of shape {tuple(a.shape)}, expected floats of shape {(B, max_len, S)} [B,max_len,S]"]
    live = ~after_eos(tok, EOS)  # up to and including each row's EOS
    if (a < 0).any() or _maxdiff(a.sum(-1), live.to(a.dtype)) > 1e-4:
        out.append("attention maps are not distributions over the source up to each row's EOS (and zero after it)")
    if (a.masked_select(~mask.unsqueeze(1).expand_as(a)) != 0).any():
        out.append("attention maps weigh padded source positions")
    return out


def _padding(s: Subject) -> list[str]:
    V = models.BUDGET_VOCAB
    model = s.build().eval()
    src, mask, tgt_in = first_batch()
    g = torch.Generator().manual_seed(5)
    noisy = torch.where(mask, src, torch.randint(3, V, src.shape, generator=g))
    wide = torch.cat([noisy, torch.randint(3, V, (src.size(0), 3), generator=g)], dim=1)  # 3 more padded columns
    wide_mask = torch.cat([mask, torch.zeros(src.size(0), 3, dtype=torch.bool)], dim=1)
    out: list[str] = []
    with torch.no_grad():
        ref = model(src, mask, tgt_in)
        gen = model.generate(src, mask, 6, BOS, EOS, return_attention=True)
        for what, x, m in (("tokens in padded source positions", noisy, mask), ("3 padded columns", wide, wide_mask)):
            d = _maxdiff(model(x, m, tgt_in), ref)
            if d > ATOL:
                out.append(f"{what} changed forward's logits (max difference {d:.3g})")
            other = model.generate(x, m, 6, BOS, EOS, return_attention=True)
            if not torch.equal(other.tokens, gen.tokens):
                out.append(f"{what} changed generate's tokens")
            elif gen.attention is not None and other.attention is not None:
                S = src.size(1)
                if _maxdiff(other.attention[..., :S], gen.attention) > ATOL or (other.attention[..., S:] != 0).any():
                    out.append(f"{what} changed generate's attention maps")
    return out


def _look_ahead(s: Subject) -> list[str]:
    V = models.BUDGET_VOCAB
    model = s.build().eval()
    src, mask, tgt_in = first_batch()
    out: list[str] = []
    with torch.no_grad():
        ref = model(src, mask, tgt_in)
        for k in (1, 3, tgt_in.size(1) - 1):
            changed = tgt_in.clone()
            changed[:, k:] = _other(tgt_in[:, k:], V)
            d = _maxdiff(model(src, mask, changed)[:, :k], ref[:, :k])
            if d > ATOL:
                out.append(f"changing tgt_in[:, {k}:] changed logits[:, :{k}] (max difference {d:.3g}): position t sees the target after t")
                break
    return out


def _greedy(s: Subject) -> list[str]:
    model = s.build().eval()
    src, mask, _ = first_batch()
    max_len = 8
    gen = model.generate(src, mask, max_len, BOS, -1).tokens  # eos -1 never comes: all 8 tokens are the model's
    tgt_in = torch.cat([torch.full((src.size(0), 1), BOS), gen[:, :-1]], dim=1)
    with torch.no_grad():
        forced = model(src, mask, tgt_in).argmax(-1)
    bad = (forced != gen).nonzero()
    if len(bad) == 0:
        return []
    b, t = (int(x) for x in bad[0])
    return [f"{len(bad)} of {gen.numel()} greedy tokens differ from the argmax of forward on the generated prefix "
            f"(first: row {b}, step {t}: generate {int(gen[b, t])}, forward {int(forced[b, t])})"]


def _seed(s: Subject) -> list[str]:
    a, b = s.build(seed=0).eval(), s.build(seed=0).eval()
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys():
        return ["two builds under one seed have different parameters and buffers"]
    for k in sa:
        if not torch.equal(sa[k], sb[k]):
            return [f"two builds under seed 0 differ in {k} (max difference {_maxdiff(sa[k], sb[k]):.3g})"]
    src, mask, tgt_in = first_batch()
    with torch.no_grad():
        outs = [a(src, mask, tgt_in), a(src, mask, tgt_in), b(src, mask, tgt_in)]
    if not (torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])):
        return [f"one batch gave different logits twice in eval mode (max difference {max(_maxdiff(outs[0], o) for o in outs[1:]):.3g})"]
    if not torch.equal(a.generate(src, mask, 6, BOS, EOS).tokens, a.generate(src, mask, 6, BOS, EOS).tokens):
        return ["one batch gave different greedy tokens twice"]
    return []


def _budget(s: Subject) -> list[str]:
    out = []
    for size in models.sizes(s.name):
        if size not in models.BUDGETS:
            continue
        n, budget = models.param_count(s.name, models.BUDGET_VOCAB, size), models.BUDGETS[size]
        if abs(n - budget) > TOLERANCE * budget:
            out.append(f"size {size} has {n:,} parameters, outside {budget:,} +-{TOLERANCE * 100:g} %")
    counted = models.param_count(s.name, models.BUDGET_VOCAB, s.size, **s.options)
    real = models.count_params(s.build())
    if counted != real:
        out.append(f"size {s.size} counts {counted:,} parameters on the meta device but has {real:,} when built")
    return out


def _host_sync(s: Subject) -> list[str]:
    declared = models.host_sync(s.name, s.size, **s.options)
    with torch.device("meta"):
        model = models.build(s.name, models.BUDGET_VOCAB, s.size, **s.options).train()
        src, mask, tgt = (t.to("meta") for t in first_batch())
    try:
        model(src, mask, tgt).sum().backward()
        synced = None
    except (NotImplementedError, RuntimeError) as e:  # a copy out of a meta tensor (.cpu()), or .item() / bool() of one
        if "meta" not in str(e):
            return [f"forward on the meta device raised {type(e).__name__}: {_line(e)}"]
        synced = _line(e)
    except Exception as e:  # noqa: BLE001 -- any other failure on meta is a failure of its own, said in one line
        return [f"forward on the meta device raised {type(e).__name__}: {_line(e)}"]
    if declared and synced is None:
        return [f"declares a host sync ({declared}) but its forward runs on the meta device, where no value can be read"]
    if synced is not None and not declared:
        return [f"forward reads a device value on the host ({synced}) but the config declares no host_sync()"]
    return []


def tiny_task(n: int = 32, symbols: int = 8, lengths: tuple[int, int] = (2, 5), seed: int = 0) -> tuple[int, tuple[torch.Tensor, ...]]:
    """The task ``learns`` memorises: ``n`` random strings of ``symbols`` symbols, each to be reversed.

    -> (vocabulary size, (src [n,S], src_mask [n,S], tgt_in [n,T], tgt_out [n,T])), with T = S + 1 (EOS). Reversal
    needs the source (a model that ignores it cannot get the first token right) and all of it.
    """
    g = torch.Generator().manual_seed(seed)
    V, S = 3 + symbols, lengths[1]
    L = torch.randint(lengths[0], S + 1, (n,), generator=g)
    mask = torch.arange(S).unsqueeze(0) < L.unsqueeze(1)
    src = torch.randint(3, V, (n, S), generator=g).masked_fill(~mask, PAD)
    tgt_out = torch.zeros(n, S + 1, dtype=torch.long)
    for i, k in enumerate(L.tolist()):
        tgt_out[i, :k] = src[i, :k].flip(0)
        tgt_out[i, k] = EOS
    tgt_in = torch.cat([torch.full((n, 1), BOS), tgt_out[:, :-1]], dim=1).masked_fill(tgt_out == PAD, PAD)
    return V, (src, mask, tgt_in, tgt_out)


def _learns(s: Subject) -> list[str]:
    V, (src, mask, tgt_in, tgt_out) = tiny_task()
    fields = {f.name for f in dataclasses.fields(models.entry(s.name).config_cls)}
    model = s.build(vocab=V, **({"dropout": 0.0} if "dropout" in fields and "dropout" not in s.options else {}))
    opt = torch.optim.Adam(model.parameters(), lr=LEARN_LR)
    acc, loss, step = 0.0, float("nan"), 0
    for step in range(1, LEARN_STEPS + 1):
        model.train()
        loss_t = loss_fn(model(src, mask, tgt_in), tgt_out)
        opt.zero_grad()
        loss_t.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % LEARN_EVERY == 0:
            loss = float(loss_t.detach())
            model.eval()
            tokens = model.generate(src, mask, tgt_out.size(1), BOS, EOS).tokens
            acc = float((tokens == tgt_out).all(dim=1).float().mean())
            if acc == 1.0:
                return []
    return [f"{acc:.0%} exact match on the tiny task (reverse {src.size(0)} strings of 2-5 symbols) after {step} steps, loss {loss:.3g}"]


_MODEL_CHECKS: dict[str, Callable[[Subject], list[str]]] = {
    "shapes": _shapes, "padding": _padding, "look-ahead": _look_ahead, "greedy": _greedy, "seed": _seed, "budget": _budget,
    "host-sync": _host_sync, "learns": _learns,
}


def _line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0]


def usable(s: Subject) -> None:
    """Build the model and run ``forward`` on the contract's first batch; :class:`Unusable` (one line) if either raises."""
    try:
        model = s.build().eval()
    except Exception as e:  # noqa: BLE001 -- reported as the model's failure, in one line
        raise Unusable(f"model {s.name} at size {s.size} cannot be built: {type(e).__name__}: {_line(e)}") from None
    try:
        with torch.no_grad():
            model(*first_batch())
    except Exception as e:  # noqa: BLE001
        raise Unusable(f"model {s.name}'s forward raised on the contract's first batch: {type(e).__name__}: {_line(e)}") from None


def check_model(name: str, size: str | None = None, options: dict[str, Any] | None = None,
                rules: Sequence[str] | None = None) -> list[Breach]:
    """Every rule of ``rules`` (default: all of ``MODEL_RULES``) that model ``name`` breaks, at ``size`` (default
    ``default_size``) with model ``options``; [] when it keeps them all. Raises :class:`Unusable` when the model cannot
    be checked, ``KeyError`` for an unknown model, size or rule."""
    unknown = [r for r in (rules or []) if r not in MODEL_RULES]
    if unknown:
        raise KeyError(f"unknown rule {unknown[0]!r}; rules: {', '.join(MODEL_RULES)}")
    models.entry(name)
    s = Subject(name, size or default_size(name), dict(options or {}))
    models.config(name, models.BUDGET_VOCAB, s.size, **s.options)  # unknown size or option: KeyError / OptionError now
    usable(s)
    out: list[Breach] = []
    for rule in rules or MODEL_RULES:
        try:
            details = _MODEL_CHECKS[rule](s)
        except Exception as e:  # noqa: BLE001 -- a rule whose check raises is broken by the model, said in one line
            details = [f"raised {type(e).__name__}: {_line(e)}"]
        out += [Breach(rule, d) for d in details]
    return out


# ---------------------------------------------------------------------------------------------------- task rules


def check_task(name: str, opts: tasks.TaskOptions = TASK_OPTIONS) -> list[Breach]:
    """Every rule of ``TASK_RULES`` that task ``name`` breaks when made with ``opts``; [] when it keeps them all.
    Raises :class:`Unusable` when the task cannot be made at all."""
    entry = tasks.entry(name)
    try:
        data, again = entry.make(opts), entry.make(opts)
    except Exception as e:  # noqa: BLE001 -- reported as the task's failure, in one line
        raise Unusable(f"task {name} cannot be made: {type(e).__name__}: {_line(e)}") from None
    out: list[Breach] = []
    splits = {"train": data.train, "valid": data.valid, "test": data.test}
    for split, want in (("train", opts.train), ("valid", opts.valid), ("test", opts.test)):
        if not entry.generated and split != "valid":  # a dataset (g2p) has its own sizes: its train and test must hold something
            if not splits[split]:
                out.append(Breach("splits", f"{split} is empty"))
            continue
        if len(splits[split]) != want:
            out.append(Breach("splits", f"{split} holds {len(splits[split])} examples, {want} were asked for"))
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        shared = {e.src for e in splits[a]} & {e.src for e in splits[b]}
        if shared:
            out.append(Breach("splits", f"{a} and {b} share {len(shared)} sources (e.g. {sorted(shared)[0]!r})"))
    if (data.train, data.valid, data.test) != (again.train, again.valid, again.test):
        out.append(Breach("seed", f"two makes with seed {opts.seed} gave different examples"))
    for split, exs in splits.items():
        for i, ex in enumerate(exs):
            why = _example(ex, entry.aligned)
            if why:
                out.append(Breach("examples", f"{split} example {i} ({ex.src!r} -> {ex.tgt!r}): {why}"))
                break
    return out


def _example(ex: tasks.Example, aligned: bool) -> str | None:
    if not (isinstance(ex.src, str) and isinstance(ex.tgt, str) and ex.src and ex.tgt):
        return "source and target must be non-empty strings"
    if not aligned:
        return "has an alignment, but the task is registered without (aligned=False)" if ex.align is not None else None
    if ex.align is None:
        return "has no alignment, but the task is registered with them (aligned=True)"
    for span in ex.align:
        if span is not None and not (0 <= span[0] < span[1] <= len(ex.src)):
            return f"alignment span {span} is not inside its {len(ex.src)}-character source"
    return None


# -------------------------------------------------------------------------------------------- for pytest


def assert_model(name: str, size: str | None = None, options: dict[str, Any] | None = None, rules: Sequence[str] | None = None) -> None:
    """``check_model`` for a test: ``AssertionError`` whose message lists every broken rule, one line each."""
    try:
        broken = check_model(name, size, options, rules)
    except Unusable as e:
        raise AssertionError(str(e)) from None
    assert not broken, f"{name} breaks the model contract:\n" + "\n".join(f"  {b}" for b in broken)


def assert_task(name: str, opts: tasks.TaskOptions = TASK_OPTIONS) -> None:
    """``check_task`` for a test: ``AssertionError`` whose message lists every broken rule, one line each."""
    try:
        broken = check_task(name, opts)
    except Unusable as e:
        raise AssertionError(str(e)) from None
    assert not broken, f"{name} breaks the task contract:\n" + "\n".join(f"  {b}" for b in broken)
