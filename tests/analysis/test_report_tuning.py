"""The report of a tuning session: its curves, rankings and tuned recipes; its trials summarised, not listed as runs."""

from __future__ import annotations

from bench.analysis import report
from bench.results.store import Store
from tests.analysis.test_report import metrics
from tests.factories import run_record

SPACE = {"lr": {"kind": "log", "low": 1e-4, "high": 1e-2}}


def _add(store: Store, model: str, seed: int, lr: float, note: dict, valid: float, test: float, status: str = "ok") -> None:
    cfg = {"model_options": {}, "train": {"amp": "off", "lr": lr}}
    m = metrics(test, 1000.0) | {"valid_exact_match": valid, "tune": note,
                                 "model_meta": {"order": {"attention": 2, "transformer": 4}[model]}}
    store.add_run(run_record(session="t1", key=f"date/{model}/tiny/{seed}/{lr}", model=model, seed=seed, config=cfg, config_hash=f"h{lr}",
                             status=status, error=None if status == "ok" else "diverged: loss is nan",
                             metrics=m if status == "ok" else {"tune": note},
                             history=[{"epoch": 1, "valid_exact_match": valid, "wall_cum_s": 1.0, "train_s": 1.0}]))


def test_a_tuning_sessions_report(tmp_path):
    store = Store(str(tmp_path / "r.sqlite"))
    store.add_session("t1", "2026-01-01T00:00:00", "tune:tune-cpu", "s2sbench tune", {
        "device_name": "CPU A", "device_type": "cpu",
        "tune": {"trials": 4, "sampler": "random", "seed": 0, "final_seeds": 2, "space": SPACE}})
    for model, scores in (("attention", (0.6, 0.6, 0.6, 0.6)), ("transformer", (0.2, 0.95, 0.2, 0.2))):
        for i, v in enumerate(scores):
            _add(store, model, 0, 0.001 * (i + 1), {"study": f"date/{model}/tiny/h", "role": "trial", "trial": i,
                                                    "params": {"lr": 0.001 * (i + 1)}, "space": SPACE}, v, v,
                 status="failed" if (model, i) == ("transformer", 3) else "ok")
        best = max(range(4), key=lambda i: scores[i])
        for seed in (1, 2):
            _add(store, model, seed, 0.003, {"study": f"date/{model}/tiny/h", "role": "default"}, 0.5, 0.7 if model == "attention" else 0.5)
            _add(store, model, seed, 0.001 * (best + 1), {"study": f"date/{model}/tiny/h", "role": "tuned", "trial": best,
                                                          "params": {"lr": 0.001 * (best + 1)}}, 0.9, 0.8 if model == "attention" else 0.9)
    paths = report.write(store, ["t1"], str(tmp_path / "rep"))
    md = open(paths["md"], encoding="utf-8").read()
    assert md.index("## Tuning") < md.index("## Results")
    assert "![Tuning curves](tuning_curves.png)" in md and (tmp_path / "rep" / "tuning_curves.png").exists()
    assert "Search space — date · tiny: lr log-uniform [0.0001, 0.01]" in md and "Budget: 4 trials per model" in md
    assert "1 trial(s) failed" in md
    assert "the ranking changes with the budget" in md and "the winner changes: attention -> transformer" in md
    assert "| transformer | **#1 (95.0%)** |" not in md  # n = 1 is the mean trial, not the best
    assert "| date | transformer | 4 | 95.0% |" in md
    found = report.analyse(report.load(store, ["t1"]))
    assert sorted(found.runs["seed"]) == [1, 1, 1, 1, 2, 2, 2, 2]  # the finals only: the trials are in the tuning section
    assert found.failures.empty and len(found.tuning) == 1
