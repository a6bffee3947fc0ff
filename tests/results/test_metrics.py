"""The metric catalogue and the derivations every consumer shares, on hand-computed inputs."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from bench.results.calibration import combined_seconds
from bench.results.export import final_metrics
from bench.results.metrics import BY_NAME, CATALOGUE, finite, finite_as_stored, mfu, of_kind, s_per_epoch, steady, steady_rates

# A stored value -> what it reads as: a finite float, or None for anything that is not a figure.
READINGS = [
    (None, None),
    (True, None), (False, None),  # a flag is not 1 or 0
    ("0.5", None), ("nan", None), ("", None),  # text is not a number, even when it spells one
    (float("nan"), None), (float("inf"), None), (float("-inf"), None),
    ([1.0], None), ({"x": 1}, None), (object(), None),
    (0, 0.0), (3, 3.0), (-2, -2.0), (0.25, 0.25), (-1e-300, -1e-300),
    (np.float32(0.5), 0.5), (np.float64(float("nan")), None), (np.int64(7), 7.0), (Decimal("1.5"), 1.5),
]


def test_the_first_epoch_is_warm_up_and_is_left_out():
    assert steady([9.0, 2.0, 3.0]) == [2.0, 3.0]
    assert steady([9.0]) == [9.0]  # one epoch: the only figure there is
    assert steady([]) == []


def test_seconds_per_epoch_is_the_median_of_the_steady_epochs():
    assert s_per_epoch([100.0, 2.0, 4.0, 3.0]) == 3.0  # the 100 s warm-up epoch does not count
    assert s_per_epoch([100.0, 1.0, 1.0, 10.0]) == 1.0  # a median: one slow steady epoch (a hiccup) does not move it
    assert s_per_epoch([5.0]) == 5.0
    assert s_per_epoch([]) is None and s_per_epoch(None) is None


def test_steady_rates_divide_steady_tokens_by_steady_time():
    hist = [{"train_s": 10.0, "tokens": 100, "examples": 10},  # warm-up: 10 tok/s, excluded
            {"train_s": 2.0, "tokens": 400, "examples": 40},
            {"train_s": 2.0, "tokens": 600, "examples": 60}]
    r = steady_rates(hist)
    assert r["train_tokens_per_s"] == pytest.approx(1000 / 4)
    assert r["train_examples_per_s"] == pytest.approx(100 / 4)
    assert steady_rates([]) == {"train_tokens_per_s": None, "train_examples_per_s": None}


def test_mfu_is_achieved_over_peak_flops():
    assert mfu(6e6, 1e3, 1.2e10) == pytest.approx(0.5)
    assert mfu(None, 1e3, 1e10) is None and mfu(6e6, 1e3, None) is None and mfu(6e6, None, 1e10) is None


def test_every_metric_is_declared_once_with_a_direction_and_a_format():
    names = [m.name for m in CATALOGUE]
    assert len(names) == len(set(names))
    for m in CATALOGUE:
        assert m.better in ("high", "low", None) and m.kind in ("quality", "speed", "memory", "cost")
        assert m.format(m.display(1.0)) != "–"
    assert {m.name for m in of_kind("quality")} == {"test_exact_match", "test_token_accuracy", "alignment", "test_ter", "test_ser",
                                                    "test_bleu", "test_chrf"}


def test_display_converts_to_the_unit_people_read():
    assert BY_NAME["test_exact_match"].display(0.931) == pytest.approx(93.1)
    assert BY_NAME["decode_latency_b1_s"].display(0.0025) == pytest.approx(2.5)
    assert BY_NAME["peak_memory_bytes"].display(3 * 2**20) == pytest.approx(3.0)
    assert BY_NAME["params"].format(BY_NAME["params"].display(1234567)) == "1,234,567"
    assert BY_NAME["alignment"].display(None) is None and BY_NAME["alignment"].display("x") is None
    assert BY_NAME["alignment"].format(None) == "–"


def test_an_error_rate_is_named_by_its_target_tokens():
    """One stored figure (``test_ter``), the field's name for it per unit: PER for phones, CER for characters, WER for words."""
    ter, ser = BY_NAME["test_ter"], BY_NAME["test_ser"]
    assert [ter.label_for(u) for u in ("phone", "char", "word", "subword")] == ["PER %", "CER %", "WER %", "TER %"]
    assert ser.label_for("phone") == "WER % (words)" and ser.label_for("char") == ser.label == "sequence error %"
    assert ter.label_for(None) == ter.label and BY_NAME["test_exact_match"].label_for("phone") == "exact match %"
    assert ter.better == ser.better == "low" and BY_NAME["test_bleu"].better == "high"


@pytest.mark.parametrize("stored, number", READINGS)
def test_the_one_reading_of_a_stored_number(stored, number):
    got = finite(stored)
    assert got == number
    assert got is None or type(got) is float


@pytest.mark.parametrize("stored, number", READINGS)
def test_the_integer_keeping_reading_is_the_one_reading_with_integers_kept(stored, number):
    got = finite_as_stored(stored)
    assert got == number
    if isinstance(stored, (int, np.integer)) and number is not None:
        assert type(got) is int  # a baseline file writes 50000, not 50000.0
    else:
        assert got is None or type(got) is float
    assert finite_as_stored(2**60 + 1) == 2**60 + 1  # exact, not through a float


@pytest.mark.parametrize("stored, number", READINGS)
def test_display_export_and_calibration_read_a_number_the_one_way(stored, number):
    assert (BY_NAME["params"].display(stored) is None) == (number is None)
    assert final_metrics({"x": stored}, {}) == ({} if number is None else {"x": number})
    assert combined_seconds({"combined_s": stored}) == (number if number is not None and number > 0 else None)
