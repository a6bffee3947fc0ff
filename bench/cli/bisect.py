"""``s2sbench bisect GOOD BAD``: the commit between GOOD and BAD where a regression ``compare`` found began."""

from __future__ import annotations

import argparse
import os
import shlex
from typing import Any

from bench.cli import args
from bench.results.store import DEFAULT_PATH


def add(sub: Any) -> None:
    b = sub.add_parser("bisect", help="find the commit that caused a regression: git bisect run with a suite and compare's verdict")
    b.add_argument("good", metavar="GOOD", help="a commit without the regression")
    b.add_argument("bad", metavar="BAD", help="a commit with it (e.g. HEAD)")
    what = b.add_argument_group("what runs at each commit (default: the runs that regressed between --base and --new)")
    what.add_argument("--base", metavar="REF", help="the comparison that regressed: its base (a session or a baseline .json)")
    what.add_argument("--new", metavar="REF", default="latest", help="... and its new side (default: latest); its runs' configs are run "
                      "again")
    what.add_argument("--store", default=DEFAULT_PATH, metavar="PATH", help="the store --base/--new are in")
    what.add_argument("--suite", metavar="NAME|FILE", help="run this suite at each commit instead (a name or a .toml file)")
    what.add_argument("--data-dir", metavar="DIR", help="folder of the data files the suite names (default: the suite file's folder)")
    judge = b.add_argument_group("the verdict at each commit")
    judge.add_argument("--fail-on", metavar="KIND:LIMIT,...", help="compare's thresholds (default: compare's, "
                       "time:+25%%,accuracy:-0.5pt,memory:+20%%)")
    judge.add_argument("--metric", metavar="METRIC[,METRIC...]",
                       help="judge only these metrics (names from the catalogue, comma-separated), e.g. s_per_epoch (default: every "
                       "metric)")
    how = b.add_argument_group("how it runs")
    how.add_argument("--device", default="cpu", metavar="DEVICE", help="cpu | cuda | cuda:N (default: cpu)")
    how.add_argument("--threads", type=args.nonneg_int, metavar="N", help="CPU threads (default: 1 on cpu: stable timings on shared "
                     "machines)")
    how.add_argument("--repo", default=".", metavar="DIR", help="the git repository (default: ., the one here)")
    how.add_argument("--out", metavar="DIR", help="folder for the suite, the store and the logs (default: results/bisect/<good>-<bad>)")
    b.set_defaults(func=cmd_bisect)


def cmd_bisect(a: argparse.Namespace) -> int:
    from bench.measure.device import resolve_device
    from bench.regress import bisect
    from bench.spec.run import parse_device

    metrics = [m.strip() for m in a.metric.split(",") if m.strip()] if a.metric else None
    parse_device(a.device)
    resolve_device(a.device)  # every commit runs on this machine: no CUDA here is refused before any checkout
    threads = a.threads or (1 if a.device == "cpu" else None)
    run_args = ["--device", a.device, "--deterministic"] + (["--threads", str(threads)] if threads else [])
    plan = bisect.plan_from(a.repo, a.good, a.bad, a.out, a.suite, a.base, a.new, a.store, a.fail_on, metrics, run_args, a.data_dir)
    print(f"bisect {plan.good[:10]}..{plan.bad[:10]}: every commit runs {plan.suite}" +
          (f", judged on {len(plan.targets)} regressed figure{'s' if len(plan.targets) != 1 else ''}" if plan.targets else ""))
    res = bisect.run(plan, echo=print)
    store = shlex.quote(os.path.relpath(plan.store))
    if res.first_bad is None:
        print(f"no single first bad commit: skipped commits leave {len(res.candidates)} candidates: "
              + ", ".join(c[:10] for c in res.candidates))
        print(f"sessions: s2sbench list --sessions --store {store}; log: {os.path.join(plan.out, 'git-bisect.log')}")
        return 1
    there = res.step(res.first_bad)
    print(f"first bad commit: {res.first_bad} {bisect.subject(plan.repo, res.first_bad)}")
    if there is not None:
        print(f"there: {there.detail} against GOOD {plan.good[:10]}")
        if there.session:
            print(f"compare: s2sbench compare {res.plan.reference} {there.session} --store {store}")
    return 0
