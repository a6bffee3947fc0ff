"""A store's history is append-only in meaning (docs/store.md): no door changes what a finished session says it ran
or measured -- resume by id, resume without an id, a session id given again, merge, baseline save -- and a session's
plan, fixed when it starts, is what --resume may run."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from bench.errors import UserError
from bench.results.merge import merge
from bench.results.store import Store
from bench.runner.executor import LocalExecutor
from bench.runner.session import run_session
from bench.spec.run import SessionConfig
from tests.conftest import copy_store, run_cli, snapshot
from tests.factories import run_record

CPU = SessionConfig(device="cpu", threads=1)
TINY = ["--task", "date", "--model", "attention", "--size", "tiny", "--epochs", "1", "--train-size", "50", "--device", "cpu"]


class Uncalibrated(LocalExecutor):
    def calibrate(self, device, sc):
        return {}


def _ok(spec, prep, device, sc, progress=None):
    return {"test_exact_match": 0.5, "params": 1}, [{"epoch": 1, "loss": 1.0}], []


def history(path: str) -> dict[str, list[tuple]]:
    """What a store says was run and measured: its sessions, runs and plans, and who ran them (plain sqlite3)."""
    out = snapshot(path)
    db = sqlite3.connect(path)
    try:
        for t in ("session_plans", "session_owners"):
            out[t] = db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
    finally:
        db.close()
    return out


def _one_line(rc: int, out: str, err: str, *words: str) -> str:
    assert rc == 2, (rc, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def test_every_door_to_a_finished_session_leaves_what_it_says_unchanged(tmp_path, cli_store):
    path = copy_store(cli_store["path"], str(tmp_path))
    sid = cli_store["session"]["id"]
    before = history(path)
    other = [*TINY[:2], "--model", "transformer", *TINY[4:]]
    # resume by id: the same runs, other runs; and the session id given again, with and without --resume
    for argv in (["run", *TINY, "--resume", sid], ["run", *other, "--resume", sid], ["run", *TINY, "--session-id", sid, "--resume"]):
        _one_line(*run_cli([*argv, "--store", path]), sid, "finished", "without --resume")
    _one_line(*run_cli(["run", *TINY, "--session-id", sid, "--store", path]), sid, "finished", "another --session-id")
    # resume without an id: a finished session is never taken
    _one_line(*run_cli(["run", *TINY, "--resume", "--store", path]), "no unfinished session")
    assert history(path) == before

    # merge: an input holding the same session, appended to by an s2sbench that had no plans (a run added, a run's
    # figures and the finish time rewritten, no plan recorded) -- OUT's finished session stays as it is
    appended = str(tmp_path / "appended.sqlite")
    _backup(path, appended)
    db = sqlite3.connect(appended)
    with db:
        db.execute("DELETE FROM session_plans")
        db.execute("UPDATE runs SET metrics=json_set(metrics, '$.test_exact_match', 1.0), finished='2099-01-01T00:00:00+00:00'")
        db.execute("INSERT INTO runs(session, key, task, model, size, seed, config, config_hash, status, error, started, finished, "
                   "metrics, history, samples) SELECT session, 'date/transformer/tiny/0/added', task, 'transformer', size, seed, config, "
                   "config_hash, status, error, started, finished, metrics, history, samples FROM runs")
        db.execute("UPDATE sessions SET finished='2099-01-01T00:00:00+00:00'")
    db.close()
    rc, out, err = run_cli(["merge", path, appended])
    assert rc == 0, err
    assert history(path) == before
    assert f"session {sid}: finished in {path}, so its run" in out and "which never ran date/transformer/tiny/0/added" in out

    # ... and an input whose session holds a run outside its own plan is damaged: refused, naming the row
    planned = str(tmp_path / "planned.sqlite")
    _backup(appended, planned)
    db = sqlite3.connect(planned)
    with db:
        db.execute("INSERT INTO session_plans SELECT session, key FROM runs WHERE key NOT LIKE '%added'")
    db.close()
    _one_line(*run_cli(["merge", path, planned]), "planned.sqlite", "damaged, nothing merged", "date/transformer/tiny/0/added",
              "not in its session's plan")
    assert history(path) == before

    # baseline save: the store is only read; an existing baseline is replaced only with --force
    d = str(tmp_path / "bl")
    assert run_cli(["baseline", "save", "ci", "--store", path, "--dir", d])[0] == 0
    saved = open(os.path.join(d, "ci.json"), encoding="utf-8").read()
    _one_line(*run_cli(["baseline", "save", "ci", "--store", path, "--dir", d]), "ci.json", f"session {sid}", "--force")
    assert open(os.path.join(d, "ci.json"), encoding="utf-8").read() == saved
    assert run_cli(["baseline", "save", "ci", "--store", path, "--dir", d, "--force"])[0] == 0
    assert json.load(open(os.path.join(d, "ci.json"), encoding="utf-8"))["session"]["id"] == sid
    assert history(path) == before


def _backup(src: str, dst: str) -> None:
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    a.backup(b)
    a.close()
    b.close()


def test_resume_without_an_id_takes_only_a_session_that_planned_the_commands_runs(tmp_path, cli_store):
    """The first-hour case: after interrupting date/attention, addition/transformer --resume must not join it."""
    path = copy_store(cli_store["path"], str(tmp_path))
    sid = cli_store["session"]["id"]
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE sessions SET status='interrupted', finished=NULL")
    db.close()
    before = history(path)
    line = _one_line(*run_cli(["run", "--task", "addition", *TINY[2:], "--resume", "--store", path]), "no unfinished session",
                     "planned other runs", sid)
    assert "resume it by its id with the command that started it" in line
    assert history(path) == before


def test_resumable_matches_plans_exactly_and_skips_live_and_finished_sessions(tmp_path, make_spec):
    st = Store(str(tmp_path / "s.sqlite"))
    a, b = [make_spec(seed=0)], [make_spec(seed=0), make_spec(seed=1)]
    keys = lambda specs: [s.key() for s in specs]  # noqa: E731
    st.add_session("A", "2026-01-01T00:00:00+00:00", "q", "cmd a", {}, plan=keys(a))
    st.add_session("B", "2026-01-02T00:00:00+00:00", "q", "cmd b", {}, plan=keys(b))
    st.add_session("C", "2026-01-03T00:00:00+00:00", "q", "cmd c", {}, plan=keys(a))
    for sid in "ABC":
        st.finish_session(sid, "2026-01-04T00:00:00+00:00", "interrupted")
    st.finish_session("C", "2026-01-04T00:00:00+00:00", "finished")
    assert st.resumable("q", set(keys(a))) == "A"  # C planned the same runs, but finished
    assert st.resumable("q", set(keys(b))) == "B"
    assert st.resumable("q") == "B"  # no runs given (a caller with its own plan check): the latest unfinished
    with pytest.raises(UserError, match="planned other runs.*cmd b"):
        st.resumable("q", {make_spec(seed=5).key()})
    st.close()


def test_a_session_stored_before_plans_were_has_the_plan_of_what_it_ran(tmp_path, make_spec):
    """No plan rows (an older s2sbench's session): --resume may retry what it ran, and nothing else."""
    specs = [make_spec(seed=s) for s in range(2)]
    st = Store(str(tmp_path / "s.sqlite"))
    st.add_session("old", "2026-01-01T00:00:00+00:00", None, "an older s2sbench", {})  # no plan: as before plans were recorded
    st.add_run(run_record(specs[0], session="old", status="failed", error="boom"))
    st.finish_session("old", "2026-01-01T00:02:00+00:00", "interrupted")
    assert st.planned("old") == {specs[0].key()}
    with pytest.raises(UserError, match="stored before s2sbench recorded plans"):
        run_session(specs, st, CPU, None, "c", resume="old", executor=Uncalibrated(run=_ok))
    run_session(specs[:1], st, CPU, None, "c", resume="old", executor=Uncalibrated(run=_ok))  # the failed run, retried
    assert [r.status for r in st.runs("old")] == ["failed", "ok"] and st.sessions()[0]["status"] == "finished"
    st.close()


def test_merge_carries_plans_and_a_finished_session_is_joined_only_by_a_part_it_lacks(tmp_path, make_spec):
    """Two shards of one session (--session-id): each planned its own runs; merged, the session planned both."""
    specs = [make_spec(seed=s) for s in range(4)]
    parts = []
    for i, half in enumerate((specs[:2], specs[2:])):
        p = str(tmp_path / f"shard{i}.sqlite")
        st = Store(p)
        run_session(half, st, CPU, "s", "c", session_id="S", executor=Uncalibrated(run=_ok),
                    env_extra={"shard": {"index": i + 1, "count": 2}})
        assert st.planned("S") == {s.key() for s in half}
        st.close()
        parts.append(p)
    out = str(tmp_path / "out.sqlite")
    merge(out, [parts[0]])
    merge(out, [parts[1]])  # a finished session in OUT, joined by the part it lacks
    st = Store.open_read_only(out)
    assert st.planned("S") == {s.key() for s in specs}
    assert sorted(r.seed for r in st.runs("S")) == [0, 1, 2, 3] and st.session("S")["status"] == "finished"
    st.close()
    before = history(out)
    res = merge(out, parts)  # the same parts again: nothing changes
    assert history(out) == before and res.runs_added == 0


def test_a_tuning_style_session_checks_its_own_plan(tmp_path, make_spec):
    """``acquire(runs=None)``: a session planned in rounds (tune) is not held to the first round's keys; a finished one
    is still refused."""
    path = str(tmp_path / "s.sqlite")
    st = Store(path)
    st.add_session("T", "2026-01-01T00:00:00+00:00", "tune", "c", {}, plan=[make_spec(seed=0).key()])
    st.finish_session("T", "2026-01-01T00:01:00+00:00", "interrupted")
    me = st.acquire("T", resume=True, runs=None)
    st.extend_plan("T", [make_spec(seed=1).key()])  # the next round, recorded before it runs
    for seed in (0, 1):
        assert st.claim(me, make_spec(seed=seed).key())
        st.add_run(run_record(make_spec(seed=seed), session="T"), claim=me.token)
    assert st.planned("T") == {make_spec(seed=s).key() for s in (0, 1)}
    st.release(me, "finished")
    with pytest.raises(UserError, match="finished"):
        st.acquire("T", resume=True, runs=None)
    with pytest.raises(UserError, match="finished"):  # a finished session's plan is fixed
        st.extend_plan("T", [make_spec(seed=2).key()])
    st.close()
    assert run_cli(["check", "store", path])[0] == 0  # every run it stored is in its plan
