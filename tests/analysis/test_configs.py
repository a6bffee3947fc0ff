"""Configurations: what differs between two runs, named the way a table row shows it."""

from __future__ import annotations

from bench.analysis import configs


def flat(**kw: object) -> dict:
    base = {"model": "attention", "size": "small", "model_options": {}, "train": {"amp": "off", "epochs": 5}, "data": {"task": "date"}}
    for k, v in kw.items():
        sect, name = k.split("__")
        base[sect] = {**base[sect], name: v}
    return {**configs.flatten(base), configs.DEVICE: "cpu: AMD EPYC"}


def test_labels_name_only_what_differs_people_first():
    a, b = flat(), flat(train__amp="bf16", train__epochs=10)
    assert configs.labels({"a": a, "b": b}) == {"a": "fp32, epochs=5", "b": "bf16, epochs=10"}
    gpu = {**flat(), configs.DEVICE: "cuda: NVIDIA H200"}
    assert configs.labels({"a": a, "g": gpu}) == {"a": "cpu: AMD EPYC", "g": "cuda: NVIDIA H200"}
    assert configs.labels({"a": a}) == {"a": ""}


def test_fields_left_out_at_their_default_read_as_the_default():
    compiled = flat(train__capture="compile")
    assert configs.labels({"e": flat(), "c": compiled}) == {"e": "eager", "c": "compile"}
    assert configs.diff_text(flat(), compiled) == "train.capture (absent) → compile"


def test_a_sweep_point_is_one_length_and_long_labels_are_cut():
    p16 = flat(data__train_lengths=[16, 16], data__test_lengths=[16, 16])
    p64 = flat(data__train_lengths=[64, 64], data__test_lengths=[64, 64])
    assert configs.labels({"16": p16, "64": p64}) == {"16": "length 16", "64": "length 64"}
    many = flat(train__amp="bf16", train__epochs=9, train__lr=0.1, train__clip=1.0)
    assert configs.labels({"a": flat(), "m": many})["m"] == "bf16, clip=1.0, epochs=9, +1 more"


def test_context_and_model_label():
    a = configs.without(flat(), configs.MODEL_FIELDS)
    b = configs.without({**flat(), "model": "gnmt"}, configs.MODEL_FIELDS)
    assert configs.digest(a) == configs.digest(b)  # what the models of one table share
    assert configs.model_label("attention", '{"score": "general"}') == "attention(score=general)"
    assert configs.model_label("attention", "{}") == "attention"
    assert configs.device_text("NVIDIA H200", "cuda") == "cuda: NVIDIA H200" and configs.device_text("CPU A", "cpu") == "CPU A"
