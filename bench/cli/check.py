"""``s2sbench check store [PATH]``: is a results store whole? SQLite's integrity check and the store's own invariants
(``bench.results.integrity``). Exit 0: clean; 1: damaged (what, one line each); 2: bad input (no store there, not
a store, another schema version).

A group of its own, ``check``, so that further checks of the harness can join it as names beside ``store``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.cli import args
from bench.results.store import DEFAULT_PATH


def add(sub: Any) -> None:
    c = sub.add_parser("check", help="check a results store for damage (s2sbench check store [PATH])")
    names = c.add_subparsers(dest="check_cmd", required=True, parser_class=args.Parser, metavar="NAME")
    st = names.add_parser("store", help="SQLite's integrity check and the store's invariants: exit 0 clean, 1 damaged, 2 bad input")
    st.add_argument("path", metavar="PATH", nargs="?", default=DEFAULT_PATH, help=f"the store (default {DEFAULT_PATH})")
    st.set_defaults(func=cmd_check_store)


def cmd_check_store(a: argparse.Namespace) -> int:
    from bench.results.integrity import check

    rep = check(a.path, time.time())
    for line in rep.lines():
        print(line)
    return 0 if rep.clean else 1
