"""``s2sbench merge | report | list | export``: what the store holds, joined, reported, listed, exported."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from bench.errors import UserError
from bench.results.store import DEFAULT_PATH


def add(sub: Any) -> None:
    mg = sub.add_parser("merge", help="join results stores (e.g. the shards of a suite) into one")
    mg.add_argument("out", metavar="OUT", help="the store merged into (created if missing)")
    mg.add_argument("inputs", metavar="IN", nargs="+", help="stores to merge in (read only)")

    mg.set_defaults(func=cmd_merge)

    rep = sub.add_parser("report", help="write the HTML and Markdown report of sessions from the store")
    rep.add_argument("--store", default=DEFAULT_PATH)
    rep.add_argument("--session", default="latest", help="session id, 'latest' or 'all'")
    rep.add_argument("--sessions", help="several session ids separated by commas")
    rep.add_argument("--out", help="output folder (default results/reports/<session>)")
    rep.add_argument("--reference", help="model the speed ratios are relative to (default: the registry's reference model, attention)")
    rep.add_argument("--task", help="only these tasks (comma-separated)")
    rep.add_argument("--device", help="only sessions whose device name contains this (or 'cpu' / 'cuda')")
    rep.add_argument("--commits", help="only sessions at these commits: a git range A..B, or commit prefixes separated by commas")

    rep.set_defaults(func=cmd_report)

    ls = sub.add_parser("list", help="list tasks, models (with parameter counts), suites and stored sessions")
    ls.add_argument("--store", default=DEFAULT_PATH)
    for what_ in ("tasks", "models", "suites", "sessions"):
        ls.add_argument(f"--{what_}", action="store_true")

    ls.set_defaults(func=cmd_list)

    ex = sub.add_parser("export", help="print the tidy per-run table (CSV or JSON)")
    ex.add_argument("--store", default=DEFAULT_PATH)
    ex.add_argument("--session", default="latest", help="session id, 'latest' or 'all'")
    ex.add_argument("--format", choices=["csv", "json"], default="csv")
    ex.set_defaults(func=cmd_export)


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

    store = Store.open_read_only(a.store)
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
            counts = "  ".join(f"{s}={models.count_params(models.build(n, models.BUDGET_VOCAB, s)):,}" for s in models.sizes(n))
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
            store = Store.open_read_only(a.store)
            print(f"sessions in {a.store}:")
            for s in store.sessions():
                print(f"  {s['id']}  {s['status']:11s} {s['runs']:4d} runs  suite={s['suite'] or '-'}  {s['env'].get('device_name', '')}")
        else:
            print(f"sessions: none ({a.store} does not exist yet)")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from bench.results.store import Store
    from bench.results.tidy import runs_frame, select_sessions

    store = Store.open_read_only(a.store)
    df = runs_frame(store, select_sessions(store, a.session))
    if a.format == "csv":
        df = df.assign(epoch_seconds=df["epoch_seconds"].map(json.dumps), test_by_length=df["test_by_length"].map(json.dumps))
        sys.stdout.write(df.to_csv(index=False))
    else:
        records = df.astype(object).where(df.notna(), None).to_dict(orient="records")
        sys.stdout.write(json.dumps(records, indent=1) + "\n")  # full precision, unlike DataFrame.to_json
    return 0
