"""Benchmark: the Transformer's KV-cached greedy decoding against uncached re-decoding.

Uncached decoding re-runs the decoder over the whole prefix at every step (O(T^2) positions in all); the
cache computes each new position once and projects the cross-attention keys/values from the memory once.
Target: cached is at least 3x faster than uncached at output length 64.

    pytest tests/benchmarks --benchmark-only -p no:cacheprovider     # pytest-benchmark tables
    python -m tests.benchmarks.test_transformer_cache [REPEATS] [THREADS]   # side-by-side ratios, one run

Random weights are fine: the work does not depend on the values. EOS is -1, an id the model can never
produce, so every row decodes the full length. Speed is compared as a ratio measured in one run, with
repeats interleaved (docs/design.md, "Speed on noisy machines").
"""

from __future__ import annotations

import statistics
import sys
import time

import pytest
import torch

import models

LENGTHS = (16, 64)
BATCHES = (1, 256)
SRC_LEN = 30  # about the longest date source
VOCAB = models.BUDGET_VOCAB
NEVER = -1  # an EOS id greedy decoding can never produce: decode the full length


def setup(batch: int, seed: int = 0) -> tuple[models.Seq2Seq, torch.Tensor, torch.Tensor]:
    """The small Transformer (random weights, eval mode) and a right-padded random source batch."""
    torch.manual_seed(seed)
    model = models.build("transformer", VOCAB, "small").eval()
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(SRC_LEN // 2, SRC_LEN + 1, (batch,), generator=g)
    mask = torch.arange(SRC_LEN).unsqueeze(0) < lengths.unsqueeze(1)
    src = torch.randint(3, VOCAB, (batch, SRC_LEN), generator=g).masked_fill(~mask, 0)
    return model, src, mask


def decode(model: models.Seq2Seq, src: torch.Tensor, mask: torch.Tensor, length: int, use_cache: bool) -> torch.Tensor:
    return model.generate(src, mask, length, 1, NEVER, use_cache=use_cache).tokens


@pytest.mark.parametrize("use_cache", [True, False], ids=["cached", "uncached"])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("length", LENGTHS)
def test_greedy_decoding(benchmark, length: int, batch: int, use_cache: bool) -> None:
    model, src, mask = setup(batch)
    benchmark.group = f"transformer-small greedy decode: length {length}, batch {batch}"
    benchmark.extra_info.update(length=length, batch=batch, use_cache=use_cache, threads=torch.get_num_threads())
    heavy = batch * length * length > 100_000  # uncached batch 256 x length 64 takes seconds per call
    tokens = benchmark.pedantic(
        decode, args=(model, src, mask, length, use_cache), rounds=3 if heavy else 10, iterations=1, warmup_rounds=1
    )
    assert tokens.shape == (batch, length)


def measure(repeats: int = 5) -> list[tuple[int, int, float, float]]:
    """(length, batch, cached median s, uncached median s) for every case; repeats interleaved."""
    rows = []
    for length in LENGTHS:
        for batch in BATCHES:
            model, src, mask = setup(batch)
            for use_cache in (True, False):  # warm-up (allocator, kernels)
                decode(model, src, mask, length, use_cache)
            times: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(repeats):
                for use_cache in (True, False):
                    t0 = time.perf_counter()
                    decode(model, src, mask, length, use_cache)
                    times[use_cache].append(time.perf_counter() - t0)
            rows.append((length, batch, statistics.median(times[True]), statistics.median(times[False])))
    return rows


def main(argv: list[str]) -> int:
    repeats = int(argv[0]) if argv else 5
    if len(argv) > 1:  # on a shared machine one thread avoids cores fighting over OpenMP spin-waits
        torch.set_num_threads(int(argv[1]))
    print(f"transformer small, greedy decoding, source length {SRC_LEN}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {repeats} interleaved repeats")
    print(f"{'length':>6} {'batch':>5} {'cached ms':>10} {'uncached ms':>12} {'speed-up':>9}")
    for length, batch, cached, uncached in measure(repeats):
        print(f"{length:>6} {batch:>5} {cached * 1e3:>10.1f} {uncached * 1e3:>12.1f} {uncached / cached:>8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
