"""Search spaces and tuning settings are checked where they are built, without torch or Optuna."""

from __future__ import annotations

import pytest

from bench.errors import UserError
from bench.spec import suite
from bench.spec.run import RunSpec, TrainConfig
from bench.spec.search import Param, TuneSettings, apply, narrow, param, parse_flag, space


@pytest.mark.parametrize("text, want", [
    ("lr=1e-4:1e-2", ("lr", [1e-4, 1e-2])), ("lr-warmup=0:40", ("lr_warmup", [0, 40])),
    ("batch_size=32,64", ("batch_size", [32, 64])), ("schedule=constant,cosine", ("schedule", ["constant", "cosine"])),
])
def test_search_flags_parse(text, want):
    assert parse_flag(text) == want


@pytest.mark.parametrize("name, value, words", [
    ("lr", [1e-2, 1e-4], "inverted"), ("lr", [1e-3, 1e-3], "empty"), ("batch_size", [], "empty"), ("lr", [0, 1e-2], "out of range"),
    ("dropout", [0.1, 1.0], "out of range"), ("lr_warmup", [0, 2.5], "integers"), ("batch_size", [32, 32], "twice"),
    ("schedule", ["linear"], "one of"), ("batch_size", [0, 8], "integers >= 1"), ("momentum", [0, 1], "unknown"),
    ("lr", 0.1, "[low, high]"),
])
def test_bad_ranges_are_refused_with_their_name(name, value, words):
    with pytest.raises(UserError, match=None) as e:
        param(name, value, f"--search {name}")
    assert words in str(e.value) and name in str(e.value)


def test_a_space_and_its_record():
    sp = space({"lr": [1e-4, 3e-3], "batch_size": [32, 64]}, "--search")
    assert [p.name for p in sp] == ["batch_size", "lr"] and sp[1].kind == "log"
    rec = TuneSettings(space=sp, given=True).record()
    assert rec["space"] == {"batch_size": {"kind": "choice", "choices": [32, 64]}, "lr": {"kind": "log", "low": 1e-4, "high": 3e-3}}
    with pytest.raises(UserError, match="empty search space"):
        space({}, "--search")


@pytest.mark.parametrize("kw, flag", [({"trials": 0}, "--trials"), ({"sampler": "grid"}, "--sampler"),
                                      ({"final_seeds": 0}, "--final-seeds")])
def test_settings_refuse_a_budget_of_zero_and_unknown_samplers(kw, flag):
    with pytest.raises(UserError, match=flag):
        TuneSettings(**kw)


def test_narrowing_intersects():
    assert narrow(Param("lr", 1e-4, 1e-2), (1e-3, 1.0), "m") == Param("lr", 1e-3, 1e-2)
    assert narrow(Param("lr_warmup", 0, None), (0, 50), "m") == Param("lr_warmup", 0, 50)
    assert narrow(Param("batch_size", choices=(32, 64, 128)), (64, 256), "m").choices == (64,)
    with pytest.raises(UserError, match="empty range"):
        narrow(Param("lr", 1e-4, 1e-3), (1e-2, 1e-1), "m")


def test_apply_sets_training_settings_and_the_dropout_option():
    base = RunSpec("attention", "tiny", 0, train=TrainConfig(lr=1e-3), model_options=(("hidden", 32),))
    t = apply(base, {"lr": 3e-3, "dropout": 0.2, "batch_size": 32}, 4)
    assert (t.seed, t.train.lr, t.train.batch_size, dict(t.model_options)) == (4, 3e-3, 32, {"hidden": 32, "dropout": 0.2})


def test_a_suites_tune_table(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('[[runs]]\ntasks = ["date"]\nmodels = ["attention"]\n[tune]\ntrials = 4\n[tune.space]\nlr = [1e-4, 1e-3]\n',
                 encoding="utf-8")
    table, _ = suite.tune_table(str(p))
    assert table["trials"] == 4 and table["space"] == {"lr": [1e-4, 1e-3]}
    assert len(suite.load(str(p))[2]) == 1  # run reads the blocks and leaves [tune] alone
    p.write_text('[[runs]]\ntasks = ["date"]\nmodels = ["attention"]\n[tune]\ntrails = 4\n', encoding="utf-8")
    with pytest.raises(UserError, match="unknown key 'trails'"):
        suite.tune_table(str(p))
