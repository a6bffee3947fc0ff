"""The one catalogue of metrics: name, unit, which direction is better, how it is shown.

Export, report and compare all read it from here (asv and pytest-benchmark keep the same separation:
the results and what they mean are declared once, the code that publishes them only looks them up). A
metric's ``name`` is its column in the tidy frame (``bench.results.tidy.runs_frame``); its stored value is
in base units (a fraction, seconds, bytes) and ``scale`` turns it into the unit people read (%, ms, MiB).

Also here, because every consumer must agree on it: the first epoch of a run carries the warm-up
(allocator growth, cuDNN autotuning, ``torch.compile``), so steady-state figures exclude it (``steady``).
"""

from __future__ import annotations

import math
import numbers
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Metric:
    name: str  # column of the tidy frame, key of a run's stored metrics
    label: str  # column header for people
    unit: str  # the unit people read ("%", "ms", "MiB", "tokens/s", ...)
    better: str | None  # "high" | "low" | None (a property, not a score: parameters, FLOPs)
    kind: str  # quality | speed | memory | cost: what compare's thresholds apply to
    fmt: str  # format of the displayed value
    scale: float = 1.0  # stored value x scale = displayed value
    all_seeds: bool = False  # a group has the figure only when every seed has it (time to target)
    # The name the field gives the figure for a kind of target token (a run's ``target_unit``): a token error rate
    # over phones is a PER, over characters a CER, over words a WER. Unlisted units keep ``label``.
    labels: tuple[tuple[str, str], ...] = ()

    def label_for(self, unit: str | None) -> str:
        """The header for runs whose target tokens are ``unit`` (char, phone, word, subword); ``label`` otherwise."""
        return dict(self.labels).get(unit or "", self.label)

    def display(self, v: Any) -> float | None:
        """Stored value -> displayed number (None for a missing or non-numeric value)."""
        f = finite(v)
        return None if f is None else f * self.scale

    def format(self, shown: float | None) -> str:
        """A displayed number -> text; "–" when missing."""
        return "–" if shown is None or (isinstance(shown, float) and math.isnan(shown)) else self.fmt.format(shown)


def finite(v: Any) -> float | None:
    """The one reading of a stored number: a finite float, or None.

    None for a missing value, a flag (``True`` is not 1), text (``"0.5"`` too: a number is stored as a number),
    NaN and the infinities (a figure that is not one: a division by a zero time, a diverged loss), and anything
    ``float`` does not take. Export, the catalogue's display, calibrations, baseline files and compare all read
    a stored value through here, so they agree on which values are figures.
    """
    if v is None or isinstance(v, (bool, str)):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def finite_as_stored(v: Any) -> int | float | None:
    """``finite``, with an integer kept an integer: what compare keeps per seed and a baseline file writes
    (``"params": 50000``, not ``50000.0``)."""
    f = finite(v)
    return None if f is None else int(v) if isinstance(v, numbers.Integral) else f


CATALOGUE: tuple[Metric, ...] = (
    Metric("test_exact_match", "exact match %", "%", "high", "quality", "{:.1f}", 100),
    Metric("test_token_accuracy", "token acc %", "%", "high", "quality", "{:.1f}", 100),
    Metric("alignment", "alignment %", "%", "high", "quality", "{:.1f}", 100),
    # Against the closest reference, at corpus level (bench.train.scores; Phonetisaurus's calculateER.py): token
    # edits over the chosen references' length, and the share of sources not exactly right.
    Metric("test_ter", "token error %", "%", "low", "quality", "{:.2f}", 100,
           labels=(("char", "CER %"), ("phone", "PER %"), ("word", "WER %"), ("subword", "TER %"))),
    Metric("test_ser", "sequence error %", "%", "low", "quality", "{:.2f}", 100,
           labels=(("phone", "WER % (words)"), ("word", "SER % (sentences)"))),
    # sacrebleu's corpus BLEU and chrF for text targets (word and subword units), stored as fractions of 100.
    Metric("test_bleu", "BLEU", "BLEU", "high", "quality", "{:.1f}", 100),
    Metric("test_chrf", "chrF", "chrF", "high", "quality", "{:.1f}", 100),
    Metric("params", "params", "parameters", None, "cost", "{:,.0f}"),
    Metric("flops_per_token", "FLOPs/token", "FLOP", None, "cost", "{:,.3g}"),
    Metric("mfu", "MFU %", "%", "high", "cost", "{:.1f}", 100),
    Metric("train_tokens_per_s", "train tok/s", "tokens/s", "high", "speed", "{:,.0f}"),
    Metric("s_per_epoch", "s/epoch", "s", "low", "speed", "{:.2f}"),
    Metric("time_to_target_s", "time to target s", "s", "low", "speed", "{:.1f}", all_seeds=True),
    Metric("decode_latency_b1_s", "decode b=1 ms", "ms", "low", "speed", "{:.2f}", 1000),
    Metric("decode_latency_batch_s", "decode batch ms", "ms", "low", "speed", "{:.2f}", 1000),
    Metric("peak_memory_bytes", "peak MiB", "MiB", "low", "memory", "{:,.0f}", 1 / 2**20),
    # throughput runs (fixed-shape steps after warm-up; bench.train.throughput)
    Metric("step_s", "step ms", "ms", "low", "speed", "{:.2f}", 1000),
    Metric("decode_s_per_token_b1", "decode b=1 ms/token", "ms", "low", "speed", "{:.3f}", 1000),
    Metric("decode_s_per_token_batch", "decode batch ms/token", "ms", "low", "speed", "{:.3f}", 1000),
    # what greedy decoding carries between steps (models' decode_state: a recurrent state, or a KV cache and the
    # encoder memory), at batch 1 and the decode batch, for the run's decode length: flat in the output length for
    # a recurrence, growing with it for a KV cache. Counted from the tensors, so the same on every device.
    Metric("decode_state_bytes_b1", "decode state b=1 KiB", "KiB", "low", "memory", "{:,.1f}", 1 / 2**10),
    Metric("decode_state_bytes_batch", "decode state batch KiB", "KiB", "low", "memory", "{:,.1f}", 1 / 2**10),
    # CUDA only: the allocator's peak during one decode above what was allocated before it (state + activations)
    Metric("decode_peak_bytes_b1", "decode peak b=1 MiB", "MiB", "low", "memory", "{:,.2f}", 1 / 2**20),
    Metric("decode_peak_bytes_batch", "decode peak batch MiB", "MiB", "low", "memory", "{:,.2f}", 1 / 2**20),
)
MODES = ("quality", "throughput")  # time-to-quality runs and throughput runs: never in one table or one average
BY_NAME: dict[str, Metric] = {m.name: m for m in CATALOGUE}


def metric(name: str) -> Metric:
    return BY_NAME[name]


def of_kind(*kinds: str) -> tuple[Metric, ...]:
    return tuple(m for m in CATALOGUE if m.kind in kinds)


def steady(epochs: Sequence[T]) -> list[T]:
    """The epochs a steady-state figure rests on: all but the first, which carries the warm-up.

    A one-epoch run has only its first epoch; it is used rather than reporting nothing.
    """
    return list(epochs[1:]) or list(epochs)


def s_per_epoch(epoch_seconds: Any) -> float | None:
    """Median training seconds of the steady epochs, or None without epochs."""
    if not isinstance(epoch_seconds, (list, tuple)) or not epoch_seconds:
        return None
    return float(statistics.median(steady(epoch_seconds)))


def steady_rates(epochs: Sequence[dict[str, Any]] | Sequence[Any]) -> dict[str, float | None]:
    """Tokens/s and examples/s over the steady epochs of a history (records with train_s, tokens, examples)."""
    st = steady(epochs)

    def get(e: Any, k: str) -> float:
        return float(e[k] if isinstance(e, dict) else getattr(e, k))

    train_s = sum(get(e, "train_s") for e in st)
    if not st or train_s <= 0:
        return {"train_tokens_per_s": None, "train_examples_per_s": None}
    return {"train_tokens_per_s": sum(get(e, "tokens") for e in st) / train_s,
            "train_examples_per_s": sum(get(e, "examples") for e in st) / train_s}


def mfu(flops_per_token: float | None, tokens_per_s: float | None, peak_flops: float | None) -> float | None:
    """Model FLOPs utilisation: achieved FLOP/s over the peak (measured in the precision used)."""
    if not flops_per_token or not tokens_per_s or not peak_flops:
        return None
    return flops_per_token * tokens_per_s / peak_flops
