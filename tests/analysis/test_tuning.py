"""Tuning curves: the expected maximum against hand-computed cases, opda's bands around it, rankings with ties."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from bench.analysis import tuning

# --- the expected best of n trials ---------------------------------------------------------------------------

def test_expected_max_of_two_draws_from_two_scores_by_hand():
    # {0.2, 0.8}, two draws with replacement: max is 0.2 only if both are 0.2 (1/4): 0.2/4 + 0.8*3/4 = 0.65
    assert tuning.expected_max([0.8, 0.2], 2) == pytest.approx(0.65)


def test_expected_max_of_one_draw_is_the_mean_and_of_many_tends_to_the_best():
    s = [0.1, 0.5, 0.6, 0.9]
    assert tuning.expected_max(s, 1) == pytest.approx(sum(s) / 4)
    assert tuning.expected_max(s, 200) == pytest.approx(0.9, abs=1e-12)


def test_expected_max_with_three_scores_and_three_draws_by_hand():
    # sorted 0, 0.5, 1 (N = 3, n = 3): P(max = 1) = 1 - (2/3)^3 = 19/27; P(max = 0.5) = (2/3)^3 - (1/3)^3 = 7/27
    assert tuning.expected_max([1.0, 0.0, 0.5], 3) == pytest.approx(19 / 27 + 0.5 * 7 / 27)


def test_expected_max_equals_brute_force_enumeration_with_ties():
    s = [0.3, 0.3, 0.7, 0.9, 0.1]
    for n in (1, 2, 3):
        draws = list(itertools.product(s, repeat=n))
        assert tuning.expected_max(s, n) == pytest.approx(sum(max(d) for d in draws) / len(draws))


def test_the_curve_rises_and_refuses_nonsense():
    c = tuning.curve([0.1, 0.4, 0.35, 0.8], 6)
    assert len(c) == 6 and all(b >= a for a, b in zip(c, c[1:]))
    with pytest.raises(ValueError):
        tuning.expected_max([0.5], 0)
    with pytest.raises(ValueError):
        tuning.expected_max([], 1)


def test_trials_to_reach_99_percent_of_the_best():
    assert tuning.trials_to_reach([0.5, 0.5, 0.5]) == 1  # every trial is the best
    # two scores 0 and 1: E[max_n] = 1 - 2^-n >= 0.99 first at n = 7; with a budget of 4, not reached
    assert tuning.trials_to_reach([0.0, 1.0], budget=10) == 7
    assert tuning.trials_to_reach([0.0, 1.0], budget=4) is None


# --- confidence bands (opda) ------------------------------------------------------------------------------

def test_bands_hold_the_curve_and_stay_in_the_scores_bounds():
    pytest.importorskip("opda")
    s = [0.12, 0.55, 0.61, 0.3, 0.91, 0.47, 0.83, 0.7]
    lower, upper = tuning.bands(s, 8)
    c = tuning.curve(s, 8)
    assert len(lower) == len(upper) == 8
    assert all(0.0 <= lo <= x + 1e-12 and x <= up + 1e-12 <= 1.0 + 1e-12 for lo, x, up in zip(lower, c, upper))
    assert all(b >= a - 1e-12 for a, b in zip(upper, upper[1:]))  # a band on a rising curve rises
    assert tuning.bands(s, 8) == (lower, upper)  # deterministic
    wide = tuning.bands(s, 8, confidence=0.95)
    assert all(w[0] <= lo + 1e-12 and up <= w[1] + 1e-12 for w, lo, up in zip(zip(*wide), lower, upper))  # more confidence, wider


def test_bands_take_tied_scores():
    pytest.importorskip("opda")
    lower, upper = tuning.bands([1.0, 1.0, 0.5, 1.0], 4)
    assert upper[-1] == pytest.approx(1.0) and lower[0] <= 0.875


# --- rankings ------------------------------------------------------------------------------------------------

def test_ranks_are_competition_ranks_with_ties():
    assert tuning.ranks({"a": 0.9, "b": 0.9, "c": 0.5, "d": 0.95}) == {"d": 1, "a": 2, "b": 2, "c": 4}
    assert tuning.ordering({"a": 0.9, "b": 0.9, "c": 0.5}, ["b", "a", "c"]) == "b = a > c"


def _run(task, model, role, score, trial=None, status="ok", params=None):
    m = {"tune": {"study": f"{task}/{model}/tiny/h", "role": role, **({"trial": trial} if trial is not None else {}),
                  **({"params": params} if params else {}),
                  **({"space": {"lr": {"kind": "log", "low": 1e-4, "high": 1e-2}}} if role == "trial" else {})},
         "model_meta": {"order": {"seq2seq": 0, "attention": 2, "transformer": 4}[model]}}
    if status == "ok":
        m |= {"valid_exact_match": score, "test_exact_match": score}
    return SimpleNamespace(task=task, model=model, size="tiny", status=status, metrics=m)


def test_studies_and_a_ranking_that_changes_with_budget_and_with_tuning():
    # attention: steady (0.6 every trial); transformer: one lucky trial in four (1.0) -- ahead only with budget
    runs = [_run("date", "attention", "trial", 0.6, trial=i) for i in range(4)]
    runs += [_run("date", "transformer", "trial", s, trial=i) for i, s in enumerate([0.2, 1.0, 0.2, 0.2])]
    runs += [_run("date", "transformer", "trial", 0.0, trial=4, status="failed")]  # a failed trial scores 0
    runs += [_run("date", m, "default", s) for m, s in (("attention", 0.7), ("attention", 0.7), ("transformer", 0.5), ("transformer", 0.5))]
    runs += [_run("date", m, "tuned", s, params={"lr": 0.003}) for m, s in (("attention", 0.8), ("transformer", 0.95))]
    runs += [SimpleNamespace(task="date", model="seq2seq", size="tiny", status="ok", metrics={"test_exact_match": 0.1})]  # not a tuning run
    res = tuning.studies(runs)
    assert [s.model for s in res] == ["attention", "transformer"]
    tr = res[1]
    assert tr.scores == [0.2, 1.0, 0.2, 0.2, 0.0] and tr.best == {"lr": 0.003} and tr.default_test == [0.5, 0.5]
    (r,) = tuning.rankings(res)
    assert r.budget == 4 and sorted(r.at) == [1, 2, 4]  # the smallest common budget
    assert r.at[1] == {"attention": pytest.approx(0.6), "transformer": pytest.approx(0.4)}
    assert r.at[4]["transformer"] == pytest.approx(1 - 0.75 ** 4 * 0.8)  # 1.0 w.p. 1 - (3/4)^4, else 0.2
    assert r.changes_with_budget and r.changes_with_tuning
    assert r.winners(r.default) == ["attention"] and r.winners(r.tuned) == ["transformer"]
    text = tuning.verdict(r)
    assert "changes with the budget" in text and "the winner changes: attention -> transformer" in text
    headers, rows = tuning.ranking_rows(r)
    assert headers[1:4] == ["n = 1", "n = 2", "n = 4"] and rows[0][0] == "attention" and rows[0][1].startswith("#1")
    h, body = tuning.summary_rows(res)
    assert body[1][h.index("trials to 99% of best")] == "> 5"


def test_a_model_that_learned_nothing_has_no_trials_to_reach():
    res = [tuning.StudyResult("date", "gnmt", "tiny", "s", trials={0: 0.0, 1: 0.0})]
    h, (row,) = tuning.summary_rows(res)
    assert row[h.index("trials to 99% of best")] == "-"


def test_space_text():
    assert tuning.space_text({"lr": {"kind": "log", "low": 1e-4, "high": 0.01}, "batch_size": {"kind": "choice", "choices": [32, 64]}}) == \
        "lr log-uniform [0.0001, 0.01], batch_size in {32, 64}"
