"""The ``s2sbench`` command: parses, calls, prints. No logic lives here.

Bad input (unknown names, malformed files, impossible configs, an unwritable store) ends with one line
on stderr and exit code 2; a regression found by ``compare`` exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from dataclasses import replace
from typing import Any

from bench.errors import UserError
from bench.results.store import DEFAULT_PATH


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 -- not usage plus traceback
        self.exit(2, f"{self.prog}: error: {message}\n")


def _nonneg_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {s!r}")
    return v


def _seeds(s: str) -> list[int]:
    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be integers separated by commas: {s!r}") from None


def _fraction(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
    if v > 1:
        v /= 100  # "99" means 99 %
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"target accuracy must be in (0, 1] or (0, 100] %: {s!r}")
    return v


def _option(s: str) -> tuple[str, Any]:
    if "=" not in s:
        raise argparse.ArgumentTypeError(f"model option must be key=value: {s!r}")
    k, v = s.split("=", 1)
    low = v.lower()
    val: Any = True if low == "true" else False if low == "false" else v
    for conv in (int, float):
        try:
            val = conv(v)
            break
        except ValueError:
            pass
    return k.strip(), val


def _shard(s: str) -> tuple[int, int]:
    from bench.runner.shard import parse

    return parse(s)


def _session_id(s: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", s) or s in ("latest", "all"):
        raise argparse.ArgumentTypeError(f"a session id is 1-64 letters, digits, '.', '_', ':' or '-' (not 'latest' or 'all'): {s!r}")
    return s


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="s2sbench", description="Train, time and score seq2seq architectures side by side.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run a benchmark session (a suite, or one configuration)")
    what = r.add_argument_group("what runs (a suite, or one matrix from these flags)")
    what.add_argument("--suite", help="suite name (see `s2sbench list --suites`) or path to a .toml file")
    what.add_argument("--data-dir", help="folder holding the data files a suite names (e.g. the book's date.txt, addition.txt)")
    what.add_argument("--task", help="registered task (date, addition, ...)")
    what.add_argument("--task-file", help="a data file in the book's format (question_answer per line)")
    what.add_argument("--model", help="model name, or several separated by commas")
    what.add_argument("--size", help="model size (tiny, small, base, book), or several separated by commas")
    what.add_argument("--seed", type=_nonneg_int, help="model seed")
    what.add_argument("--seeds", type=_seeds, help="several model seeds, e.g. 0,1,2")
    what.add_argument("--option", type=_option, action="append", default=[], metavar="KEY=VALUE", help="model option, e.g. bidirectional=true, score=general")
    budget = r.add_argument_group("budget and training")
    budget.add_argument("--epochs", type=_nonneg_int)
    budget.add_argument("--target", type=_fraction, help="stop at this validation exact match (0.99 or 99)")
    budget.add_argument("--time-budget", type=float, dest="time_budget_s", help="stop after this many seconds of training")
    budget.add_argument("--batch-size", type=_nonneg_int)
    budget.add_argument("--lr", type=float)
    budget.add_argument("--train-size", type=_nonneg_int, help="cap the number of training examples")
    budget.add_argument("--reverse-source", action="store_true", default=None, help="reverse each source (book ch. 7)")
    how = r.add_argument_group("how it runs")
    how.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    how.add_argument("--amp", choices=["off", "bf16", "fp16"], help="mixed precision (bf16 also on CPUs with bf16 instructions)")
    how.add_argument("--threads", type=_nonneg_int, help="CPU threads (torch.set_num_threads)")
    how.add_argument("--deterministic", action="store_true", help="deterministic kernels (GPU), cuDNN benchmark off")
    how.add_argument("--compile", action="store_true", help="torch.compile the model")
    how.add_argument("--resume", nargs="?", const="auto", help="continue an interrupted session (default: the latest unfinished one of this suite)")
    how.add_argument("--store", default=DEFAULT_PATH)
    far = r.add_argument_group("beyond one machine (README: Beyond one machine)")
    far.add_argument("--shard", type=_shard, metavar="K/N", help="run only shard K of N (K counts from 1): a deterministic, cost-balanced part of the runs")
    far.add_argument("--session-id", type=_session_id, metavar="ID", help="the session's id (give every shard the same one; `merge` joins them)")
    far.add_argument("--executor", choices=["local", "ray"], default="local", help="local: this process; ray: each run a Ray task")
    far.add_argument("--address", help="with --executor ray: auto (the running cluster) or HOST:PORT; default: start a local Ray")
    far.add_argument("--ddp", action="store_true", help="under torchrun: train each run DistributedDataParallel across the processes")

    mg = sub.add_parser("merge", help="join results stores (e.g. the shards of a suite) into one")
    mg.add_argument("out", metavar="OUT", help="the store merged into (created if missing)")
    mg.add_argument("inputs", metavar="IN", nargs="+", help="stores to merge in (read only)")

    rep = sub.add_parser("report", help="write the HTML and Markdown report of sessions from the store")
    rep.add_argument("--store", default=DEFAULT_PATH)
    rep.add_argument("--session", default="latest", help="session id, 'latest' or 'all'")
    rep.add_argument("--sessions", help="several session ids separated by commas")
    rep.add_argument("--out", help="output folder (default results/reports/<session>)")
    rep.add_argument("--reference", default="attention", help="model the speed ratios are relative to")
    rep.add_argument("--task", help="only these tasks (comma-separated)")
    rep.add_argument("--device", help="only sessions whose device name contains this (or 'cpu' / 'cuda')")
    rep.add_argument("--commits", help="only sessions at these commits: a git range A..B, or commit prefixes separated by commas")

    ls = sub.add_parser("list", help="list tasks, models (with parameter counts), suites and stored sessions")
    ls.add_argument("--store", default=DEFAULT_PATH)
    for what_ in ("tasks", "models", "suites", "sessions"):
        ls.add_argument(f"--{what_}", action="store_true")

    ex = sub.add_parser("export", help="print the tidy per-run table (CSV or JSON)")
    ex.add_argument("--store", default=DEFAULT_PATH)
    ex.add_argument("--session", default="latest", help="session id, 'latest' or 'all'")
    ex.add_argument("--format", choices=["csv", "json"], default="csv")

    cmp_ = sub.add_parser("compare", help="compare two sessions, or a baseline and a session: ratios, verdicts; exit 1 on regression")
    cmp_.add_argument("base", metavar="BASE", help="session id / prefix / 'latest', or a baseline file (.json)")
    cmp_.add_argument("new", metavar="NEW", help="session id / prefix / 'latest', or a baseline file (.json)")
    cmp_.add_argument("--store", default=DEFAULT_PATH)
    cmp_.add_argument("--fail-on", help="thresholds, e.g. 'time:+25%%,accuracy:-0.5pt,memory:+20%%' (the defaults); 'time:off' disables one")
    cmp_.add_argument("--markdown", metavar="FILE", help="also write the Markdown table to FILE (e.g. for a pull-request comment)")
    cmp_.add_argument("--changes-only", action="store_true", help="list only rows whose verdict is not 'same'")

    bl = sub.add_parser("baseline", help="save a session as a committed baseline file")
    bl_sub = bl.add_subparsers(dest="baseline_cmd", required=True, parser_class=_Parser)
    bls = bl_sub.add_parser("save", help="write DIR/NAME.json from a stored session")
    bls.add_argument("name", metavar="NAME")
    bls.add_argument("--store", default=DEFAULT_PATH)
    bls.add_argument("--session", default="latest", help="session id, prefix or 'latest'")
    bls.add_argument("--dir", default=os.path.join("results", "baselines"))

    cal = sub.add_parser("calibrate", help="time the fixed calibration workload on a device (what sessions record)")
    cal.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    cal.add_argument("--threads", type=_nonneg_int, help="CPU threads (torch.set_num_threads)")
    return p


# --- run ---------------------------------------------------------------------------------------------
_TRAIN_FLAGS = ("epochs", "target", "time_budget_s", "batch_size", "lr", "amp")
_DATA_FLAGS = ("train_size", "reverse_source")


def _specs_from_flags(a: argparse.Namespace) -> tuple[str | None, list]:
    from bench.runner.session import DataSpec, RunSpec
    from bench.spec import suite as suite_mod
    from bench.train.loop import TrainConfig

    overrides: dict[str, Any] = {k: getattr(a, k) for k in _TRAIN_FLAGS + _DATA_FLAGS if getattr(a, k) is not None}
    if a.suite:
        if a.task or a.task_file:
            raise UserError("give either --suite or --task/--task-file, not both")
        if a.model:
            overrides["models"] = a.model.split(",")
        if a.size:
            overrides["sizes"] = a.size.split(",")
        if a.seeds is not None or a.seed is not None:
            overrides["seeds"] = a.seeds if a.seeds is not None else [a.seed]
        if a.option:
            overrides["model_options"] = dict(a.option)
        name, _, specs = suite_mod.load(a.suite, overrides, data_dir=a.data_dir)
        for s in specs:
            if s.data.task_file and not os.path.exists(s.data.task_file):
                raise UserError(f"suite {name}: data file {s.data.task_file} not found; give --data-dir with the folder that holds it")
        return name, specs
    if not (a.task or a.task_file):
        raise UserError("nothing to run: give --suite NAME, or --task NAME / --task-file PATH with --model")
    if a.task and a.task_file:
        raise UserError("give --task or --task-file, not both")
    if not a.model:
        raise UserError("--model is required with --task/--task-file (see `s2sbench list --models`)")
    if a.task_file:
        data = DataSpec(task=os.path.splitext(os.path.basename(a.task_file))[0], task_file=a.task_file)
    else:
        data = DataSpec(task=a.task)
    data = replace(data, **{k: overrides[k] for k in _DATA_FLAGS if k in overrides})
    train = replace(TrainConfig(), **{k: overrides[k] for k in _TRAIN_FLAGS if k in overrides})
    seeds = a.seeds if a.seeds is not None else [a.seed if a.seed is not None else 0]
    opts = tuple(sorted(dict(a.option).items()))
    specs = [RunSpec(model=m, size=s, seed=sd, data=data, train=train, model_options=opts)
             for m in a.model.split(",") for s in (a.size or "small").split(",") for sd in seeds]
    return None, specs


def cmd_run(a: argparse.Namespace) -> int:
    from bench.results.store import Store
    from bench.runner.session import SessionConfig, check, run_session

    suite, specs = _specs_from_flags(a)
    sc = SessionConfig(device=a.device, threads=a.threads or None, deterministic=a.deterministic, compile=a.compile)
    env_extra: dict[str, Any] = {}
    if a.shard:
        from bench.runner.shard import select

        specs, env_extra["shard"] = select(specs, a.shard)
    if a.address and a.executor != "ray":
        raise UserError("--address goes with --executor ray")
    if a.ddp and a.executor == "ray":
        raise UserError("--ddp runs under torchrun, not with --executor ray")
    executor: Any = None
    group: Any = None
    try:
        if a.ddp:
            from bench.runner.ddp import Group
            from bench.runner.executor import LocalExecutor

            group = Group.from_torchrun(a.device)
            sc, executor, env_extra["ddp"] = group.session_config(sc), LocalExecutor(parallel=group), group.describe()
        elif a.executor == "ray":
            from bench.runner.ray_executor import RayExecutor
            from bench.runner.session import validate

            for s in specs:  # the cheap refusals before starting or joining Ray
                validate(s)
            executor = RayExecutor(a.address, threads=a.threads)
        cache = check(specs, sc, executor)  # bad input is refused before the store is touched

        def open_store() -> tuple[Store, str | None]:
            store = Store(a.store)
            return store, _resume(store, a, suite)

        store, resume, specs = group.open_store(open_store, specs) if group else (*open_store(), specs)
        command = "s2sbench " + " ".join(shlex.quote(x) for x in sys.argv[1:])
        sid = run_session(specs, store, sc, suite, command, resume=resume, cache=cache, session_id=a.session_id, executor=executor,
                          env_extra=env_extra, progress=group.progress() if group else None)
    finally:
        if hasattr(executor, "close"):
            executor.close()
        if group is not None:
            group.close()
    if group is not None and group.rank != 0:
        return 0
    if a.shard:
        print(f"shard {a.shard[0]}/{a.shard[1]}: {len(specs)} of {env_extra['shard']['suite_runs']} runs")
    runs = store.runs(sid)
    failed = [r for r in runs if r.status != "ok"]
    print(f"session {sid}: {len(runs) - len(failed)} runs ok, {len(failed)} failed; stored in {a.store}")
    print(f"report: s2sbench report --store {shlex.quote(a.store)} --session {sid}")
    return 0


def _resume(store: Any, a: argparse.Namespace, suite: str | None) -> str | None:
    """The session ``run`` continues, if any. With --session-id: that session when the store has it and --resume is given."""
    if a.session_id:
        exists = any(s["id"] == a.session_id for s in store.sessions())
        if exists and not a.resume:
            raise UserError(f"session {a.session_id!r} is already in {a.store}: add --resume to continue it, or choose another --session-id")
        if a.resume not in (None, "auto", a.session_id):
            raise UserError(f"--resume {a.resume} and --session-id {a.session_id} name different sessions")
        return a.session_id if exists else None
    if a.resume:
        return store.resumable(suite) if a.resume == "auto" else store.session(a.resume)["id"]
    return None


def cmd_merge(a: argparse.Namespace) -> int:
    from bench.results.merge import merge

    res = merge(a.out, a.inputs)
    for line in res.lines:
        print(line)
    print(res.summary())
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from bench.analysis import report
    from bench.results.store import Store
    from bench.results.tidy import filter_sessions, select_sessions

    store = Store.open_existing(a.store)
    filtering = a.device or a.commits
    ids = select_sessions(store, a.sessions or ("all" if filtering and a.session == "latest" else a.session))
    if filtering:
        ids = filter_sessions(store, ids, a.device, commit_list(a.commits) if a.commits else None)
    out = a.out or os.path.join(os.path.dirname(os.path.abspath(a.store)), "reports", ids[-1] if len(ids) == 1 else f"{ids[0]}..{ids[-1]}")
    paths = report.write(store, ids, out, reference=a.reference, tasks=a.task.split(",") if a.task else None)
    print(f"report: {paths['html']}")
    print(f"markdown: {paths['md']}")
    return 0


def commit_list(spec: str) -> list[str]:
    """``A..B`` -> the commits of that git range (``git rev-list``); otherwise comma-separated prefixes."""
    if ".." not in spec:
        return [c.strip() for c in spec.split(",") if c.strip()]
    import subprocess

    try:
        out = subprocess.run(["git", "rev-list", spec], capture_output=True, text=True, timeout=30)
    except OSError as e:
        raise UserError(f"--commits {spec}: cannot run git ({e})") from None
    if out.returncode != 0:
        raise UserError(f"--commits {spec}: not a git range here ({out.stderr.strip().splitlines()[0] if out.stderr.strip() else 'git failed'})")
    return out.stdout.split()


def cmd_list(a: argparse.Namespace) -> int:
    import models
    from bench.data import tasks
    from bench.spec import suite as suite_mod

    every = not (a.tasks or a.models or a.suites or a.sessions)
    if a.tasks or every:
        print("tasks:")
        for n in tasks.names():
            e = tasks.entry(n)
            print(f"  {n:10s} {e.summary}{'  [alignment]' if e.aligned else ''}")
    if a.models or every:
        print(f"models (parameters at vocabulary {models.BUDGET_VOCAB}; budgets: " + ", ".join(f"{k} {v:,}" for k, v in models.BUDGETS.items()) + "):")
        for n in models.names():
            # Counted on the meta device: listing the 100 M-parameter sizes allocates nothing.
            counts = "  ".join(f"{s}={models.param_count(n, models.BUDGET_VOCAB, s):,}" for s in models.sizes(n))
            print(f"  {n:12s} {counts}")
            print(f"  {'':12s} {models.entry(n).summary}")
    if a.suites or every:
        print("suites:")
        for n in suite_mod.available():
            _, desc, specs = suite_mod.load(n)
            print(f"  {n:12s} {len(specs):4d} runs  {desc}")
    if a.sessions or every:
        from bench.results.store import Store

        if os.path.exists(a.store):
            store = Store.open_existing(a.store)
            print(f"sessions in {a.store}:")
            for s in store.sessions():
                print(f"  {s['id']}  {s['status']:11s} {s['runs']:4d} runs  suite={s['suite'] or '-'}  {s['env'].get('device_name', '')}")
        else:
            print(f"sessions: none ({a.store} does not exist yet)")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from bench.results.store import Store
    from bench.results.tidy import runs_frame, select_sessions

    store = Store.open_existing(a.store)
    df = runs_frame(store, select_sessions(store, a.session))
    if a.format == "csv":
        df = df.assign(epoch_seconds=df["epoch_seconds"].map(json.dumps), test_by_length=df["test_by_length"].map(json.dumps))
        sys.stdout.write(df.to_csv(index=False))
    else:
        records = df.astype(object).where(df.notna(), None).to_dict(orient="records")
        sys.stdout.write(json.dumps(records, indent=1) + "\n")  # full precision, unlike DataFrame.to_json
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    from bench.analysis.compare import compare_refs

    c = compare_refs(a.base, a.new, a.store, a.fail_on)
    md = c.markdown(changes_only=a.changes_only)
    sys.stdout.write(md)
    if a.markdown:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(a.markdown)), exist_ok=True)
            with open(a.markdown, "w", encoding="utf-8") as f:
                f.write(md)
        except OSError as e:
            raise UserError(f"{a.markdown}: cannot write ({e})") from None
    return c.exit_code()


def cmd_baseline(a: argparse.Namespace) -> int:
    from bench.analysis.compare import save_baseline

    path, side = save_baseline(a.store, a.session, a.name, a.dir)
    failed = sum(len(g.failed) for g in side.groups.values())
    ok = sum(len(g.seeds) for g in side.groups.values())
    print(f"baseline {path}: session {side.session}, {len(side.groups)} task/model/size groups, {ok} runs ok, {failed} failed")
    if side.calibration is None:
        print("note: the session has no calibration; comparisons against this baseline will compare raw speed")
    return 0


def cmd_calibrate(a: argparse.Namespace) -> int:
    import torch

    from bench.measure.calibrate import calibrate
    from bench.runner.session import resolve_device

    dev = resolve_device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    print(json.dumps(calibrate(dev), indent=2, sort_keys=True))
    return 0


COMMANDS = {"run": cmd_run, "merge": cmd_merge, "report": cmd_report, "list": cmd_list, "export": cmd_export, "compare": cmd_compare,
            "baseline": cmd_baseline, "calibrate": cmd_calibrate}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.cmd](args)
    except UserError as e:
        print(f"s2sbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("s2sbench: interrupted; finished runs are stored (continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
