"""``--help`` everywhere: every sub-command's parser (and every self-check's) is walked, and every option shows its default, every
choice list is complete (the registries' every model, size and task), and placeholders are the user's words."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from tests.conftest import run_cli


def _parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    from bench.cli import build_parser

    todo = [("s2sbench", build_parser())] + list(_check_parsers())
    while todo:
        name, p = todo.pop(0)
        yield name, p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                todo += [(f"{name} {n}", sp) for n, sp in a.choices.items()]


def _check_parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Each self-check's own parser, as `s2sbench check NAME --help` shows it."""
    import importlib

    from bench.cli import check

    for name in check.names():
        yield f"s2sbench check {name}", importlib.import_module(f"bench.checks.{name}").parser(prog=f"s2sbench check {name}")


def _options() -> Iterator[tuple[str, argparse.ArgumentParser, argparse.Action]]:
    for name, p in _parsers():
        for a in p._actions:
            if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                yield name, p, a


def _help_of(p: argparse.ArgumentParser, a: argparse.Action) -> str:
    """The action's paragraph of ``--help`` as printed, its lines joined."""
    text = p.format_help()
    flag = max(a.option_strings, key=len) if a.option_strings else (a.metavar or a.dest)
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if re.match(rf"\s+(-\w, )?{re.escape(flag)}(\s|$)", ln))
    out = [lines[start]]
    for ln in lines[start + 1:]:
        if not ln.startswith(" " * 6) or re.match(r"\s{2,4}-", ln):
            break
        out.append(ln)
    return " ".join(x.strip() for x in out)


OPTIONS = list(_options())
IDS = [f"{n} {a.option_strings[-1] if a.option_strings else a.dest}" for n, _, a in OPTIONS]


@pytest.mark.parametrize(("cmd", "parser", "action"), OPTIONS, ids=IDS)
def test_every_option_says_what_it_is_and_its_default(cmd: str, parser: argparse.ArgumentParser, action: argparse.Action) -> None:
    shown = _help_of(parser, action)
    assert action.help or getattr(action, "late_help", None), f"{cmd} {action.option_strings}: no help text"
    d = action.default
    if action.option_strings and d not in (None, False, [], argparse.SUPPRESS):
        assert "default" in shown and str(d) in shown, f"{cmd}: {shown!r} does not show its default {d!r}"


def test_the_run_flags_show_the_defaults_the_configs_have() -> None:
    """``--epochs`` and friends have no argparse default (a suite's value wins): their help names the config's."""
    from bench.cli import build_parser
    from bench.spec.run import ThroughputSpec, TrainConfig

    p = dict(_parsers())["s2sbench run"]
    by_flag = {a.option_strings[-1]: a for a in p._actions if a.option_strings}
    for flag, value in (("--epochs", TrainConfig().epochs), ("--batch-size", TrainConfig().batch_size), ("--lr", TrainConfig().lr),
                        ("--target", TrainConfig().target), ("--warmup-steps", ThroughputSpec().warmup), ("--amp", TrainConfig().amp),
                        ("--capture", TrainConfig().capture)):
        shown = _help_of(p, by_flag[flag])
        assert "default" in shown and (f"{value:g}" if isinstance(value, float) else str(value)) in shown, (flag, shown)
    assert build_parser  # the parser under test is the real one


def test_choices_are_complete() -> None:
    """Every registered model, size and task is listed where a flag takes one; argparse choices all show."""
    import models
    from bench.data import tasks

    sizes = {s for n in models.names() for s in models.sizes(n)}
    assert {"large", "xl", "book"} <= sizes
    p = dict(_parsers())["s2sbench run"]
    by_flag = {a.option_strings[-1]: a for a in p._actions if a.option_strings}
    for flag, names in (("--size", sizes), ("--model", set(models.names())), ("--task", set(tasks.names()))):
        shown = _help_of(p, by_flag[flag])
        missing = {n for n in names if not re.search(rf"\b{re.escape(n)}\b", shown)}
        assert not missing, f"run {flag} does not list {sorted(missing)}: {shown!r}"
    for cmd, parser, a in OPTIONS:
        if a.choices and not isinstance(a.choices, dict):
            text = parser.format_help()
            assert all(str(c) in text for c in a.choices), (cmd, a.option_strings)


def test_placeholders_are_the_user_s_words_not_internal_names() -> None:
    """No placeholder is a destination name the user never typed (TIME_BUDGET_S, LENGTHS)."""
    for cmd, parser, a in OPTIONS:
        if not a.option_strings or a.nargs == 0:
            continue
        text = parser.format_help()
        internal = a.dest.upper()
        typed = max(a.option_strings, key=len).lstrip("-").replace("-", "_").upper()
        if internal != typed:
            assert not re.search(rf"\b{internal}\b", text), f"{cmd} {a.option_strings}: shows {internal}"


def test_bare_command_lists_the_commands() -> None:
    rc, out, err = run_cli([])
    assert rc == 0 and not err
    for c in ("run", "report", "compare", "baseline", "bisect"):
        assert re.search(rf"^\s+{c}\s", out, re.M), c
    assert "required" not in out
    rc, out, err = run_cli(["baseline"])
    assert rc == 0 and re.search(r"^\s+save\s", out, re.M)


def test_help_shows_without_error_for_every_command() -> None:
    for cmd, _ in _parsers():
        rc, out, _err = run_cli(cmd.split()[1:] + ["--help"])
        assert rc == 0 and out.startswith("usage:"), cmd
