"""The command line: bad input is one line and exit 2 with the store untouched; run/export/report/list work."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import subprocess
import sys

import pytest
import torch

import models
from bench.data import tasks
from tests.conftest import HANG_S, REPO, copy_store, run_cli, snapshot

TINY = ["--model", "attention", "--size", "tiny", "--epochs", "1", "--train-size", "50", "--device", "cpu"]


def _one_error_line(rc: int, out: str, err: str, *words: str) -> str:
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])
    return lines[0]


def _book_file(path, lines: list[str]) -> str:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def _suite(path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


GOOD_SUITE = ('[defaults]\nsizes = ["tiny"]\nepochs = 1\ntrain = 40\nvalid = 10\ntest = 10\n'
              '[[runs]]\ntasks = ["date"]\nmodels = ["attention"]\n')

# (id, argv after "run" without --store, words the error line must contain[, marks]). Callables get tmp_path.
BAD_RUNS = [
    ("unknown-task", lambda d: ["--task", "nosuchtask", *TINY], ["nosuchtask"]),
    ("unknown-model", lambda d: ["--task", "date", "--model", "nosuchmodel", "--size", "tiny"], ["nosuchmodel"]),
    ("unknown-size", lambda d: ["--task", "date", "--model", "attention", "--size", "huge"], ["huge"]),
    ("one-of-two-models-unknown", lambda d: ["--task", "date", "--model", "attention,nosuchmodel", "--size", "tiny"], ["nosuchmodel"]),
    ("unknown-model-option", lambda d: ["--task", "date", *TINY, "--option", "wings=2"], ["wings"]),
    ("missing-data-file", lambda d: ["--task-file", str(d / "missing.txt"), *TINY], ["missing.txt"]),
    ("data-line-without-underscore", lambda d: ["--task-file", _book_file(d / "nounder.txt", ["1+1 _2"] * 12 + ["1+2 3"]), *TINY],
     ["nounder.txt", ":13:", "_"]),
    ("empty-data-file", lambda d: ["--task-file", _book_file(d / "empty.txt", []), *TINY], ["empty.txt", "empty"]),
    ("empty-line-in-data-file", lambda d: ["--task-file", _book_file(d / "gap.txt", ["1+1 _2"] * 5 + [""] + ["1+2 _3"] * 6), *TINY],
     ["gap.txt", ":6:", "empty"]),
    ("seed-not-a-number", lambda d: ["--task", "date", *TINY, "--seed", "abc"], ["--seed", "abc"]),
    ("seeds-not-numbers", lambda d: ["--task", "date", *TINY, "--seeds", "1,x"], ["1,x"]),
    ("epochs-zero", lambda d: ["--task", "date", "--model", "attention", "--size", "tiny", "--epochs", "0"], ["epochs"]),
    ("train-size-zero", lambda d: ["--task", "date", *TINY[:-4], "--train-size", "0"], ["train-size"]),
    ("target-out-of-range", lambda d: ["--task", "date", *TINY, "--target", "150"], ["target"]),
    ("negative-lr", lambda d: ["--task", "date", *TINY, "--lr=-1"], ["lr"]),
    ("cuda-without-cuda", lambda d: ["--task", "date", *TINY[:-2], "--device", "cuda:7"], ["cuda"],
     pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")),
    ("nonsense-device", lambda d: ["--task", "date", *TINY[:-2], "--device", "toaster"], ["toaster"]),
    ("no-model", lambda d: ["--task", "date"], ["--model"]),
    ("nothing-to-run", lambda d: [], ["--suite"]),
    ("task-and-task-file", lambda d: ["--task", "date", "--task-file", "x.txt", *TINY], ["--task"]),
    ("unknown-suite", lambda d: ["--suite", "nosuchsuite"], ["nosuchsuite"]),
    ("missing-suite-file", lambda d: ["--suite", str(d / "gone.toml")], ["gone.toml"]),
    ("suite-unknown-key", lambda d: ["--suite", _suite(d / "k.toml", GOOD_SUITE + "colour = \"red\"\n")], ["k.toml", "colour"]),
    ("suite-unknown-top-key", lambda d: ["--suite", _suite(d / "t.toml", "flavour = 1\n" + GOOD_SUITE)], ["t.toml", "flavour"]),
    ("suite-bad-type", lambda d: ["--suite", _suite(d / "ty.toml", GOOD_SUITE.replace("epochs = 1", 'epochs = "three"'))],
     ["ty.toml", "epochs"]),
    ("suite-bool-for-int", lambda d: ["--suite", _suite(d / "b.toml", GOOD_SUITE.replace("epochs = 1", "epochs = true"))],
     ["b.toml", "epochs"]),
    ("suite-bad-seed", lambda d: ["--suite", _suite(d / "s.toml", GOOD_SUITE + 'seeds = ["one"]\n')], ["s.toml", "seeds"]),
    ("suite-invalid-toml", lambda d: ["--suite", _suite(d / "bad.toml", "[defaults\nepochs = = 1\n")], ["bad.toml", "toml"]),
    ("suite-no-runs", lambda d: ["--suite", _suite(d / "nr.toml", "[defaults]\nepochs = 1\n")], ["nr.toml", "runs"]),
    ("suite-unknown-model", lambda d: ["--suite", _suite(d / "um.toml", GOOD_SUITE.replace('"attention"', '"nosuchmodel"'))],
     ["nosuchmodel"]),
    ("suite-and-task", lambda d: ["--suite", _suite(d / "st.toml", GOOD_SUITE), "--task", "date"], ["--suite"]),
]


def _case(c: tuple):
    return pytest.param(c[1], c[2], id=c[0], marks=c[3:])


@pytest.mark.parametrize("make_argv, words", [_case(c) for c in BAD_RUNS])
def test_bad_run_input_exits_2_with_one_line_and_keeps_the_store(tmp_path, cli_store, make_argv, words) -> None:
    store = copy_store(cli_store["path"], str(tmp_path))
    before = snapshot(store)
    rc, out, err = run_cli(["run", *make_argv(tmp_path), "--store", store])
    _one_error_line(rc, out, err, *words)
    assert snapshot(store) == before


@pytest.mark.parametrize("argv, words", [
    (["run", "--task", "nosuchtask", "--model", "attention", "--size", "tiny"], ["nosuchtask"]),
    (["run", "--task", "date", "--model", "attention", "--seed", "abc"], ["abc"]),
    (["run", "--suite", "@SUITE@"], ["colour"]),
])
def test_bad_input_through_python_dash_m_bench(tmp_path, cli_store, argv, words) -> None:
    store = copy_store(cli_store["path"], str(tmp_path))
    before = snapshot(store)
    suite = _suite(tmp_path / "k.toml", GOOD_SUITE + "colour = 1\n")
    argv = [suite if a == "@SUITE@" else a for a in argv]
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "bench", *argv, "--store", store], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=HANG_S)
    _one_error_line(p.returncode, p.stdout, p.stderr, *words)
    assert snapshot(store) == before


def test_unwritable_store_path_under_a_file(tmp_path) -> None:
    f = tmp_path / "afile"
    f.write_text("not a folder")
    rc, out, err = run_cli(["run", "--task", "date", *TINY, "--store", str(f / "bench.sqlite")])
    _one_error_line(rc, out, err, "bench.sqlite")
    assert f.read_text() == "not a folder"


def test_a_directory_as_store(tmp_path) -> None:
    d = tmp_path / "adir"
    d.mkdir()
    rc, out, err = run_cli(["run", "--task", "date", *TINY, "--store", str(d)])
    _one_error_line(rc, out, err, "adir")
    assert os.listdir(d) == []


def test_a_non_sqlite_store_is_refused_and_untouched(tmp_path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("my notes\n" * 50)
    for argv in (["run", "--task", "date", *TINY], ["export"], ["report", "--out", str(tmp_path / "r")], ["list", "--sessions"]):
        rc, out, err = run_cli([*argv, "--store", str(f)])
        _one_error_line(rc, out, err, "notes.txt")
    assert f.read_text() == "my notes\n" * 50


def test_resume_without_an_unfinished_session(tmp_path, cli_store) -> None:
    store = copy_store(cli_store["path"], str(tmp_path))
    before = snapshot(store)
    rc, out, err = run_cli(["run", "--task", "date", *TINY, "--resume", "--store", store])
    _one_error_line(rc, out, err, "resume")
    rc, out, err = run_cli(["run", "--task", "date", *TINY, "--resume", "nosuchsession", "--store", store])
    _one_error_line(rc, out, err, "nosuchsession")
    assert snapshot(store) == before


# --- a successful run and what reads it ---------------------------------------------------------------


def test_run_prints_the_session_and_stores_one_ok_run(cli_store) -> None:
    s, (r,) = cli_store["session"], cli_store["runs"]
    assert s["status"] == "finished" and s["runs"] == 1 and s["suite"] is None
    assert s["id"] in cli_store["stdout"] and "1 runs ok, 0 failed" in cli_store["stdout"]
    assert "what was found" in cli_store["stdout"] and "most accurate: attention " in cli_store["stdout"]  # the session's last lines
    assert s["env"]["session_config"]["threads"] == 1  # no --threads on a CPU: one thread, not torch's one per core
    assert (r.task, r.model, r.size, r.seed, r.status, r.error) == ("date", "attention", "tiny", 0, "ok", None)
    m = r.metrics
    assert m["epochs"] == 1 and len(m["epoch_seconds"]) == 1 and len(r.history) == 1
    assert m["train_examples"] == 200 and m["test_n"] == 2000
    assert m["params"] == models.count_params(models.build("attention", m["vocab_size"], "tiny"))
    assert m["time_to_target_s"] is None  # one epoch of 200 examples does not reach 99 %
    assert 0 <= m["test_exact_match"] <= m["test_token_accuracy"] <= 1
    assert r.samples and len(r.samples[0]["attention"]) == len(r.samples[0]["pred"])
    assert r.config["train"]["epochs"] == 1 and r.config["data"]["train_size"] == 200


def test_run_exits_1_when_no_run_succeeded(tmp_path) -> None:
    """A session whose every run failed (here: diverged) measured nothing: exit 1, so a script or CI step stops."""
    from bench.cli.run import NO_RUN_OK

    store = str(tmp_path / "s.sqlite")
    base = ["run", "--task", "date", "--size", "tiny", "--epochs", "2", "--train-size", "200", "--device", "cpu", "--store", store]
    rc, out, err = run_cli([*base, "--model", "attention", "--lr", "1e6"])
    assert rc == NO_RUN_OK == 1, err
    assert "0 runs ok, 1 failed" in out and "what was found" not in out
    rc, out, err = run_cli([*base, "--model", "attention,seq2seq", "--lr", "1e6", "--seeds", "0"])  # one more, also failed: still 1
    assert rc == 1 and "0 runs ok, 2 failed" in out


EXPORTED = ["session", "task", "model", "size", "seed", "status", "params", "epochs", "epoch_seconds", "time_to_target_s",
            "test_exact_match", "test_token_accuracy", "error"]


def _stored(cli_store) -> dict:
    (r,) = cli_store["runs"]
    m = r.metrics
    return {"session": r.session, "task": r.task, "model": r.model, "size": r.size, "seed": r.seed, "status": r.status,
            "params": m["params"], "epochs": m["epochs"], "epoch_seconds": m["epoch_seconds"], "time_to_target_s": m["time_to_target_s"],
            "test_exact_match": m["test_exact_match"], "test_token_accuracy": m["test_token_accuracy"], "error": r.error}


def test_export_json_returns_the_stored_values(cli_store) -> None:
    rc, out, err = run_cli(["export", "--store", cli_store["path"], "--format", "json"])
    assert rc == 0, err
    (row,) = json.loads(out)
    assert {k: row[k] for k in EXPORTED} == _stored(cli_store)
    assert row["time_to_target_s"] is None and row["error"] is None
    assert row["alignment"] == cli_store["runs"][0].metrics["alignment"]


def test_export_csv_returns_the_stored_values(cli_store) -> None:
    rc, out, err = run_cli(["export", "--store", cli_store["path"], "--format", "csv", "--session", "latest"])
    assert rc == 0, err
    (row,) = list(csv.DictReader(io.StringIO(out)))
    want = _stored(cli_store)
    got = {
        "session": row["session"], "task": row["task"], "model": row["model"], "size": row["size"], "seed": int(row["seed"]),
        "status": row["status"], "params": int(row["params"]), "epochs": int(row["epochs"]),
        "epoch_seconds": json.loads(row["epoch_seconds"]),
        "time_to_target_s": float(row["time_to_target_s"]) if row["time_to_target_s"] else None,
        "test_exact_match": float(row["test_exact_match"]), "test_token_accuracy": float(row["test_token_accuracy"]),
        "error": row["error"] or None,
    }
    assert got == want
    assert row["time_to_target_s"] == "" and row["error"] == ""


def test_export_of_an_unknown_session_or_missing_store(tmp_path, cli_store) -> None:
    rc, out, err = run_cli(["export", "--store", cli_store["path"], "--session", "nosuchsession"])
    _one_error_line(rc, out, err, "nosuchsession")
    rc, out, err = run_cli(["export", "--store", str(tmp_path / "none.sqlite")])
    _one_error_line(rc, out, err, "none.sqlite")
    assert not (tmp_path / "none.sqlite").exists()


def test_report_writes_html_with_embedded_figures_and_markdown(tmp_path, cli_store) -> None:
    out_dir = tmp_path / "report"
    rc, out, err = run_cli(["report", "--store", cli_store["path"], "--out", str(out_dir)])
    assert rc == 0, err
    page = (out_dir / "index.html").read_text(encoding="utf-8")
    assert "<table" in page and "<td" in page
    for word in ("date", "attention", "tiny", "exact match %", cli_store["session"]["id"]):
        assert word in page
    pngs = re.findall(r"<img[^>]*src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(pngs) >= 2
    for b in pngs:
        assert base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out_dir / "report.md").read_text(encoding="utf-8")
    assert "| task | model | size |" in md and "| date | attention | tiny |" in md
    for name in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", md):
        assert (out_dir / name).read_bytes()[:4] == b"\x89PNG"
    assert str(out_dir / "index.html") in out


def test_report_of_an_empty_store_or_unknown_session_exits_2(tmp_path, cli_store) -> None:
    from bench.results.store import Store

    empty = str(tmp_path / "empty.sqlite")
    Store(empty).close()
    rc, out, err = run_cli(["report", "--store", empty, "--out", str(tmp_path / "r1")])
    _one_error_line(rc, out, err, "no sessions")
    rc, out, err = run_cli(["report", "--store", cli_store["path"], "--session", "nosuchsession", "--out", str(tmp_path / "r2")])
    _one_error_line(rc, out, err, "nosuchsession")
    rc, out, err = run_cli(["report", "--store", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "r3")])
    _one_error_line(rc, out, err, "none.sqlite")
    assert not (tmp_path / "none.sqlite").exists()
    assert not any((tmp_path / r).exists() for r in ("r1", "r2", "r3"))


def test_list_models_prints_every_model(tmp_path, monkeypatch) -> None:
    real_build = models.build

    def meta_only_build(*args, **kwargs):  # listing counts parameters on the meta device: nothing is allocated
        assert torch.empty(0).device.type == "meta", "list --models built a model with real storage"
        return real_build(*args, **kwargs)

    monkeypatch.setattr(models, "build", meta_only_build)
    rc, out, err = run_cli(["list", "--models", "--store", str(tmp_path / "none.sqlite")])
    assert rc == 0, err
    listed = {m.group(1) for m in re.finditer(r"^  (\S+)\s+tiny=[\d,]+", out, re.M)}  # name, then its parameter counts
    assert listed == set(models.names())
    for name in models.names():  # the GPU sizes are listed too, with their counts
        assert f"xl={models.param_count(name, models.BUDGET_VOCAB, 'xl'):,}" in out
    assert not (tmp_path / "none.sqlite").exists()


def test_list_tasks_and_sessions(cli_store) -> None:
    rc, out, err = run_cli(["list", "--tasks", "--sessions", "--store", cli_store["path"]])
    assert rc == 0, err
    for t in tasks.names():
        assert re.search(rf"^\s+{t}\s", out, re.M), t
    assert cli_store["session"]["id"] in out


def test_a_suite_file_runs(tmp_path) -> None:
    suite = _suite(tmp_path / "mini.toml", GOOD_SUITE.replace('models = ["attention"]', 'models = ["attention"]\nseeds = [0, 1]'))
    store = str(tmp_path / "s.sqlite")
    rc, out, err = run_cli(["run", "--suite", suite, "--device", "cpu", "--store", store])
    assert rc == 0, err
    rc, out, err = run_cli(["export", "--store", store, "--format", "json"])
    rows = json.loads(out)
    assert [(r["task"], r["model"], r["seed"], r["status"], r["epochs"]) for r in rows] == [("date", "attention", 0, "ok", 1),
                                                                                            ("date", "attention", 1, "ok", 1)]


def test_export_keeps_integers_integer_beside_a_failed_run(tmp_path, cli_store) -> None:
    # A failed run has no metrics: its empty cells must not turn the ok run's counts into floats ("50974.0").
    from bench.results.store import Store
    from tests.factories import run_record

    path = copy_store(cli_store["path"], str(tmp_path))
    (ok,) = cli_store["runs"]
    st = Store(path)
    st.add_run(run_record(session=ok.session, model="seq2seq", config={"train": {"amp": "off"}, "model_options": {}}, config_hash="x",
                          status="failed", error="RuntimeError: boom", started=ok.started, finished=ok.finished))
    st.close()
    rc, out, err = run_cli(["export", "--store", path, "--format", "csv"])
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert (rows[0]["params"], rows[0]["epochs"], rows[0]["seed"]) == (str(ok.metrics["params"]), "1", "0")
    assert (rows[1]["params"], rows[1]["epochs"], rows[1]["error"]) == ("", "", "RuntimeError: boom")
    rc, out, err = run_cli(["export", "--store", path, "--format", "json"])
    rows = json.loads(out)
    assert isinstance(rows[0]["params"], int) and rows[0]["params"] == ok.metrics["params"]
    assert rows[1]["params"] is None and rows[1]["test_exact_match"] is None
