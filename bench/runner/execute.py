"""One run: build the model, train it, score it, time its decoding. -> metrics, per-epoch history, samples.

Knows nothing of the store or of other runs; ``bench.runner.session`` records what this returns.
"""

from __future__ import annotations

import datetime as dt
import os
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

import models
from bench.data import tasks
from bench.data.batching import Encoded, make_batch
from bench.data.tasks import split_overlap
from bench.data.vocab import BOS, EOS
from bench.measure.latency import call_latency
from bench.measure.memory import PeakRSS, call_peak_bytes, peak_memory_bytes, reset_peak_memory, run_peak
from bench.measure.timing import Precision
from bench.results import outputs
from bench.results.metrics import mfu, steady_rates
from bench.runner.cache import Prepared
from bench.spec.run import RunSpec, SessionConfig
from bench.train.decode import static_decoder
from bench.train.evaluate import evaluate
from bench.train.loop import Diverged, fit, make_step, train_step_flops
from bench.train.scores import TEXT_UNITS, error_rates, hypothesis, text_scores
from bench.train.seeding import seed_everything
from bench.train.throughput import OverBudget, fixed_batches, time_steps

if TYPE_CHECKING:
    from bench.runner.ddp import Group
    from bench.runner.progress import Progress


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


NEVER = -1  # an end token no model emits: a decode that must run its full length


def decode_latency(model: models.Seq2Seq, enc: Encoded, batch: int, device: torch.device, repeats: int, autocast: Callable,
                   max_len: int | None = None, full: bool = False, static: bool = False, compiled: bool = False) -> dict[str, Any]:
    """Median seconds of one greedy decode of ``batch`` inputs of ``enc``, and decoded tokens per second.

    ``full``: decode all ``max_len`` steps (a throughput figure per token must not depend on when an
    untrained model happens to emit EOS). ``static``: through the model's fixed-shape step replayed as CUDA
    graphs where it has one (``bench.train.decode.static_decoder``), built before the clock; else eagerly. ``compiled``:
    that decoder's step through ``torch.compile`` before capture.
    """
    idx = torch.arange(min(batch, len(enc)))
    b = make_batch(enc, idx).to(device)
    max_len = max_len or int(enc.tgt_len.max()) + 1
    eos = NEVER if full else EOS
    model.eval()
    decoder = static_decoder(model, len(idx), b.src.size(1), max_len, compile=compiled) if static else None

    def run() -> None:
        with torch.inference_mode():
            if decoder is not None:
                decoder(b.src, b.src_mask, BOS, eos)
            else:
                with autocast():
                    model.generate(b.src, b.src_mask, max_len, BOS, eos)

    secs = call_latency(run, device, repeats)
    with torch.inference_mode(), autocast():  # what decoding carries between steps: recurrent state or KV cache
        state = model.decode_state(b.src, b.src_mask, max_len)
    return {"seconds": secs, "tokens_per_s": len(idx) * max_len / secs,
            "capture": ("compile-cudagraph" if compiled else "cudagraph") if decoder is not None else "eager",
            "state_bytes": None if state is None else models.state_bytes(state), "peak_bytes": call_peak_bytes(run, device)}


def decode_memory(lat1: dict[str, Any], latb: dict[str, Any]) -> dict[str, Any]:
    """The decode-memory metrics of the catalogue from the two decode measurements (batch 1 and the large batch)."""
    return {"decode_state_bytes_b1": lat1["state_bytes"], "decode_state_bytes_batch": latb["state_bytes"],
            "decode_peak_bytes_b1": lat1["peak_bytes"], "decode_peak_bytes_batch": latb["peak_bytes"]}


def execute(spec: RunSpec, prep: Prepared, device: torch.device, sc: SessionConfig, progress: Progress | None = None,
            parallel: Group | None = None) -> tuple[dict, list, list]:
    """Train, evaluate and measure one run. -> (metrics, per-epoch history, attention samples).

    ``parallel``: this process is one rank of a data-parallel run (``bench.runner.ddp``, under torchrun).
    """
    if spec.throughput.enabled:
        return execute_throughput(spec, prep, device, sc, progress)
    seed_everything(spec.seed)
    model = models.build(spec.model, len(prep.vocab), spec.size, **dict(spec.model_options)).to(device)
    params = models.count_params(model)
    runnable = model
    if parallel is not None:
        runnable = parallel.wrap(runnable)
    probe = make_batch(prep.train, torch.arange(min(spec.train.batch_size, len(prep.train)))).to(device)
    flops_per_token = train_step_flops(model, probe) / max(probe.target_tokens, 1)
    reset_peak_memory(device)
    autocast = Precision(spec.train.amp).autocast(device)
    with PeakRSS() as mem:
        on_epoch = (lambda e: progress.epoch(e.epoch, e.valid_exact_match, e.train_s)) if progress else None
        on_batch = None
        if progress is not None:
            epoch_no = [1]

            def on_batch(i: int, n: int) -> None:
                progress.batch(i, n, epoch_no[0])
                if i == n:
                    epoch_no[0] += 1

        fr = fit(runnable, prep.train, prep.valid, spec.train, device, spec.seed, on_epoch=on_epoch, on_batch=on_batch, parallel=parallel,
                 vocab_size=len(prep.vocab))
        ev = evaluate(model, prep.test, device, spec.train.eval_batch_size, with_attention=True, n_samples=spec.measure.samples,
                      autocast=autocast)
        before_decode = peak_memory_bytes(device)  # the decode's own peak resets the device's; the run's is the larger
        lat1 = decode_latency(model, prep.test, 1, device, spec.measure.decode_repeats, autocast)
        latb = decode_latency(model, prep.test, spec.measure.decode_batch, device, spec.measure.decode_repeats, autocast)
    rates = steady_rates(fr.epochs)
    metrics: dict[str, Any] = {
        "mode": "quality",
        "params": params,
        "flops_per_token": flops_per_token,  # one training step (forward + backward), per target token
        "mfu": mfu(flops_per_token, rates["train_tokens_per_s"], sc.peak(spec.train.amp)),
        "epochs": len(fr.epochs),
        "stopped": fr.stopped,
        "epoch_seconds": [e.train_s for e in fr.epochs],
        "eval_seconds": [e.eval_s for e in fr.epochs],
        **rates,
        "time_to_target_s": fr.time_to_target_s,
        "wall_to_target_s": fr.wall_to_target_s,
        "target": spec.train.target,
        "final_loss": fr.epochs[-1].loss,
        "valid_exact_match": fr.epochs[-1].valid_exact_match,
        "test_exact_match": ev.exact_match,
        "test_token_accuracy": ev.token_accuracy,
        "test_n": ev.n,
        "test_by_length": ev.summary()["by_length"],
        "alignment": ev.alignment,
        **output_scores(prep, ev.predictions),
        "decode_latency_b1_s": lat1["seconds"],
        "decode_latency_batch_s": latb["seconds"],
        "decode_batch": min(spec.measure.decode_batch, len(prep.test)),
        "decode_tokens_per_s": latb["tokens_per_s"],
        **decode_memory(lat1, latb),
        **run_peak(device, mem, before_decode),
        "vocab_size": len(prep.vocab),
        "train_examples": len(prep.train),
        "data_source": prep.data.source,
        **split_overlap(prep.data),  # a file's own split may repeat test questions in training: shown beside the task
        "model_meta": models.meta_record(spec.model, spec.size, **dict(spec.model_options)),
        **task_meta(spec),
    }
    if parallel is not None:
        metrics |= parallel.metrics(metrics)
    samples = []
    for s in ev.samples:
        s = dict(s)
        s["pred"] = [prep.vocab.token(i) for i in s["pred"]]
        ex = prep.test.examples[s["row"]]
        src = prep.source.split(ex.src)  # the attention map's columns: source tokens
        s["src"] = src[::-1] if prep.test.reversed_source else src
        s["references"] = [prep.target.split(r) for r in ex.references]  # every right answer, as tokens
        samples.append(s)
    return metrics, fr.history(), samples


def output_scores(prep: Prepared, predictions: list[list[int]]) -> dict[str, Any]:
    """The test split's error rates against the closest reference (``bench.train.scores``), BLEU and chrF where the
    targets are text, the <unk> count, and every example's output (under ``outputs.KEY``: stored apart)."""
    enc, vocab = prep.test, prep.vocab
    hyps = [hypothesis(p, enc, i) for i, p in enumerate(predictions)]
    er = error_rates(hyps, enc.refs)
    out: dict[str, Any] = {"test_ter": er.token_error_rate, "test_ser": er.sequence_error_rate, "target_unit": prep.unit,
                           "test_unk_tokens": enc.unk, "test_tokens": enc.tokens, "valid_unk_tokens": prep.valid.unk}
    hyp_tokens = [[vocab.token(i) for i in h] for h in hyps]
    if prep.unit in TEXT_UNITS:
        out |= text_scores([prep.target.detokenize(h) for h in hyp_tokens],
                           [[" ".join(r.split()) for r in ex.references] for ex in enc.examples])
    rows = []
    for ex, h, d in zip(enc.examples, hyp_tokens, er.distances):
        rows.append([prep.source.join(prep.source.split(ex.src)), [prep.target.join(prep.target.split(r)) for r in ex.references],
                     prep.target.join(h), d])
    out[outputs.KEY] = rows
    return out


def execute_throughput(spec: RunSpec, prep: Prepared, device: torch.device, sc: SessionConfig,
                       progress: Progress | None = None) -> tuple[dict, list, list]:
    """A throughput run (``bench.train.throughput``): timed steps on fixed shapes, then decode time per token.

    -> (metrics, [], []): no epochs, no evaluation. Quality metrics are absent on purpose; a throughput run
    is never pooled with time-to-quality runs (its mode is part of its config).
    """
    seed_everything(spec.seed)
    tp = spec.throughput
    model = models.build(spec.model, len(prep.vocab), spec.size, **dict(spec.model_options)).to(device)
    params = models.count_params(model)
    todo = fixed_batches(prep.train, spec.train.batch_size, tp.batches, torch.Generator().manual_seed(spec.seed))
    todo = [b.pin().to(device) if device.type == "cuda" else b for b in todo]
    flops_per_token = train_step_flops(model, todo[0]) / max(todo[0].target_tokens, 1)  # on the device, where the model is
    reset_peak_memory(device)
    autocast = Precision(spec.train.amp).autocast(device)
    with PeakRSS() as mem:
        model.train()
        step = make_step(model, spec.train, device, rows=spec.train.batch_size, total_steps=tp.warmup + tp.steps)
        times = time_steps(step, todo, device, tp.warmup, tp.steps, tp.budget_s)
        dec_len = int(prep.train.tgt_len.max())  # the answer and its EOS: L + 1 tokens for a source of L
        before_decode = peak_memory_bytes(device)  # the decode's own peak resets the device's; the run's is the larger
        static = spec.train.graph
        compiled = spec.train.capture == "compile-cudagraph"
        lat1 = decode_latency(model, prep.train, 1, device, spec.measure.decode_repeats, autocast, max_len=dec_len, full=True,
                              static=static, compiled=compiled)
        latb = decode_latency(model, prep.train, spec.measure.decode_batch, device, spec.measure.decode_repeats, autocast, max_len=dec_len,
                              full=True, static=static, compiled=compiled)
    tok_s = times.tokens_per_s
    metrics: dict[str, Any] = {
        "mode": "throughput",
        "params": params,
        "flops_per_token": flops_per_token,
        "mfu": mfu(flops_per_token, tok_s, sc.peak(spec.train.amp)),
        "peak_flops": sc.peak(spec.train.amp),
        "steps": tp.steps,
        "step_s": times.median,
        "step_s_p10": times.quantile(0.1),
        "step_s_p90": times.quantile(0.9),
        "step_seconds": times.seconds,
        "train_tokens_per_s": tok_s,
        "batch_size": spec.train.batch_size,
        "src_len": int(todo[0].src.size(1)),
        "tgt_len": int(todo[0].tgt_in.size(1)),
        "tokens_per_step": times.tokens_per_step,
        "decode_len": dec_len,
        "decode_capture": lat1["capture"],
        "decode_latency_b1_s": lat1["seconds"],
        "decode_latency_batch_s": latb["seconds"],
        "decode_s_per_token_b1": lat1["seconds"] / dec_len,
        "decode_s_per_token_batch": latb["seconds"] / dec_len,
        "decode_batch": min(spec.measure.decode_batch, len(prep.train)),
        "decode_tokens_per_s": latb["tokens_per_s"],
        **decode_memory(lat1, latb),
        **run_peak(device, mem, before_decode),
        "vocab_size": len(prep.vocab),
        "model_meta": models.meta_record(spec.model, spec.size, **dict(spec.model_options)),
        **task_meta(spec),
    }
    return metrics, [], []


def task_meta(spec: RunSpec) -> dict[str, Any]:
    """``{"task_meta": {"plugin": ..., "plugin_version": ...}}`` for a run of a plugin's task (stored with the run, as the
    model's metadata is); nothing for the built-in tasks and data files."""
    rec = {} if spec.data.task_file else tasks.entry(spec.data.task).record()
    return {"task_meta": rec} if rec else {}


def failure_reason(e: BaseException) -> str:
    if isinstance(e, Diverged):
        return f"diverged: {e}"
    if isinstance(e, OverBudget):
        return f"over budget: {e}"
    if isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower():
        return f"out of memory: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    tb = traceback.extract_tb(e.__traceback__)
    where = f" at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno}" if tb else ""
    return f"{type(e).__name__}: {e}{where}"
