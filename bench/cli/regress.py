"""``s2sbench compare | baseline | calibrate``: regression tracking against a session or a committed baseline."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from bench.cli import args
from bench.results.store import DEFAULT_PATH


def add(sub: Any) -> None:
    cmp_ = sub.add_parser("compare", help="compare two sessions, or a baseline and a session: ratios, verdicts; exit 1 on regression")
    cmp_.add_argument("base", metavar="BASE", help="session id / prefix / 'latest', or a baseline file (.json)")
    cmp_.add_argument("new", metavar="NEW", help="session id / prefix / 'latest', or a baseline file (.json)")
    cmp_.add_argument("--store", default=DEFAULT_PATH, metavar="PATH", help="the store the sessions are in")
    cmp_.add_argument("--fail-on", metavar="KIND:LIMIT,...",
                      help="thresholds per kind (time, accuracy, memory); 'time:off' disables one "
                           "(default: time:+25%%,accuracy:-0.5pt,memory:+20%%)")
    cmp_.add_argument("--markdown", metavar="FILE", help="also write the Markdown table to FILE (e.g. for a pull-request comment)")
    cmp_.add_argument("--changes-only", action="store_true", help="list only rows whose verdict is not 'same' (default: every row)")

    cmp_.set_defaults(func=cmd_compare)

    bl = sub.add_parser("baseline", help="save a session as a committed baseline file")
    bl_sub = bl.add_subparsers(dest="baseline_cmd", title="commands", metavar="COMMAND", parser_class=args.Parser)
    args.help_without_command(bl)
    bls = bl_sub.add_parser("save", help="write DIR/NAME.json from a stored session")
    bls.add_argument("name", metavar="NAME", help="the baseline's name: the file is DIR/NAME.json")
    bls.add_argument("--store", default=DEFAULT_PATH, metavar="PATH", help="the store the session is in")
    bls.add_argument("--session", default="latest", metavar="ID", help="session id, prefix or 'latest'")
    bls.add_argument("--dir", default=os.path.join("results", "baselines"), metavar="DIR", help="the folder of baselines")
    bls.add_argument("--force", action="store_true", help="replace DIR/NAME.json if it exists (default: refuse)")

    bls.set_defaults(func=cmd_baseline)

    cal = sub.add_parser("calibrate", help="time the fixed calibration workload on a device (what sessions record)")
    cal.add_argument("--device", default="auto", metavar="DEVICE", help="auto | cpu | cuda | cuda:N; auto: cuda when there is one")
    cal.add_argument("--threads", type=args.nonneg_int, metavar="N", help="CPU threads (torch.set_num_threads; default: torch's, one per "
                     "core)")
    cal.set_defaults(func=cmd_calibrate)


def cmd_compare(a: argparse.Namespace) -> int:
    from bench.regress.compare import compare_refs

    c = compare_refs(a.base, a.new, a.store, a.fail_on)
    md = c.markdown(changes_only=a.changes_only)
    sys.stdout.write(md)
    if a.markdown:
        from bench.results.files import write_text

        write_text(a.markdown, md, "Markdown table")  # whole or not at all: a full disk leaves no empty file
    return c.exit_code()


def cmd_baseline(a: argparse.Namespace) -> int:
    from bench.regress.sides import save_baseline

    path, side = save_baseline(a.store, a.session, a.name, a.dir, force=a.force)
    failed = sum(len(g.failed) for g in side.groups.values())
    ok = sum(len(g.seeds) for g in side.groups.values())
    print(f"baseline {path}: session {side.session}, {len(side.groups)} task/model/size groups, {ok} runs ok, {failed} failed")
    if side.calibration is None:
        print("note: the session has no calibration; comparisons against this baseline will compare raw speed")
    return 0


def cmd_calibrate(a: argparse.Namespace) -> int:
    import torch

    from bench.measure.calibrate import calibrate
    from bench.measure.device import resolve_device

    sc = args.session_config(a.device, a.threads)
    dev = resolve_device(sc.device)
    if sc.threads:
        torch.set_num_threads(sc.threads)
    print(json.dumps(calibrate(dev), indent=2, sort_keys=True))
    return 0
