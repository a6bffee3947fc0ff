"""Regression tracking: verdicts, thresholds, machine normalisation, baselines, exit codes.

Sessions are hand-made in a temporary store (hand-chosen metrics, no model runs), so every expected
verdict can be worked out by hand.
"""

from __future__ import annotations

import json
import os
import re

import pytest
import torch

from bench import cli
from bench.errors import UserError
from bench.measure.calibrate import calibrate
from bench.regress.compare import compare, compare_refs
from bench.regress.sides import load_baseline, save_baseline, side_from_store
from bench.regress.thresholds import Thresholds, parse_fail_on
from bench.regress.verdicts import quality_verdict, ratio_verdict
from bench.results.calibration import combined_seconds
from bench.results.store import Store
from tests.factories import run_record

ENV = {"device_name": "Test CPU", "device_type": "cpu", "torch": "2.13.0+cpu", "threads": 2, "cuda": None}
METRICS = {
    "test_exact_match": 0.90,
    "test_token_accuracy": 0.95,
    "alignment": 0.80,
    "train_tokens_per_s": 1000.0,
    "epoch_seconds": [3.0, 1.0, 1.0],  # the first epoch (warm-up) is left out of s/epoch
    "decode_latency_batch_s": 0.10,
    "decode_latency_b1_s": 0.01,
    "time_to_target_s": 2.0,
    "peak_memory_bytes": 400 * 2**20,
    "params": 50_000,
}


def add_session(store: Store, sid: str, cal: float | None = 0.1, status: str = "finished", **env: object) -> None:
    e = {**ENV, **env}
    if cal is not None:
        e["calibration"] = {"combined_s": cal, "matmul_s": cal, "lstm_s": cal, "version": 1}
    store.add_session(sid, f"2025-01-01T00:00:{len(store.sessions()):02d}+00:00", "quick", "test", e)
    store.finish_session(sid, "2025-01-01T01:00:00+00:00", status)


def add_run(store: Store, sid: str, model: str = "attention", seed: int = 0, task: str = "date", status: str = "ok",
            error: str | None = None, options: dict | None = None, amp: str = "off", epochs: int = 5, **metrics: object) -> None:
    m = {} if status != "ok" else {**METRICS, **metrics}
    cfg = {"model_options": options or {}, "train": {"amp": amp, "epochs": epochs}}
    h = "h" if (amp, epochs) == ("off", 5) else f"h-{amp}-{epochs}"  # the runner hashes the config less the seed
    store.add_run(run_record(session=sid, task=task, model=model, seed=seed, config=cfg, config_hash=h, status=status, error=error,
                             metrics=m))


def scaled(k: float) -> dict:
    """Speed metrics of a machine (or code) ``k`` times slower."""
    return {"train_tokens_per_s": 1000.0 / k, "epoch_seconds": [3.0 * k, 1.0 * k, 1.0 * k], "decode_latency_batch_s": 0.10 * k,
            "decode_latency_b1_s": 0.01 * k, "time_to_target_s": 2.0 * k}


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "bench.sqlite"))
    yield s
    s.close()


def verdicts(c, model: str = "attention") -> dict[str, str]:
    return {r.metric: r.verdict for r in c.rows if r.model == model}


def sides(store: Store, a: str = "A", b: str = "B"):
    return side_from_store(store.path, a), side_from_store(store.path, b)


# --- --fail-on ----------------------------------------------------------------------------------------
def test_fail_on_defaults_and_parsing():
    assert parse_fail_on(None) == Thresholds(time=0.25, accuracy=0.5, memory=0.20)
    assert parse_fail_on("time:+10%,accuracy:-0.5pt,memory:+20%") == Thresholds(0.10, 0.5, 0.20)
    assert parse_fail_on("time:10%") == Thresholds(0.10, 0.5, 0.20)  # the others keep their defaults
    assert parse_fail_on(" accuracy : -1pp , time:off ") == Thresholds(None, 1.0, 0.20)


@pytest.mark.parametrize("bad, why", [
    ("speed:+10%", "unknown category"),
    ("time:-10%", "increase"),
    ("memory:20", "percent"),
    ("accuracy:-0.5%", "percentage points"),
    ("accuracy:+1pt", "drop"),
    ("time:fast", "cannot read"),
    ("time:+10%,time:+20%", "twice"),
    ("", "empty"),
    (",", "empty"),
])
def test_fail_on_errors(bad, why):
    with pytest.raises(UserError, match=why):
        parse_fail_on(bad)


# --- verdict logic ------------------------------------------------------------------------------------
def test_quality_verdict_uses_seed_spread():
    # one seed each: the threshold alone decides
    assert quality_verdict((90.0, 0.0, 1), (89.0, 0.0, 1), 0.5)[0] == "worse"
    assert quality_verdict((90.0, 0.0, 1), (90.4, 0.0, 1), 0.5)[0] == "same"
    assert quality_verdict((90.0, 0.0, 1), (91.0, 0.0, 1), 0.5)[0] == "better"
    # seeds spread by 5 pt: a 2 pt drop is what reseeding alone does
    v, delta, band = quality_verdict((85.0, 5.0, 3), (83.0, 5.0, 3), 0.5)
    assert (v, round(delta, 6), round(band, 6)) == ("same", -2.0, 10.0)
    assert quality_verdict((85.0, 5.0, 3), (74.0, 5.0, 3), 0.5)[0] == "worse"
    # a spread smaller than the threshold does not shrink it
    assert quality_verdict((85.0, 0.1, 3), (84.0, 0.1, 3), 0.5)[0] == "worse"
    assert quality_verdict((85.0, 5.0, 3), (70.0, 5.0, 3), None)[0] == "unchecked"


def test_an_error_rate_that_rises_is_the_regression():
    """PER, WER, CER (the catalogue says lower is better): a rise is worse, a fall better."""
    from bench.results.metrics import BY_NAME

    assert BY_NAME["test_ter"].better == BY_NAME["test_ser"].better == "low"
    assert quality_verdict((6.0, 0.0, 1), (7.0, 0.0, 1), 0.5, lower_is_better=True)[0] == "worse"
    assert quality_verdict((6.0, 0.0, 1), (5.0, 0.0, 1), 0.5, lower_is_better=True)[0] == "better"
    assert quality_verdict((6.0, 0.0, 1), (6.3, 0.0, 1), 0.5, lower_is_better=True)[0] == "same"


def test_ratio_verdict_throughput_is_judged_as_time():
    assert ratio_verdict(1.30, 0.25) == "worse"
    assert ratio_verdict(1.20, 0.25) == "same"
    assert ratio_verdict(0.70, 0.25) == "better"
    assert ratio_verdict(0.75, 0.25, higher_is_better=True) == "worse"  # tokens/s x0.75 = time x1.33
    assert ratio_verdict(0.85, 0.25, higher_is_better=True) == "same"
    assert ratio_verdict(1.50, 0.25, higher_is_better=True) == "better"


def test_identical_sessions_are_same(store):
    for sid in "AB":
        add_session(store, sid)
        for seed in (0, 1):
            add_run(store, sid, seed=seed)
    c = compare(*sides(store))
    assert {r.verdict for r in c.rows} == {"same"}
    assert c.exit_code() == 0
    assert c.normalised and not c.warnings


def test_accuracy_within_seed_spread_is_same_and_past_it_worse(store):
    add_session(store, "A")
    add_session(store, "B")
    add_session(store, "C")
    for seed, em in enumerate((0.80, 0.90, 0.85)):
        add_run(store, "A", seed=seed, test_exact_match=em)
        add_run(store, "B", seed=seed, test_exact_match=em - 0.02)  # -2 pt, spread 5 pt
        add_run(store, "C", seed=seed, test_exact_match=em - 0.15)  # -15 pt
    assert verdicts(compare(*sides(store, "A", "B")))["test_exact_match"] == "same"
    c = compare(*sides(store, "A", "C"))
    assert verdicts(c)["test_exact_match"] == "worse"
    assert c.exit_code() == 1
    row = next(r for r in c.rows if r.metric == "test_exact_match")
    assert row.change == pytest.approx(-15.0) and row.band == pytest.approx(10.0)


def test_better_and_worse_speed_and_memory(store):
    add_session(store, "A")
    add_session(store, "B")
    add_run(store, "A")
    add_run(store, "A", model="transformer")
    add_run(store, "B", **scaled(2.0))  # attention became 2x slower
    add_run(store, "B", model="transformer", **scaled(0.5), peak_memory_bytes=600 * 2**20)  # 2x faster, +50 % memory
    c = compare(*sides(store))
    slow, fast = verdicts(c, "attention"), verdicts(c, "transformer")
    for m in ("train_tokens_per_s", "s_per_epoch", "decode_latency_batch_s", "decode_latency_b1_s", "time_to_target_s"):
        assert slow[m] == "worse" and fast[m] == "better", m
    assert slow["peak_memory_bytes"] == "same" and fast["peak_memory_bytes"] == "worse"
    assert slow["test_exact_match"] == "same"
    tput = next(r for r in c.rows if r.model == "attention" and r.metric == "train_tokens_per_s")
    assert tput.change == pytest.approx(0.5)
    assert c.exit_code() == 1
    # switching the categories off turns the regressions into "unchecked"
    c2 = compare(*sides(store), parse_fail_on("time:off,memory:off"))
    assert c2.exit_code() == 0 and verdicts(c2)["s_per_epoch"] == "unchecked"


def test_failed_run_on_new_side_is_a_regression(store):
    add_session(store, "A")
    add_session(store, "B")
    for seed in (0, 1):
        add_run(store, "A", seed=seed)
    add_run(store, "B", seed=0)
    add_run(store, "B", seed=1, status="failed", error="diverged: loss is nan in epoch 2")
    c = compare(*sides(store))
    runs = next(r for r in c.rows if r.metric == "runs")
    assert (runs.verdict, runs.base, runs.new) == ("worse", "2/2", "1/2")
    assert "diverged" in runs.note
    assert c.exit_code() == 1
    # the other way round: the failure is fixed
    c2 = compare(*sides(store, "B", "A"))
    assert next(r for r in c2.rows if r.metric == "runs").verdict == "better"
    assert c2.exit_code() == 0


def test_a_pipe_or_a_line_break_in_a_failure_reason_stays_in_its_cell(store):
    add_session(store, "A")
    add_session(store, "B")
    add_run(store, "A")
    add_run(store, "B", status="failed", error="shape [2|3] mismatch\nin the decoder")
    line = next(ln for ln in compare(*sides(store)).markdown().splitlines() if "runs ok" in ln)
    assert "(seed 0: shape [2\\|3] mismatch in the decoder)" in line
    assert len(re.split(r"(?<!\\)\|", line)) == 10  # 8 cells between 9 unescaped bars


def test_resumed_retry_replaces_the_failed_run(store):
    add_session(store, "A")
    add_session(store, "B")
    add_run(store, "A")
    add_run(store, "B", status="failed", error="RuntimeError: boom")
    add_run(store, "B")  # --resume re-ran the failed key
    c = compare(*sides(store))
    assert {r.verdict for r in c.rows} == {"same"}


def test_missing_and_new_groups_are_shown_not_failures(store):
    add_session(store, "A")
    add_session(store, "B", status="interrupted")
    add_run(store, "A", model="attention")
    add_run(store, "A", model="gnmt")
    add_run(store, "B", model="attention")
    add_run(store, "B", model="transformer")
    add_run(store, "B", model="attention", options={"score": "general"})
    c = compare(*sides(store))
    assert verdicts(c, "gnmt") == {"-": "missing"}
    assert verdicts(c, "transformer") == {"-": "new"}
    assert verdicts(c, "attention(score=general)") == {"-": "new"}  # options make their own group
    assert c.exit_code() == 0
    assert any("interrupted" in w for w in c.warnings)


def test_a_comparison_where_nothing_pairs_fails(store):
    """A baseline against a session of other models: all missing, all new -- a gate that compared nothing must not pass."""
    add_session(store, "A")
    add_session(store, "B")
    for m in ("attention", "gnmt"):
        add_run(store, "A", model=m)
    add_run(store, "B", model="transformer")
    c = compare(*sides(store))
    assert c.compared() == 0 and c.exit_code() == 1
    assert "nothing compared" in c.summary_line() and "2 missing, 1 new" in c.summary_line()
    add_run(store, "B", model="attention")  # one pair is enough for the gate to have checked something
    c = compare(*sides(store))
    assert c.compared() == 1 and c.exit_code() == 0 and "no regressions" in c.summary_line()


def test_time_to_target_no_longer_reached_is_worse(store):
    add_session(store, "A")
    add_session(store, "B")
    add_run(store, "A")
    add_run(store, "B", time_to_target_s=None)
    row = next(r for r in compare(*sides(store)).rows if r.metric == "time_to_target_s")
    assert (row.verdict, row.new) == ("worse", "not reached")


# --- machine normalisation ----------------------------------------------------------------------------
def test_slower_machine_with_slower_calibration_is_same(store):
    add_session(store, "A", cal=0.1)
    add_session(store, "B", cal=0.2)  # the calibration workload took twice as long ...
    add_run(store, "A")
    add_run(store, "B", **scaled(2.0))  # ... and so did everything else
    c = compare(*sides(store))
    assert {r.verdict for r in c.rows} == {"same"}
    tput = next(r for r in c.rows if r.metric == "train_tokens_per_s")
    assert tput.change == pytest.approx(1.0)
    assert c.exit_code() == 0
    assert "machine-normalised" in c.markdown()


def test_code_slowdown_still_shows_after_normalisation(store):
    add_session(store, "A", cal=0.1)
    add_session(store, "B", cal=0.2)
    add_run(store, "A")
    add_run(store, "B", **scaled(4.0))  # machine 2x slower, code 2x slower on top
    v = verdicts(compare(*sides(store)))
    assert v["s_per_epoch"] == "worse" and v["train_tokens_per_s"] == "worse"


def test_without_calibration_speed_is_raw_and_said_so(store):
    add_session(store, "A", cal=0.1)
    add_session(store, "B", cal=None)
    add_run(store, "A")
    add_run(store, "B", **scaled(2.0))
    c = compare(*sides(store))
    assert not c.normalised
    assert verdicts(c)["s_per_epoch"] == "worse"  # raw: the 2x shows
    assert any("No calibration on the new side" in w and "RAW" in w for w in c.warnings)
    assert "RAW" in c.summary_line()


def test_implausible_or_noisy_calibration_warns(store):
    add_session(store, "A", cal=0.1)
    add_session(store, "B", cal=2.0)  # x20 on the same device model: measured under a pathological load
    add_run(store, "A")
    add_run(store, "B")
    c = compare(*sides(store))
    assert any("calibrations differ ×20.00 on the same device" in w for w in c.warnings)
    assert not any("calibrations differ" in w for w in compare(*sides(store, "A", "A")).warnings)
    base, new = sides(store)
    new.calibration = {**new.calibration, "combined_s": 0.1, "lstm_spread": 2.5}
    assert any("new side's calibration repeats varied by 250%" in w for w in compare(base, new).warnings)


def test_different_device_and_torch_warn(store):
    add_session(store, "A")
    add_session(store, "B", device_name="Other CPU", torch="2.14.0")
    add_run(store, "A")
    add_run(store, "B")
    md = compare(*sides(store)).markdown()
    assert "different devices (base Test CPU, new Other CPU)" in md
    assert "different torch versions" in md
    assert "calibrations differ" not in md  # different machines may differ by any factor
    add_session(store, "G", device_name="NVIDIA H100", device_type="cuda")
    add_run(store, "G", peak_memory_bytes=10 * 2**20)
    c = compare(*sides(store, "A", "G"))
    assert verdicts(c)["peak_memory_bytes"] == "unchecked"  # CUDA allocator peak vs process RSS
    assert any("different device types" in w for w in c.warnings)


# --- baselines ----------------------------------------------------------------------------------------
def test_baseline_round_trip(store, tmp_path):
    add_session(store, "A", cal=0.1)
    for seed, em in enumerate((0.80, 0.90)):
        add_run(store, "A", seed=seed, test_exact_match=em)
    add_run(store, "A", model="gnmt", status="failed", error="out of memory: boom")
    path, _ = save_baseline(store.path, "latest", "cpu-ci", str(tmp_path / "baselines"))
    assert path == str(tmp_path / "baselines" / "cpu-ci.json")
    text = open(path).read()
    doc = json.loads(text)
    assert text == json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"  # readable, stable diffs
    assert doc["schema_version"] == 1 and doc["format"] == "s2sbench-baseline"
    assert doc["env"]["device_name"] == "Test CPU" and "calibration" not in doc["env"]
    assert doc["calibration"]["combined_s"] == 0.1
    res = doc["results"]["date/attention/tiny"]
    assert res["seeds"]["0"]["test_exact_match"] == 0.80 and res["seeds"]["1"]["test_exact_match"] == 0.90
    assert res["seeds"]["0"]["s_per_epoch"] == 1.0
    assert res["summary"]["test_exact_match"]["n"] == 2
    assert doc["results"]["date/gnmt/tiny"]["failed"] == {"0": "out of memory: boom"}

    side = load_baseline(path)
    assert side.cal_s == 0.1 and side.group("date", "attention", "tiny").seeds[1]["test_exact_match"] == 0.90
    c = compare_refs(path, "A", store.path)
    assert c.exit_code() == 0
    assert {r.verdict for r in c.rows} == {"same"}
    assert cli.main(["compare", path, "latest", "--store", store.path]) == 0


def test_a_flag_or_text_stored_as_a_metric_is_no_figure_and_its_baseline_still_loads(store, tmp_path):
    """Stored values are read the one way (``bench.results.metrics.finite``): a flag, text or an infinity is no
    figure, so the baseline file holds null there -- a value its reader would refuse is never written."""
    add_session(store, "A")
    add_run(store, "A", test_exact_match=True, alignment="0.8", train_tokens_per_s=float("inf"))
    side = side_from_store(store.path, "A")
    g = side.group("date", "attention", "tiny")
    assert g.values("test_exact_match") == g.values("alignment") == g.values("train_tokens_per_s") == []
    assert g.values("test_token_accuracy") == [0.95] and g.seeds[0]["params"] == 50_000
    path, _ = save_baseline(store.path, "A", "odd", str(tmp_path))
    text = open(path).read()
    seed = json.loads(text)["results"]["date/attention/tiny"]["seeds"]["0"]
    assert seed["test_exact_match"] is seed["alignment"] is seed["train_tokens_per_s"] is None
    assert '"params": 50000,' in text  # an integer stays an integer
    c = compare(load_baseline(path), side)
    assert {r.verdict for r in c.rows} == {"same"} and not c.unpaired


# --- the command line ---------------------------------------------------------------------------------
def test_cli_exit_codes(store, tmp_path, capsys):
    add_session(store, "A")
    add_session(store, "B")
    add_run(store, "A")
    add_run(store, "B", **scaled(2.0))
    s = store.path
    assert cli.main(["compare", "A", "A", "--store", s]) == 0
    md_file = tmp_path / "cmp.md"
    assert cli.main(["compare", "A", "B", "--store", s, "--markdown", str(md_file)]) == 1
    out = capsys.readouterr().out
    assert "| task | model | size | metric | base | new | ratio / Δ | verdict |" in out
    assert "❌ worse" in out and "regression" in out
    assert md_file.read_text() in out
    assert cli.main(["compare", "A", "B", "--store", s, "--fail-on", "time:+150%"]) == 0
    capsys.readouterr()
    assert cli.main(["compare", "A", "B", "--store", s, "--changes-only"]) == 1
    assert "➖ same" not in capsys.readouterr().out
    # bad input: exit 2 with one line, no traceback
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"format": "something-else"}))
    for argv in (["compare", "A", "nope", "--store", s],
                 ["compare", str(bad), "A", "--store", s],
                 ["compare", str(wrong), "A", "--store", s],
                 ["compare", str(tmp_path / "absent.json"), "A", "--store", s],
                 ["compare", "A", "B", "--store", s, "--fail-on", "speed:+10%"],
                 ["compare", "A", "B", "--store", str(tmp_path / "no.sqlite")],
                 ["baseline", "save", "../evil", "--store", s, "--dir", str(tmp_path)]):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("s2sbench: error:") and err.count("\n") == 1, err


def test_cli_baseline_save(store, tmp_path, capsys):
    add_session(store, "A", cal=None)
    add_run(store, "A")
    d = tmp_path / "bl"
    assert cli.main(["baseline", "save", "ci.json", "--store", store.path, "--session", "A", "--dir", str(d)]) == 0
    assert os.path.exists(d / "ci.json")
    out = capsys.readouterr().out
    assert "no calibration" in out
    assert cli.main(["compare", str(d / "ci.json"), "A", "--store", store.path]) == 0


# --- calibration --------------------------------------------------------------------------------------
def test_calibrate_measures_and_leaves_the_rng_alone():
    torch.manual_seed(7)
    before = torch.get_rng_state()
    cal = calibrate(torch.device("cpu"), repeats=1, warmup=0)
    assert torch.equal(before, torch.get_rng_state())
    assert cal["matmul_s"] > 0 and cal["lstm_s"] > 0 and cal["matmul_gflops"] > 0
    assert cal["combined_s"] == pytest.approx((cal["matmul_s"] * cal["lstm_s"]) ** 0.5)
    assert combined_seconds(cal) == cal["combined_s"]
    assert combined_seconds(None) is None and combined_seconds({"combined_s": "x"}) is None


# --- only equal configurations pair ---------------------------------------------------------------------
def test_two_precisions_on_each_side_pair_with_their_equals(store):
    for sid in "AB":
        add_session(store, sid)
        add_run(store, sid)
        add_run(store, sid, amp="bf16", **scaled(0.5 if sid == "A" else 1.0))  # bf16 lost its 2x on the new side
    c = compare(*sides(store))
    assert verdicts(c, "attention [fp32]")["train_tokens_per_s"] == "same"  # not averaged with the bf16 run
    assert verdicts(c, "attention [bf16]")["train_tokens_per_s"] == "worse"
    assert not c.unpaired and c.count("missing") == c.count("new") == 0
    assert "| date | attention [bf16] | tiny | train tok/s |" in c.markdown()


def test_configurations_that_differ_are_not_paired_and_the_output_says_why(store):
    add_session(store, "A")
    add_session(store, "B")
    add_run(store, "A", epochs=5)
    add_run(store, "B", amp="bf16", epochs=10, **scaled(3.0))  # would be a 3x regression, were they paired
    c = compare(*sides(store))
    assert verdicts(c, "attention [fp32, epochs=5]") == {"-": "missing"}
    assert verdicts(c, "attention [bf16, epochs=10]") == {"-": "new"}
    (why,) = c.unpaired
    assert why == "date/attention/tiny: base config h and new config h-bf16-10 differ in train.amp off → bf16, train.epochs 5 → 10."
    # a gate that checks nothing fails
    assert c.exit_code() == 1 and any("1 configuration could not be paired" in w and why in w for w in c.warnings)
    assert "1 unpaired (configurations differ)" in c.summary_line()


def test_a_baseline_keeps_each_configuration_and_its_config(store, tmp_path):
    add_session(store, "A")
    add_run(store, "A")
    add_run(store, "A", amp="bf16")
    path, _ = save_baseline(store.path, "A", "two", str(tmp_path))
    doc = json.loads(open(path).read())
    assert sorted(doc["results"]) == ["date/attention/tiny/h", "date/attention/tiny/h-bf16-5"]
    assert doc["name"] == "two" and doc["results"]["date/attention/tiny/h-bf16-5"]["config"]["train"] == {"amp": "bf16", "epochs": 5}
    c = compare_refs(path, "A", store.path)
    assert {r.verdict for r in c.rows} == {"same"} and not c.unpaired
    # a baseline saved before configs were kept: pairs by hash still; where none is equal, says it cannot tell the fields
    for r in doc["results"].values():
        del r["config"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    add_session(store, "B")
    add_run(store, "B", epochs=7)
    c = compare_refs(str(old), "B", store.path)
    assert len(c.unpaired) == 2 and all("which fields is unknown" in u for u in c.unpaired)  # each base config, against the new one
    assert c.base.label.startswith("baseline two (")
    assert {r.model for r in c.rows} == {"attention [config h]", "attention [config h-bf16-5]", "attention [config h-off-7]"}


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(os.path.join(os.path.dirname(__file__), "..", "..", "results", "baselines"))
                                         if n.startswith("cpu-ci")))
def test_the_committed_baseline_pairs_every_group_with_itself(name):
    path = os.path.join(os.path.dirname(__file__), "..", "..", "results", "baselines", name)
    c = compare(load_baseline(path), load_baseline(path))
    assert not c.unpaired and c.count("missing") == c.count("new") == 0
    with open(path, encoding="utf-8") as f:
        groups = {(r["task"], r["model"]) for r in json.load(f)["results"].values()}
    assert len(groups) >= 12  # quick's twelve at least; the gate's recurrences where the baseline was recorded with them
    assert {r.verdict for r in c.rows} == {"same"} and {(r.task, r.model) for r in c.rows} == groups


def test_a_group_has_a_time_to_target_only_when_every_seed_reached_it(store):
    """The median over the seeds that reached the target would report the lucky ones: a model that reaches
    it one time in three would look as fast as one that always does."""
    add_session(store, "A")
    add_session(store, "B")
    for seed in range(3):
        add_run(store, "A", seed=seed, time_to_target_s=2.0)
        add_run(store, "B", seed=seed, time_to_target_s=1.0 if seed == 0 else None)
    base, new = sides(store)
    (gb,), (gn,) = base.groups.values(), new.groups.values()
    assert gb.median("time_to_target_s") == 2.0 and gn.median("time_to_target_s") is None
    row = next(r for r in compare(base, new).rows if r.metric == "time_to_target_s")
    assert (row.verdict, row.base, row.new) == ("worse", 2.0, "not reached")
