"""``s2sbench tune``: reproducible sessions, a plan that replays to the same suggestions, resume, the finals, shards."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import replace

import pytest

from bench.errors import UserError
from bench.results.store import RunRecord, Store
from bench.runner import tune
from bench.runner.executor import LocalExecutor
from bench.spec.run import SessionConfig
from bench.spec.search import DEFAULT_SPACE, Param, TuneSettings
from tests.conftest import run_cli
from tests.factories import run_record

optuna = pytest.importorskip("optuna")
pytest.importorskip("opda")

CPU = SessionConfig(device="cpu", threads=1)
SPACE = (Param("lr", 1e-4, 1e-2), Param("lr_warmup", 0, 20), Param("dropout", 0.0, 0.3), Param("batch_size", choices=(16, 32, 64)))


def objective(spec) -> float:
    """A made-up validation score with a peak (lr 3e-3, batch 32): what the samplers are tested against."""
    return max(0.0, 1 - abs(math.log10(spec.train.lr) + 2.5) / 2 - 0.1 * (spec.train.batch_size != 32)
               - dict(spec.model_options).get("dropout", 0))


class Fake(LocalExecutor):
    """Runs nothing: each run's metrics are ``objective`` of its spec (and no calibration). ``stop_after``: Ctrl-C then."""

    def __init__(self, stop_after: int | None = None) -> None:
        super().__init__(run=self.fake)
        self.ran: list = []
        self.stop_after = stop_after

    def calibrate(self, device, sc):
        return {}

    def fake(self, spec, prep, device, sc, progress=None):
        if self.stop_after is not None and len(self.ran) == self.stop_after:
            raise KeyboardInterrupt
        self.ran.append(spec)
        v = objective(spec)
        return {"valid_exact_match": v, "test_exact_match": v - 0.01 * spec.seed, "model_meta": {"order": 2}}, [], []


def _record(spec, score: float, n: int) -> RunRecord:
    return run_record(spec, metrics={"valid_exact_match": score, "test_exact_match": score}, id=n)


def _plan(make_spec, sampler: str, trials: int) -> tune.TunePlan:
    settings = TuneSettings(trials=trials, sampler=sampler, seed=7, final_seeds=2, space=SPACE)
    base = make_spec()
    return tune.TunePlan([tune.Study(base, SPACE, tune.study_seed(7, base))], settings, tune.require())


def _drive(plan: tune.TunePlan) -> tuple[list[dict], list]:
    """Round after round, as a session does: store each run's made-up score, ask the plan again."""
    runs: list[RunRecord] = []
    trials, finals = [], []
    while batch := plan.next(runs):
        for s in batch:
            note = plan.note(s)
            (trials if note["role"] == "trial" else finals).append((note, s))
            runs.append(_record(s, objective(s), len(runs)))
    return [n["params"] for n, _ in trials], finals


def _continuous(plan: tune.TunePlan, trials: int) -> list[dict]:
    """The same study as one long-lived Optuna study: ask, score, tell -- what a plan replays must equal."""
    st = plan.studies[0]
    study = optuna.create_study(direction="maximize", sampler=plan._sampler(st))
    out = []
    for _ in range(trials):
        t = study.ask(plan.distributions(st))
        params = {k: tune._round(t.params[k]) for k in sorted(t.params)}
        out.append(params)
        study.tell(t, objective(tune.apply(st.base, params, st.base.seed)))
    return out


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_replaying_the_stored_trials_gives_the_continuous_studys_suggestions(make_spec, sampler):
    """Every round rebuilds the study and replays the stored trials through a sampler with the same seed; the
    suggestions are those of one Optuna study asked and told in one go (TPE past its random start-up trials too)."""
    plan = _plan(make_spec, sampler, trials=10)
    replayed, _ = _drive(plan)
    assert replayed == _continuous(_plan(make_spec, sampler, trials=10), 10)
    assert len({tuple(p.items()) for p in replayed}) == 10


def test_random_search_draws_every_trial_up_front_and_tpe_one_at_a_time(make_spec):
    rnd, tpe = _plan(make_spec, "random", 6), _plan(make_spec, "tpe", 6)
    assert len(rnd.next([])) == 6 and len(tpe.next([])) == 1
    assert [tune.apply(rnd.studies[0].base, p, 0).train.lr for p in _continuous(rnd, 6)] == [s.train.lr for s in rnd.next([])]


def test_the_finals_are_the_default_and_the_best_recipe_at_fresh_seeds(make_spec):
    plan = _plan(make_spec, "random", 5)
    params, finals = _drive(plan)
    best = max(range(5), key=lambda i: (objective(tune.apply(plan.studies[0].base, params[i], 0)), -i))
    assert sorted(s.seed for _, s in finals) == [1, 1, 2, 2]  # after the trial seed 0
    tuned = [(n, s) for n, s in finals if n["role"] == "tuned"]
    assert all(n["params"] == params[best] and n["trial"] == best for n, _ in tuned)
    assert all(s.train.lr == params[best]["lr"] for _, s in tuned)
    assert all(s.config_hash() == plan.studies[0].base.config_hash() for n, s in finals if n["role"] == "default")
    assert plan.total == 5 + 4


def _prepare(make_spec, settings, models=("attention",), train=640):
    return tune.prepare([make_spec(model=m, train=train) for m in models], settings, CPU)


def test_a_tpe_session_interrupted_and_resumed_runs_what_one_uninterrupted_session_runs(tmp_path, make_spec):
    settings = TuneSettings(trials=6, sampler="tpe", seed=3, final_seeds=1, space=SPACE)
    studies, cache = _prepare(make_spec, settings, ("attention", "seq2seq"))
    whole = Fake()
    tune.run(studies, settings, Store(str(tmp_path / "a.sqlite")), CPU, "t", "c", cache=cache, executor=whole)
    store = Store(str(tmp_path / "b.sqlite"))
    with pytest.raises(KeyboardInterrupt):
        tune.run(studies, settings, store, CPU, "t", "c", cache=cache, executor=Fake(stop_after=5))
    (sid,) = [s["id"] for s in store.sessions()]
    assert store.session(sid)["status"] != "finished" and len(store.runs(sid)) == 5
    rest = Fake()
    assert tune.run(studies, settings, store, CPU, "t", "c", resume=sid, cache=cache, executor=rest) == sid
    assert len(rest.ran) == len(whole.ran) - 5
    assert sorted(r.key for r in store.runs(sid)) == sorted(s.key() for s in whole.ran)
    assert store.session(sid)["status"] == "finished"
    notes = {r.key: r.metrics["tune"] for r in store.runs(sid)}
    assert sum(n["role"] == "trial" for n in notes.values()) == 12 and sum(n["role"] != "trial" for n in notes.values()) == 4


@pytest.mark.parametrize("given", [False, True])
def test_dropout_is_searched_for_the_models_that_have_one_and_refused_where_none_has(make_spec, given):
    studies, _ = _prepare(make_spec, TuneSettings(space=SPACE, given=given), ("attention", "ntm"))
    spaces = {st.base.model: [p.name for p in st.space] for st in studies}
    assert "dropout" in spaces["attention"] and "dropout" not in spaces["ntm"]
    if given:
        with pytest.raises(UserError, match="ntm has no dropout"):
            _prepare(make_spec, TuneSettings(space=SPACE, given=True), ("ntm",))


def test_the_default_warmup_reaches_a_quarter_of_training_and_a_longer_given_one_is_refused(make_spec):
    (st,), _ = tune.prepare([make_spec(train=2000)], TuneSettings(), CPU)
    w = next(p for p in st.space if p.name == "lr_warmup")
    assert (w.low, w.high) == (0, 2 * math.ceil(2000 / 128) // 4)  # 2 epochs at the largest batch searched, 128: 32 steps
    (short,), _ = _prepare(make_spec, TuneSettings(), train=96)  # 2 steps at batch 128: too short to warm up
    assert "lr_warmup" not in [p.name for p in short.space]
    with pytest.raises(UserError, match="longer than training"):
        _prepare(make_spec, TuneSettings(space=(Param("lr_warmup", 0, 500),), given=True))


def test_a_models_own_range_narrows_the_space(make_spec, monkeypatch):
    import models

    e = models.entry("attention")
    monkeypatch.setitem(models.registry._REGISTRY, "attention",
                        replace(e, meta=replace(e.meta, search=(("lr", (1e-3, 5e-2)), ("batch_size", (32,))))))
    (st,), _ = _prepare(make_spec, TuneSettings(space=SPACE, given=True))
    got = {p.name: p for p in st.space}
    assert (got["lr"].low, got["lr"].high) == (1e-3, 1e-2) and got["batch_size"].choices == (32,)
    monkeypatch.setitem(models.registry._REGISTRY, "attention", replace(e, meta=replace(e.meta, search=(("lr", (0.05, 0.1)),))))
    with pytest.raises(UserError, match="empty range"):
        _prepare(make_spec, TuneSettings(space=SPACE, given=True))


def test_shards_split_the_studies_whole(make_spec):
    settings = TuneSettings(trials=2, final_seeds=1, space=SPACE)
    studies, _ = _prepare(make_spec, settings, ("attention", "seq2seq", "peeky"))
    parts = [tune.shard(studies, (k, 2), settings) for k in (1, 2)]
    ids = [[st.id for st in p[0]] for p in parts]
    assert sorted(ids[0] + ids[1]) == sorted(st.id for st in studies) and not set(ids[0]) & set(ids[1])
    assert parts[0][1]["suite_runs"] == 3 * 4 and parts[0][1]["runs"] == len(ids[0]) * 4


def test_default_space_is_the_documented_one():
    assert [p.describe() for p in DEFAULT_SPACE] == ["lr log-uniform [0.0001, 0.01]", "lr_warmup integer [0, 1/4 of training]",
                                                     "dropout uniform [0, 0.3]", "label_smoothing uniform [0, 0.2]",
                                                     "batch_size in {32, 64, 128}"]


# --- through the command line, with real training ---------------------------------------------------------

SUITE = """[defaults]
sizes = ["tiny"]
epochs = 2
train = 64
valid = 16
test = 16
batch_size = 32
decode_batch = 8
decode_repeats = 1
[[runs]]
tasks = ["addition"]
models = ["attention"]
[tune]
trials = 3
final_seeds = 1
[tune.space]
lr = [1e-3, 1e-2]
label_smoothing = [0.0, 0.2]
lr_warmup = [0, 2]
"""


def _trials(path: str) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT config, metrics, history FROM runs ORDER BY id").fetchall()
    finally:
        db.close()
    import json

    out = []
    for cfg, met, hist in rows:
        m = json.loads(met)
        out.append((m["tune"]["role"], json.dumps(m["tune"].get("params"), sort_keys=True), cfg, m["valid_exact_match"],
                    [e["loss"] for e in json.loads(hist)]))
    return out


@pytest.mark.slow
def test_two_tuning_sessions_with_one_seed_give_identical_trials(tmp_path):
    """The sampler's suggestions and the losses they train to, bit for bit (on one CPU, as every run here)."""
    suite = tmp_path / "t.toml"
    suite.write_text(SUITE, encoding="utf-8")
    got = []
    for name in ("a", "b"):
        rc, out, err = run_cli(["tune", "--suite", str(suite), "--seed", "5", "--device", "cpu", "--threads", "1", "--store",
                                str(tmp_path / f"{name}.sqlite")])
        assert rc == 0, err
        assert "| addition | attention | 3 |" in out
        got.append(_trials(str(tmp_path / f"{name}.sqlite")))
    assert got[0] == got[1]
    assert [g[0] for g in got[0]] == ["trial"] * 3 + ["default", "tuned"]
    assert len({g[1] for g in got[0][:3]}) == 3 and all(len(g[4]) == 2 for g in got[0])
    rc, _, err = run_cli(["tune", "--suite", str(suite), "--seed", "6", "--device", "cpu", "--threads", "1", "--store",
                          str(tmp_path / "c.sqlite")])
    assert rc == 0, err
    assert [g[1] for g in _trials(str(tmp_path / "c.sqlite"))[:3]] != [g[1] for g in got[0][:3]]  # another seed, other draws


def test_resume_refuses_other_settings_and_sessions_that_are_not_tuning():
    s = TuneSettings(trials=4)
    tune.check_resume({"id": "x", "env": {"tune": s.record()}}, s)
    with pytest.raises(UserError, match="trials was 4"):
        tune.check_resume({"id": "x", "env": {"tune": s.record()}}, TuneSettings(trials=5))
    with pytest.raises(UserError, match="not a tuning session"):
        tune.check_resume({"id": "x", "env": {}}, s)


@pytest.mark.parametrize("name", ["tune-cpu", "tune"])
def test_the_tune_suites_plan_every_model_alike(name):
    """Each tuning suite's space fits every model of it (warm-up within training at the largest batch)."""
    from bench.cli.tune import settings as settings_of
    from bench.spec import suite

    _, _, specs = suite.load(name)
    ts = settings_of(SimpleArgs(suite=name))
    spaces = {(b.data.name, b.model): tune.model_space(ts, b, b.data.train) for b in tune.bases(specs)}
    assert len(spaces) == 12 and ts.trials >= 8
    names = {k: [p.name for p in v] for k, v in spaces.items()}
    assert all("lr" in v and "batch_size" in v for v in names.values())
    assert "dropout" not in names[("date", "ntm")] and "dropout" in names[("date", "transformer")]


class SimpleArgs:
    def __init__(self, **kw) -> None:
        self.suite, self.search, self.seed = kw.get("suite"), [], None
        self.trials = self.sampler = self.final_seeds = None
