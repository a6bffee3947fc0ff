"""Teacher-forced training with evaluation after every epoch, stopping at a target or a budget.

The step does no host-device synchronisation: the loss is summed on the device and read once per epoch
(which is also when divergence is detected: ``divergence``). Epoch times exclude evaluation; time to target
is reported both as training time alone and as wall time with evaluation (MLPerf's metric).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol

import torch

from bench.data.batching import Batch, Encoded, batches
from bench.data.vocab import PAD
from bench.measure.flops import counter
from bench.measure.timing import Precision, Stopwatch
from bench.spec.run import TrainConfig
from bench.train.capture import GraphStep, compile_model
from bench.train.evaluate import EvalResult, evaluate
from bench.train.loss import loss_fn
from bench.train.optim import optimizer, schedule
from models import Seq2Seq


class Diverged(RuntimeError):
    """The training loss became NaN or infinite, or exploded while staying finite (``divergence``)."""


# A loss can explode and stay finite. Tiny models on the date task (62 tokens: ln V = 4.13 for a uniform
# guess), first epoch's mean loss: attention 1.6e7 at --lr 1e6, 2,121 at --lr 100, 8.46 at --lr 1 (0 %
# exact match after 3 epochs); the Transformer 61 at --lr 1. Healthy runs (lr 1e-3 to 1e-1; attention,
# Transformer, seq2seq) start near ln V and fall: their first epoch's mean was at most 0.97 ln V.
DIVERGE_OVER_UNIFORM = 2.0  # an epoch's mean loss above this many times ln V: diverged
DIVERGE_OVER_FIRST = 2.0  # after epoch 1: above ln V *and* this many times epoch 1's loss: diverged


def divergence(loss: float, epoch: int, first: float | None, vocab_size: int | None) -> str | None:
    """Why an epoch's mean training loss (per target token) says the run diverged; None when it does not.

    1. NaN or infinite.
    2. Above ``DIVERGE_OVER_UNIFORM`` x ln V, the cross-entropy of guessing uniformly over the V output tokens:
       a model that learns anything is below ln V, and one whose updates blew its logits up is far above it.
    3. After the first epoch: above ln V and above ``DIVERGE_OVER_FIRST`` x the first epoch's loss -- training
       has undone itself (a late explosion), worse than guessing and than where it started. Both bounds
       together keep a run that merely stalls near ln V, or wobbles a little above a tiny loss, ok.

    Rules 2 and 3 need ``vocab_size``; without it only rule 1 applies.
    """
    if not math.isfinite(loss):
        return f"loss is {loss} in epoch {epoch}"
    if not vocab_size or vocab_size < 2:
        return None
    uniform = math.log(vocab_size)
    if loss > DIVERGE_OVER_UNIFORM * uniform:
        return (f"loss {loss:.4g} in epoch {epoch} is over {DIVERGE_OVER_UNIFORM:g}x the loss of guessing uniformly "
                f"(ln {vocab_size} = {uniform:.3g})")
    if first is not None and epoch > 1 and loss > uniform and loss > DIVERGE_OVER_FIRST * first:
        return (f"loss {loss:.4g} in epoch {epoch} is above the loss of guessing uniformly (ln {vocab_size} = {uniform:.3g}) "
                f"and over {DIVERGE_OVER_FIRST:g}x epoch 1's ({first:.4g})")
    return None


@dataclass
class Epoch:
    epoch: int
    train_s: float  # training time of this epoch (device-synchronised)
    eval_s: float  # validation decoding and scoring
    loss: float  # mean cross-entropy per target token
    tokens: int  # target tokens trained on (EOS included, padding not)
    examples: int
    valid_exact_match: float
    valid_token_accuracy: float
    train_cum_s: float  # training time so far
    wall_cum_s: float  # training + evaluation so far


@dataclass
class FitResult:
    epochs: list[Epoch] = field(default_factory=list)
    time_to_target_s: float | None = None  # training time until validation first reached the target
    wall_to_target_s: float | None = None  # the same with evaluation time included
    stopped: str = ""  # target | epochs | time_budget

    def history(self) -> list[dict]:
        return [asdict(e) for e in self.epochs]


class Parallel(Protocol):
    """Hooks for data-parallel training (``bench.runner.ddp``); ``fit`` without them is one process.

    The global batch list is built on every rank from the run's seed; ``split`` gives this rank its rows of
    each global batch and the loss divisor that makes the averaged gradients the full batch's gradient.
    """

    def split(self, train: Encoded, b: Batch) -> tuple[Batch, float]: ...

    def all_reduce(self, values: list[float], op: str) -> list[float]: ...  # op: sum | max | mean


def make_step(model: Seq2Seq, cfg: TrainConfig, device: torch.device, rows: int | None = None, total_steps: int | None = None) -> Callable:
    """One optimisation step as a closure: batch -> summed loss (a device tensor, never read here).

    ``cfg.capture`` picks how it is launched (``bench.train.capture``): eager, compiled, or a CUDA graph per
    bucket shape (``rows``: the batch size graphs are captured at; default ``cfg.batch_size``). The recipe
    (``bench.train.optim``): Adam, or AdamW with weight decay; label smoothing in the loss; a learning-rate schedule
    over ``total_steps`` updates (needed when the rate changes, ``cfg.scheduled``). The loss returned is the one
    trained on (smoothed, when smoothing).
    """
    if cfg.graph:
        return GraphStep(model, cfg, device, rows or cfg.batch_size, compiled=cfg.capture == "compile-cudagraph", total_steps=total_steps)
    if cfg.capture == "compile":
        model = compile_model(model, device)
    opt = optimizer(model.parameters(), cfg)
    sched = schedule(opt, cfg, total_steps)
    smooth = {"label_smoothing": cfg.label_smoothing} if cfg.label_smoothing else {}
    prec = Precision(cfg.amp)
    autocast = prec.autocast(device)
    scaler = prec.scaler(device)

    def step(b, denom: float | None = None) -> torch.Tensor:
        with autocast():
            logits = model(b.src, b.src_mask, b.tgt_in)
        loss_sum = loss_fn(logits, b.tgt_out, reduction="sum", **smooth)
        n = (b.tgt_out != PAD).sum()
        loss = loss_sum / (n if denom is None else denom)
        opt.zero_grad(set_to_none=True)
        if sched is not None:
            sched.step()
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
        return loss_sum.detach()

    return step


PROGRESS_EVERY = 16  # batches between progress updates: a display, not a per-step host cost


def _epoch_batches(train: Encoded, batch_size: int, gen: torch.Generator, device: torch.device,
                   parallel: Parallel | None) -> tuple[list[tuple[Batch, float | None]], int]:
    """One epoch's batches in training order, on ``device`` (pinned, non-blocking copies on CUDA), with the
    target tokens they hold (counted from CPU lengths: no device sync). Under DDP: this rank's rows and the
    global loss divisor of each."""
    out: list[tuple[Batch, float | None]] = []
    tokens = 0
    for b in batches(train, batch_size, shuffle=True, generator=gen):
        denom = None
        if parallel is None:
            tokens += int(train.tgt_len[b.index].sum())
        else:  # this rank's rows of the global batch
            b, denom = parallel.split(train, b)
            tokens += b.target_tokens
        out.append((b.pin().to(device) if device.type == "cuda" else b, denom))
    return out, tokens


def fit(
    model: Seq2Seq,
    train: Encoded,
    valid: Encoded,
    cfg: TrainConfig,
    device: torch.device,
    seed: int,
    on_epoch: Callable[[Epoch], None] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    parallel: Parallel | None = None,
    vocab_size: int | None = None,
) -> FitResult:
    """Train ``model`` (already on ``device``) and evaluate on ``valid`` after every epoch.

    ``vocab_size``: the size of the model's output vocabulary, for the divergence rule (``divergence``).

    Each epoch's batches are built, counted and moved to the device before its clock starts, so the timed
    loop does what a hand-written loop does and nothing more: step, accumulate the loss on the device, and
    (every ``PROGRESS_EVERY`` batches) tell the progress display.
    """
    n_batches = math.ceil(len(train) / cfg.batch_size)
    step = make_step(model, cfg, device, total_steps=cfg.epochs * n_batches)
    gen = torch.Generator().manual_seed(seed)  # batch order: a function of the run's seed alone
    result = FitResult()
    train_cum = wall_cum = 0.0
    autocast = Precision(cfg.amp).autocast(device)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        todo, tokens = _epoch_batches(train, cfg.batch_size, gen, device, parallel)  # before the clock
        watch = Stopwatch(device)
        watch.start()
        loss_sum = torch.zeros((), device=device)
        for i, (b, denom) in enumerate(todo):
            loss_sum += step(b) if denom is None else step(b, denom)
            if on_batch is not None and ((i + 1) % PROGRESS_EVERY == 0 or i + 1 == n_batches):
                on_batch(i + 1, n_batches)
        train_s = watch.stop()
        if parallel is not None:  # the global loss and tokens; the slowest rank's time (every rank stops alike)
            loss_sum, tokens_f = (torch.tensor(v) for v in parallel.all_reduce([float(loss_sum), float(tokens)], "sum"))
            tokens, train_s = int(tokens_f), parallel.all_reduce([train_s], "max")[0]
        loss = float(loss_sum) / max(tokens, 1)
        why = divergence(loss, epoch, result.epochs[0].loss if result.epochs else None, vocab_size)
        if why is not None:
            raise Diverged(why)
        t0 = time.perf_counter()
        ev: EvalResult = evaluate(model, valid, device, cfg.eval_batch_size, autocast=autocast)
        eval_s = time.perf_counter() - t0
        if parallel is not None:  # the stop decision must be the same on every rank
            ev.exact_match, ev.token_accuracy = parallel.all_reduce([ev.exact_match, ev.token_accuracy], "mean")
        train_cum += train_s
        wall_cum += train_s + eval_s
        rec = Epoch(epoch, train_s, eval_s, loss, tokens, len(train), ev.exact_match, ev.token_accuracy, train_cum, wall_cum)
        result.epochs.append(rec)
        if on_epoch is not None:
            on_epoch(rec)
        if cfg.target is not None and ev.exact_match >= cfg.target:
            result.time_to_target_s, result.wall_to_target_s = train_cum, wall_cum
            result.stopped = "target"
            break
        if cfg.time_budget_s is not None and train_cum >= cfg.time_budget_s:
            result.stopped = "time_budget"
            break
    else:
        result.stopped = "epochs"
    return result


def train_step_flops(model: torch.nn.Module, batch: Batch) -> int:
    """FLOPs of forward + loss + backward on ``batch`` (the optimizer's elementwise update is not counted)."""
    was = model.training
    model.train()
    with counter() as fc:
        logits = model(batch.src, batch.src_mask, batch.tgt_in)
        loss_fn(logits, batch.tgt_out).backward()
    model.zero_grad(set_to_none=True)
    model.train(was)
    return int(fc.get_total_flops())

