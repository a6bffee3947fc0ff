"""Suite files: expansion, overrides, and errors that name the file and key."""

from __future__ import annotations

import pytest

from bench.errors import UserError
from bench.spec import suite
from tests.conftest import TINY_SUITE


def write(tmp_path, text: str, name: str = "s.toml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# --- suites ------------------------------------------------------------------------------------------
def test_gate_suite_expands_to_every_model_on_date_and_addition_and_holds_quick_unchanged():
    """The regression gate covers every built-in model; quick (make bench) is the story's six of them, scan-trained
    recurrences aside (their CPU epochs cost minutes), with exactly the gate's settings."""
    name, _, specs = suite.load("gate")
    assert name == "gate"
    pairs = {(s.data.task, s.model) for s in specs}
    from tests.conftest import builtin_models

    assert pairs == {(t, m) for t in ("date", "addition") for m in builtin_models()}
    assert all(s.data.reverse_source for s in specs if s.data.task == "addition")
    _, _, quick = suite.load("quick")
    assert {s.model for s in quick} == {"seq2seq", "peeky", "attention", "gnmt", "transformer", "ntm"}
    assert {s.config_hash() for s in quick} <= {s.config_hash() for s in specs}


def test_every_shipped_suite_parses():
    for n in suite.available():
        _, _, specs = suite.load(n)
        assert specs, n
        assert len({s.key() for s in specs}) == len(specs)


def test_matrix_product_and_overrides(tmp_path):
    p = write(tmp_path, TINY_SUITE)
    _, _, specs = suite.load(p)
    assert [s.seed for s in specs] == [0, 1, 2]
    _, _, specs = suite.load(p, {"seeds": [7], "epochs": 3})
    assert [(s.seed, s.train.epochs) for s in specs] == [(7, 3)]


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[runs]]\ntasks=['date']\nmodels=['attention']\nbogus=1\n", "unknown key 'bogus'"),
        ("[[runs]]\ntasks=['date']\nmodels=['attention']\nepochs='ten'\n", "key 'epochs' must be an integer"),
        ("[[runs]]\ntasks=['date']\nmodels=['attention']\ntarget=5\n", "key 'target' must be in (0, 1]"),
        ("[[runs]]\ntasks=['date']\n", "key 'models' is required"),
        ("[[runs]]\nmodels=['attention']\n", "exactly one of 'tasks' or 'task_files'"),
        ("[[runs]]\ntasks=['date']\nmodels=['attention']\ntrain_lengths=[5,2]\n", "train_lengths"),
        ("colour='red'\n[[runs]]\ntasks=['date']\nmodels=['x']\n", "unknown top-level key 'colour'"),
        ("[[runs]\n", "not valid TOML"),
        ("description='no runs'\n", "at least one [[runs]] block"),
        # the keys a user writes, never the dataclass fields behind them (run_budget_s -> ThroughputSpec.budget_s)
        ("[[runs]]\ntasks=['copy']\nmodels=['attention']\nsteps=2\nrun_budget_s=0\n", "key 'run_budget_s' must be > 0"),
        ("[[runs]]\ntasks=['copy']\nmodels=['attention']\nsteps=2\nstep_batches=0\n", "key 'step_batches' must be >= 1"),
        ("[[runs]]\ntasks=['copy']\nmodels=['attention']\nwarmup_steps=2\n", "key 'warmup_steps' applies to throughput runs only"),
        ("[[runs]]\ntasks=['copy']\nmodels=['attention']\nmodel_options={dropout=nan}\n", "key 'model_options' dropout must be a finite"),
    ],
)
def test_bad_suites_name_file_and_key(tmp_path, text, message):
    p = write(tmp_path, text)
    with pytest.raises(UserError) as e:
        suite.load(p)
    assert message in str(e.value)
    assert p in str(e.value)


def test_unknown_suite_name_lists_the_known_ones():
    with pytest.raises(UserError, match="known suites: .*quick"):
        suite.load("no-such-suite")


# --- reliability ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, lengths, size",
                         [("copy-length", (16, 64, 256, 1024), "small"), ("copy-length-cpu", (4, 8, 16, 32, 64, 128), "tiny")])
def test_copy_length_suites_give_every_model_one_budget(name, lengths, size):
    """Copy at fixed lengths, every model with the same training budget (examples, epochs, batch, learning rate,
    target), the recurrences in both forms, and a length split beside the fixed lengths."""
    _, _, specs = suite.load(name)
    assert {s.data.task for s in specs} == {"copy"} and {s.size for s in specs} == {size}
    fixed = [s for s in specs if s.data.train_lengths and s.data.train_lengths[0] == s.data.train_lengths[1]]
    assert {s.data.train_lengths[0] for s in fixed} == set(lengths)
    for L in lengths:
        at = [s for s in fixed if s.data.train_lengths[0] == L]
        assert {"seq2seq", "attention", "transformer", "mingru", "minlstm", "ssm"} <= {s.model for s in at}
        assert len({(s.data.train, s.train.epochs, s.train.batch_size, s.train.lr, s.train.target) for s in at}) == 1
        assert {dict(s.model_options).get("form", "prefix") for s in at if s.model == "mingru"} == {"prefix", "cross"}
    split = [s for s in specs if s not in fixed]
    assert split and all(s.data.test_lengths[0] > s.data.train_lengths[1] for s in split)


def test_a_check_sees_each_configuration_once_before_the_seeds_are_expanded(tmp_path):
    """Cheap checks first: the runner's name check is given one run per configuration, and its refusal comes before
    the product of a block's seeds is built."""
    seeds = ", ".join(map(str, range(50_000)))
    p = write(tmp_path, f"[[runs]]\ntasks=['date', 'addition']\nmodels=['attention', 'nosuch']\nseeds=[{seeds}]\n")
    seen = []

    def check(spec):
        seen.append((spec.data.task, spec.model, spec.seed))
        if spec.model == "nosuch":
            raise UserError("unknown model 'nosuch'")

    with pytest.raises(UserError, match="nosuch"):
        suite.load(p, check=check)
    assert seen == [("date", "attention", 0), ("date", "nosuch", 0)]
    seen.clear()
    _, _, specs = suite.load(write(tmp_path, "[[runs]]\ntasks=['date']\nmodels=['attention', 'gnmt']\nseeds=[0, 1, 2]\n"), check=check)
    assert seen == [("date", "attention", 0), ("date", "gnmt", 0)] and [(s.model, s.seed) for s in specs] == [
        ("attention", 0), ("attention", 1), ("attention", 2), ("gnmt", 0), ("gnmt", 1), ("gnmt", 2)]  # the order of the product


# --- real data: the g2p suites and parallel-corpus keys -----------------------------------------------------
def test_the_g2p_suites():
    import models

    _, _, gpu = suite.load("g2p")
    assert {"seq2seq", "attention", "transformer"} <= {s.model for s in gpu} <= set(models.names()) and {s.size for s in gpu} == {"base"}
    assert {s.seed for s in gpu} == {0, 1, 2} and {s.data.task for s in gpu} == {"g2p"}
    _, _, cpu = suite.load("g2p-cpu")
    assert {s.size for s in cpu} == {"small"} and all(s.data.train_size for s in cpu)
    assert {s.model for s in cpu} == {"seq2seq", "attention", "transformer"}  # the published table's three families
    _, _, std = suite.load("g2p-standard", data_dir="/data/cmudict")
    d = std[0].data
    assert (d.task_file, d.test_file) == ("/data/cmudict/g014b2b.train", "/data/cmudict/g014b2b.test")
    assert (d.target_tokens, d.target_unit, d.name) == ("space", "phone", "g014b2b")


def test_parallel_corpus_keys_are_relative_to_the_data_folder(tmp_path):
    p = write(tmp_path, '[[runs]]\ntask_files = ["train.src"]\ntarget_file = "train.tgt"\ntest_file = "/abs/test.src"\n'
                        'models = ["attention"]\nsource_tokens = "space"\n')
    _, _, (s,) = suite.load(p, data_dir="/d")
    assert (s.data.task_file, s.data.target_file, s.data.test_file, s.data.source_tokens) == ("/d/train.src", "/d/train.tgt",
                                                                                              "/abs/test.src", "space")
    two = write(tmp_path, '[[runs]]\ntask_files = ["a.tsv", "b.tsv"]\ntest_file = "t.tsv"\nmodels = ["attention"]\n', "two.toml")
    with pytest.raises(UserError, match="test_file belong to one training file"):
        suite.load(two)
    bad = write(tmp_path, '[[runs]]\ntask_files = ["a.tsv"]\nsentencepiece_vocab = "big"\nmodels = ["attention"]\n', "bad.toml")
    with pytest.raises(UserError, match="bad.toml.*sentencepiece_vocab"):
        suite.load(bad)
