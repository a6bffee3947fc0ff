"""Run specs check every value where they are built, so no door (flags, suite files, Ray, DDP) lets one through."""

from __future__ import annotations

import math

import pytest

from bench.errors import UserError
from bench.spec.run import DataSpec, MeasureSpec, RunSpec, SessionConfig, SpecError, TrainConfig, parse_device


@pytest.mark.parametrize("kw, key", [
    ({"lr": math.nan}, "lr"), ({"lr": math.inf}, "lr"), ({"lr": 0.0}, "lr"), ({"lr": -1e-3}, "lr"),
    ({"epochs": 0}, "epochs"), ({"epochs": 1.5}, "epochs"), ({"epochs": True}, "epochs"), ({"batch_size": 0}, "batch_size"),
    ({"clip": 0.0}, "clip"), ({"target": 0.0}, "target"), ({"target": 1.5}, "target"), ({"time_budget_s": -5.0}, "time_budget_s"),
    ({"amp": "fp8"}, "amp"), ({"eval_batch_size": 0}, "eval_batch_size"),
])
def test_training_values_are_refused_with_their_key(kw, key):
    with pytest.raises(SpecError) as e:
        TrainConfig(**kw)
    assert e.value.key == key and str(e.value).startswith(f"training: {key} must be")


def test_valid_training_values_pass_and_target_one_is_allowed():
    assert TrainConfig(target=1.0, time_budget_s=3.0, amp="bf16").target == 1.0
    assert TrainConfig(target=None).target is None


@pytest.mark.parametrize("kw", [{"train": 0}, {"seed": -1}, {"train_size": 0}, {"train_lengths": (5, 2)}, {"test_lengths": (0, 3)}])
def test_data_values_are_refused(kw):
    with pytest.raises(SpecError):
        DataSpec(**kw)


def test_measure_and_run_values_are_refused():
    with pytest.raises(SpecError):
        MeasureSpec(decode_batch=0)
    with pytest.raises(SpecError):
        RunSpec("attention", "tiny", seed=-1)
    with pytest.raises(SpecError):
        RunSpec("attention", "tiny", seed=0, model_options=(("dropout", math.nan),))


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_names_parse(name):
    assert parse_device(name) == name and SessionConfig(device=name).device == name


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "mps", "", "CPU"])
def test_bad_device_names_are_refused_without_torch(name):
    with pytest.raises(UserError, match="unknown device"):
        SessionConfig(device=name)


def test_threads_must_be_positive():
    with pytest.raises(SpecError):
        SessionConfig(threads=0)


def test_the_key_identifies_the_config_but_not_the_seed():
    a, b = RunSpec("attention", "tiny", 0), RunSpec("attention", "tiny", 1)
    assert a.config_hash() == b.config_hash() and a.key() != b.key()
    c = RunSpec("attention", "tiny", 0, train=TrainConfig(amp="bf16"))
    assert c.config_hash() != a.config_hash()


# --- parallel corpora and tokens: new data options move no stored key -----------------------------------------

NEW_DATA = {"target_file": "x.tgt", "valid_file": "v.src", "test_file": "t.src", "source_tokens": "space", "target_tokens": "sentencepiece",
            "sentencepiece_type": "bpe", "sentencepiece_vocab": 500, "target_unit": "phone"}


def test_new_data_options_appear_in_the_config_only_away_from_their_defaults():
    from bench.spec.run import DataSpec, RunSpec

    plain = RunSpec("attention", "tiny", 0).config()["data"]
    assert set(plain) == {"task", "task_file", "seed", "train", "valid", "test", "train_size", "reverse_source", "train_lengths",
                          "test_lengths"}
    files = RunSpec("attention", "tiny", 0, data=DataSpec(task="x", task_file="x.src", **NEW_DATA)).config()["data"]
    assert {k: files[k] for k in NEW_DATA} == NEW_DATA
    g2p = RunSpec("attention", "tiny", 0, data=DataSpec(task="g2p", keep_stress=True))
    assert g2p.config()["data"]["keep_stress"] is True and g2p.key() != RunSpec("attention", "tiny", 0, data=DataSpec(task="g2p")).key()


@pytest.mark.parametrize("kw, key", [
    ({"source_tokens": "words"}, "source_tokens"), ({"target_tokens": "bytes"}, "target_tokens"),
    ({"task_file": "a.tsv", "source_tokens": "sentencepiece", "sentencepiece_type": "wordpiece"}, "sentencepiece_type"),
    ({"task_file": "a.tsv", "source_tokens": "sentencepiece", "sentencepiece_vocab": 0}, "sentencepiece_vocab"),
    ({"sentencepiece_vocab": 200}, "sentencepiece_vocab"),  # no side is sentencepiece: the option would change nothing
    ({"target_unit": "morpheme"}, "target_unit"), ({"keep_stress": True}, "keep_stress"), ({"test_file": "t.tsv"}, "test_file"),
    ({"task": "g2p", "task_file": "a.tsv", "keep_stress": True}, "keep_stress"),
])
def test_data_token_options_are_refused_with_their_key(kw, key):
    from bench.spec.run import DataSpec, SpecError

    with pytest.raises(SpecError) as e:
        DataSpec(**kw)
    assert e.value.key == key
