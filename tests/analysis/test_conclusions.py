"""What a set of runs lets one conclude: a leader only where its interval clears the runner-up's, never from one
seed, never speed on a busy machine."""

from __future__ import annotations

import json

import pandas as pd

from bench.analysis import conclusions
from bench.analysis.stats import summarize


def _runs(rows: list[tuple[str, int, float, float]], task: str = "date", session: str = "s1", **config: object) -> pd.DataFrame:
    """(model, seed, exact match, tokens/s) -> a tidy frame as ``runs_frame`` gives it."""
    cfg = {"data": {"task": task}, "train": {"epochs": 5, **config}, "size": "small"}
    return pd.DataFrame([{"session": session, "task": task, "model": m, "size": "small", "seed": s, "status": "ok", "mode": "quality",
                          "model_options": "{}", "config": json.dumps({**cfg, "model": m}), "device": "cpu",
                          "test_exact_match": acc, "train_tokens_per_s": tok} for m, s, acc, tok in rows])


def test_one_seed_names_no_leader_however_far_apart() -> None:
    h, = conclusions.headlines(_runs([("gnmt", 0, 0.996, 9000.0), ("attention", 0, 0.30, 16000.0), ("ntm", 0, 0.18, 3000.0)]))
    assert not h.accurate.separable and h.accurate.why_not() == "one seed"
    assert h.accurate.leader.label == "gnmt"  # ordered all the same: the text shows the highest first
    text = conclusions.ranking_text(h.accurate)
    assert text.startswith("not separable (one seed): gnmt 99.6 %, then attention 30.0 %")


def test_separate_intervals_name_the_leader_with_both_intervals() -> None:
    rows = [("gnmt", s, a, 9000.0 + s) for s, a in enumerate((0.99, 0.995, 0.992))]
    rows += [("attention", s, a, 16000.0 + 10 * s) for s, a in enumerate((0.90, 0.91, 0.905))]
    h, = conclusions.headlines(_runs(rows))
    assert h.accurate.separable and h.accurate.leader.label == "gnmt"
    assert conclusions.ranking_text(h.accurate).startswith("gnmt 99.2 % [")
    assert ", ahead of attention 90.5 % [" in conclusions.ranking_text(h.accurate)
    assert h.fastest.separable and h.fastest.leader.label == "attention"


def test_overlapping_intervals_and_ties_are_not_separable() -> None:
    rows = [("a", s, x, 1.0) for s, x in enumerate((0.5, 0.7, 0.6))] + [("b", s, x, 1.0) for s, x in enumerate((0.55, 0.65, 0.58))]
    h, = conclusions.headlines(_runs(rows))
    assert not h.accurate.separable and h.accurate.why_not() == "intervals overlap"
    zeros = [(m, s, 0.0, 1.0) for m in ("a", "b", "c", "d") for s in range(3)]  # four models at 0.0 %: nobody is best
    h, = conclusions.headlines(_runs(zeros))
    assert not h.accurate.separable


def test_the_rule_itself() -> None:
    hi, lo = summarize([0.9, 0.91, 0.92]), summarize([0.5, 0.52, 0.51])
    assert conclusions.separated(hi, lo, "high") and not conclusions.separated(lo, hi, "high")
    assert conclusions.separated(lo, hi, "low")  # lower is better: times
    assert not conclusions.separated(summarize([0.9]), lo, "high")  # one seed: no interval


def test_a_busy_machine_blocks_the_speed_ranking_only() -> None:
    rows = [("gnmt", s, 0.99 + s / 1000, 9000.0 + s) for s in range(3)] + [("attention", s, 0.5 + s / 1000, 16000.0 + s) for s in range(3)]
    busy = {"s1": {"calibration": {"matmul_spread": 1.35, "lstm_spread": 0.2}}}
    h, = conclusions.headlines(_runs(rows), busy)
    assert h.accurate.separable
    assert not h.fastest.separable and h.fastest.why_not() == "the machine was busy, calibration spread 135%"
    quiet = {"s1": {"calibration": {"matmul_spread": 0.03, "lstm_spread": 0.04}}}
    assert conclusions.headlines(_runs(rows), quiet)[0].fastest.separable


def test_comparisons_are_kept_apart_by_task_and_shared_settings() -> None:
    a = _runs([("gnmt", 0, 0.9, 1.0), ("attention", 0, 0.8, 2.0)], task="date")
    b = _runs([("gnmt", 0, 0.1, 1.0), ("attention", 0, 0.2, 2.0)], task="addition")
    c = _runs([("gnmt", 0, 0.95, 1.0), ("attention", 0, 0.85, 2.0)], task="date", lr=0.01)
    hs = conclusions.headlines(pd.concat([a, b, c], ignore_index=True))
    assert [(h.task, h.scope) for h in hs] == [("date", "size small, lr=–"), ("date", "size small, lr=0.01"), ("addition", "size small")]


def test_session_lines_say_what_limits_the_figures() -> None:
    runs = _runs([("gnmt", 0, 0.996, 9000.0), ("attention", 0, 0.30, 16000.0)])
    env = {"calibration": {"matmul_spread": 1.35}, "suite": "quick", "suite_note": "5 epochs at one recipe"}
    text = "\n".join(conclusions.session_lines(runs, env, "s1"))
    assert "date (size small)\n    most accurate: not separable (one seed): gnmt 99.6 %" in text
    assert "One seed per model" in text and "--seeds" in text
    assert "Session s1's calibration repeats varied by 135% (max - min over median): the machine was busy" in text
    assert "no model is ranked on speed" in text
    assert "Suite quick: 5 epochs at one recipe" in text
    assert conclusions.session_lines(runs.assign(status="failed"), {}, "s1") == []
