"""``s2sbench merge | report | list | export``: what the store holds, joined, reported, listed, exported."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from bench.cli import args
from bench.errors import UserError
from bench.results.store import DEFAULT_PATH


def add(sub: Any) -> None:
    mg = sub.add_parser("merge", help="join results stores (e.g. the shards of a suite) into one")
    mg.add_argument("out", metavar="OUT", help="the store merged into (created if missing)")
    mg.add_argument("inputs", metavar="IN", nargs="+", help="stores to merge in (read only)")

    mg.set_defaults(func=cmd_merge)

    rep = sub.add_parser("report", help="write the HTML and Markdown report of sessions from the store")
    rep.add_argument("--store", default=DEFAULT_PATH, metavar="PATH", help="the results store")
    rep.add_argument("--session", default="latest", metavar="ID", help="session id, 'latest' or 'all'")
    rep.add_argument("--sessions", metavar="ID,ID,...", help="several session ids separated by commas (instead of --session)")
    rep.add_argument("--out", metavar="DIR", help="output folder (default: reports/<session> beside the store)")
    rep.add_argument("--reference", metavar="MODEL", help="model the speed ratios are relative to (default: the registry's reference "
                     "model, attention)")
    rep.add_argument("--task", metavar="TASK[,TASK...]", help="only these tasks (comma-separated; default: every task)")
    rep.add_argument("--device", metavar="TEXT", help="only sessions whose device name contains this (or 'cpu' / 'cuda'; default: every "
                     "device)")
    rep.add_argument("--commits", metavar="A..B|SHA,SHA,...",
                     help="only sessions at these commits: a git range A..B, or commit prefixes separated by commas (default: every "
                     "commit)")

    rep.set_defaults(func=cmd_report)

    ls = sub.add_parser("list", help="list tasks, models (with parameter counts), suites and stored sessions")
    ls.add_argument("--store", default=DEFAULT_PATH, metavar="PATH", help="the results store --sessions lists")
    for what_, why in (("tasks", "the registered tasks"), ("models", "the models with their parameter count at each size"),
                       ("suites", "the suites and their number of runs"), ("sessions", "the sessions in the store and their status")):
        ls.add_argument(f"--{what_}", action="store_true", help=f"list {why} (default: without any of these flags, everything)")
    args.add_plugin_flag(ls)

    ls.set_defaults(func=cmd_list)

    ex = sub.add_parser("export", help="print the tidy per-run table (CSV or JSON), or copy runs to MLflow or TensorBoard")
    ex.add_argument("--store", default=DEFAULT_PATH, metavar="PATH", help="the results store")
    ex.add_argument("--session", default="latest", metavar="ID", help="session id, 'latest', 'all', or ids separated by commas")
    ex.add_argument("--format", choices=["csv", "json"],
                    help="the tidy table on stdout: csv or json (default: csv); with --predictions: csv or JSON lines")
    ex.add_argument("--predictions", action="store_true",
                    help="every test example of every run instead of the per-run table: run, source, references, hypothesis, "
                         "distance to the closest reference (default: off)")
    ex.add_argument("--to", choices=["mlflow", "tensorboard"],
                    help="copy every run of the sessions into MLflow or a TensorBoard log folder (default: neither; the table on stdout)")
    ex.add_argument("dest", nargs="?", metavar="DEST",
                    help="--to tensorboard: the log folder (required); --to mlflow: the tracking URI "
                         "(default $MLFLOW_TRACKING_URI, else sqlite:///<the store's folder>/mlflow.sqlite)")
    ex.add_argument("--experiment", metavar="NAME", help="--to mlflow: the experiment (default: s2sbench)")
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

    with Store.open_read_only(a.store) as store:
        filtering = a.device or a.commits
        ids = select_sessions(store, a.sessions or ("all" if filtering and a.session == "latest" else a.session))
        if filtering:
            ids = filter_sessions(store, ids, a.device, commit_list(a.commits) if a.commits else None)
        out = a.out or os.path.join(os.path.dirname(os.path.abspath(a.store)), "reports",
                                    ids[-1] if len(ids) == 1 else f"{ids[0]}..{ids[-1]}")
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
        raise UserError(f"--commits {spec}: not a git range here "
                        f"({out.stderr.strip().splitlines()[0] if out.stderr.strip() else 'git failed'})")
    return out.stdout.split()


def cmd_list(a: argparse.Namespace) -> int:
    every = not (a.tasks or a.models or a.suites or a.sessions)
    if a.tasks or a.models or every or a.plugin:
        from bench.runner import plugins

        plugins.load(args.plugin_refs(a.plugin))  # the entry points too: a broken one is one line, not a traceback
    if a.tasks or every:
        from bench.data import tasks

        print("tasks:")
        for n in tasks.names():
            e = tasks.entry(n)
            print(f"  {n:10s} {e.summary}{'  [alignment]' if e.aligned else ''}{_origin(e.plugin, e.plugin_version)}")
    if a.models or every:
        import models

        print(f"models (parameters at vocabulary {models.BUDGET_VOCAB}; budgets: "
              + ", ".join(f"{k} {v:,}" for k, v in models.BUDGETS.items()) + "):")
        for n in models.names():
            # Counted on the meta device: listing the 100 M-parameter sizes allocates nothing.
            counts = "  ".join(f"{s}={models.param_count(n, models.BUDGET_VOCAB, s):,}" for s in models.sizes(n))
            meta = models.entry(n).meta
            print(f"  {n:12s} {counts}")
            print(f"  {'':12s} {models.entry(n).summary}{_origin(meta.plugin, meta.plugin_version)}")
            for s, why in models.unreachable(n).items():
                print(f"  {'':12s} cannot reach {s}: {why}")
    if a.suites or every:
        from bench.spec import suite as suite_mod

        print("suites:")
        for n in suite_mod.available():
            _, desc, specs = suite_mod.load(n)
            print(f"  {n:12s} {len(specs):4d} runs  {desc}")
    if a.sessions or every:
        from bench.results.store import DamagedStore, Store

        if os.path.exists(a.store):
            with Store.open_read_only(a.store) as store:
                damaged = _list_sessions(store, a.store)
            if damaged:
                more = f" (and {len(damaged) - 1} more damaged session{'s' if len(damaged) > 2 else ''})" if len(damaged) > 1 else ""
                raise DamagedStore(a.store, damaged[0] + more)
        else:
            print(f"sessions: none ({a.store} does not exist yet)")
    return 0


def _list_sessions(store: Any, path: str) -> list[str]:
    """Print the store's sessions; -> what is damaged in those that cannot be read (listed as such)."""
    from bench.results.outcome import outcomes
    from bench.results.store import DamagedStore

    print(f"sessions in {path}:")
    damaged: list[str] = []
    for s in store.sessions():  # the status as it is now: a session whose process died reads interrupted
        who = ""
        if s["status"] == "running" and (owners := store.session_owners(s["id"])):
            who = f"  ({owners[-1].describe()})"
        try:  # a damaged session is listed as such; the others as always
            if s.get("damaged"):
                raise DamagedStore(path, s["damaged"])
            runs = outcomes(store.runs(s["id"])).text()
        except DamagedStore as e:
            damaged.append(e.what)
            runs = "DAMAGED (s2sbench check store)"
        print(f"  {s['id']}  {s['status']:11s} {runs}  suite={s['suite'] or '-'}  {s['env'].get('device_name', '')}{who}")
    return damaged


def _origin(plugin: str, version: str) -> str:
    return f"  [plugin {plugin}{' ' + version if version else ''}]" if plugin else ""


def cmd_export(a: argparse.Namespace) -> int:
    from bench.results.store import Store
    from bench.results.tidy import runs_frame, select_sessions

    if a.to and a.format:
        raise UserError(f"give --format (a table on stdout) or --to {a.to}, not both")
    if a.dest and not a.to:
        raise UserError(f"{a.dest}: a destination goes with --to mlflow or --to tensorboard")
    if a.experiment and a.to != "mlflow":
        raise UserError("--experiment goes with --to mlflow")
    if a.to == "tensorboard" and not a.dest:
        raise UserError("export --to tensorboard needs the log folder: s2sbench export --to tensorboard DIR")
    if a.predictions and a.to:
        raise UserError(f"--predictions goes to stdout (csv or JSON lines), not --to {a.to}")
    with Store.open_read_only(a.store) as store:
        if a.to:
            return _export_to(a, store, select_sessions(store, a.session))
        if a.predictions:
            from bench.results.outputs import write_predictions

            try:
                write_predictions(store, select_sessions(store, a.session), sys.stdout, a.format or "csv")
                sys.stdout.flush()
            except BrokenPipeError:  # `| head`: the reader has what it wanted (Python's documented way out of a closed pipe)
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        df = runs_frame(store, select_sessions(store, a.session))
    if (a.format or "csv") == "csv":
        df = df.assign(epoch_seconds=df["epoch_seconds"].map(json.dumps), test_by_length=df["test_by_length"].map(json.dumps))
        sys.stdout.write(df.to_csv(index=False))
    else:
        records = df.astype(object).where(df.notna(), None).to_dict(orient="records")
        sys.stdout.write(json.dumps(records, indent=1) + "\n")  # full precision, unlike DataFrame.to_json
    return 0


def _export_to(a: argparse.Namespace, store: Any, sessions: list[str]) -> int:
    import shlex

    from bench.results.export import export_runs

    what = f"{len(sessions)} session{'s' if len(sessions) != 1 else ''}"
    if a.to == "mlflow":
        from bench.results import export_mlflow

        dest = export_mlflow.destination(export_mlflow.tracking_uri(a.dest, a.store))  # probed before any work
        m = export_mlflow.export(export_runs(store, sessions), dest, a.experiment or export_mlflow.DEFAULT_EXPERIMENT)
        print(f"mlflow: {m.written} runs written, {m.skipped} already there"
              + (f", {m.rewritten} rewritten (an earlier export was cut short)" if m.rewritten else "")
              + f" ({what}; experiment {m.experiment!r} at {m.uri})")
        print(f"see them: mlflow ui --backend-store-uri {shlex.quote(m.uri)}" if "://" in m.uri and not m.uri.startswith("http")
              else f"see them at {m.uri}")
    else:
        from bench.results import export_tensorboard

        export_tensorboard.probe(a.dest)  # before any work
        t = export_tensorboard.export(export_runs(store, sessions), a.dest)
        print(f"tensorboard: {t.written} runs written, {t.skipped} already there"
              + (f", {t.replaced} replaced by a newer record" if t.replaced else "")
              + f" ({what}; in {t.logdir})")
        print(f"see them: tensorboard --logdir {shlex.quote(t.logdir)}")
    return 0
