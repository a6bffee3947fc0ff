"""``s2sbench check NAME [options]``: the harness's self-checks (``bench/checks/``) through one front door.

Every module of ``bench/checks/`` is a check. Its docstring's first paragraph says what it checks, its
``parser(prog)`` declares its options and its ``main(argv, prog)`` runs it: the very parser and ``main`` that
``python -m bench.checks.NAME`` runs, so the two doors cannot drift apart. Loaded lazily: the list reads
the docstrings from the files, and only the check that runs is imported -- the checks import torch and most
of the harness, which ``s2sbench report`` must not load. This module is the one place that imports the
checks (tests/test_layout.py); the checks import no part of ``bench.cli``.
"""

from __future__ import annotations

import argparse
import ast
import importlib
from pathlib import Path
from typing import Any

from bench.errors import UserError

CHECKS = Path(__file__).resolve().parents[1] / "checks"  # the folder of the checks: each module one check


def names() -> list[str]:
    """Every check, by module name: the modules of ``bench/checks/`` (a new module is a new check)."""
    return sorted(p.stem for p in CHECKS.glob("*.py") if not p.stem.startswith("_"))


def summary(name: str) -> str:
    """The first paragraph of a check's docstring on one line, read from its file (nothing imported)."""
    doc = ast.get_docstring(ast.parse((CHECKS / f"{name}.py").read_text(encoding="utf-8"))) or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def listing() -> str:
    """The checks, one line each: name and summary."""
    all_ = names()
    w = max(map(len, all_), default=0)
    return "\n".join(f"{n:<{w}}  {summary(n)}" for n in all_)


def add(sub: Any) -> None:
    c = sub.add_parser("check", help="run a self-check of the harness (`s2sbench check --list`; `s2sbench check NAME --help`)",
                       description="Run one of the harness's self-checks with its own options, as `python -m bench.checks.NAME` does.")
    c.add_argument("--list", action="store_true", help="list the checks, one line each, and run nothing (default when no NAME is given)")
    c.add_argument("name", nargs="?", metavar="NAME", help=f"the check to run, one of: {', '.join(names())}")
    c.add_argument("options", nargs=argparse.REMAINDER, metavar="...",
                   help="the check's own options (`s2sbench check NAME --help` lists them)")
    c.set_defaults(func=cmd_check)


def cmd_check(a: argparse.Namespace) -> int:
    if a.list or a.name is None:
        print(listing())
        return 0
    if a.name not in names():
        raise UserError(f"unknown check {a.name!r}; one of {', '.join(names())} (see `s2sbench check --list`)")
    check = importlib.import_module(f"bench.checks.{a.name}")  # here and only here: the checks load torch
    return check.main(a.options, prog=f"s2sbench check {a.name}")
