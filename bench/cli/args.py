"""Argument types shared by the sub-commands: each turns one string into one value or an argparse error."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from bench.errors import UserError


class Formatter(argparse.HelpFormatter):
    """``--help`` in the user's words: a value's placeholder is named after the flag (``--time-budget TIME_BUDGET``,
    never an internal name such as ``TIME_BUDGET_S``), and every default is shown -- ``(default: X)`` is added
    unless the help text already says what happens without the flag."""

    def _get_default_metavar_for_optional(self, action: argparse.Action) -> str:
        return max(action.option_strings, key=len).lstrip("-").replace("-", "_").upper()

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if "default" in text or not action.option_strings or d is None or d is argparse.SUPPRESS or d is False or d == []:
            return text
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """One line and exit 2 on a usage error; help in the user's words (:class:`Formatter`), its registry lists
    filled in only when help is shown (:func:`late_help`), so that parsing never imports torch."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        kw.setdefault("formatter_class", Formatter)
        super().__init__(*a, **kw)

    def error(self, message: str) -> None:  # one line, exit 2 -- not usage plus traceback
        self.exit(2, f"{self.prog}: error: {message}\n")

    def format_help(self) -> str:
        for action in self._actions:
            late = getattr(action, "late_help", None)
            if late is not None:
                action.help = late().replace("%", "%%")
        return super().format_help()


def help_without_command(p: argparse.ArgumentParser) -> None:
    """A command group typed without a sub-command (``s2sbench``, ``s2sbench baseline``) prints its help -- the list
    of commands -- and exits 0, rather than an error that names an internal argument."""

    def show(_: argparse.Namespace) -> int:
        p.print_help()
        return 0

    p.set_defaults(func=show)


def late_help(action: argparse.Action, text: Callable[[], str]) -> argparse.Action:
    """Give ``action`` a help text computed when help is shown: the lists of registered models, sizes and tasks
    come from the registries, which import torch -- too slow (and too heavy for ``report``) on every parse."""
    action.late_help = text  # type: ignore[attr-defined]
    action.help = action.help or "(see --help)"
    return action


def default_of(cls: type, name: str) -> str:
    """A frozen config field's default as ``--help`` says it: ``10``, ``0.001``, ``0.99``."""
    v = next(f.default for f in fields(cls) if f.name == name)
    return f"{v:g}" if isinstance(v, float) else str(v)


def nonneg_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {s!r}")
    return v


def seeds(s: str) -> list[int]:
    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be integers separated by commas: {s!r}") from None


def fraction(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
    if v > 1:
        v /= 100  # "99" means 99 %
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"target accuracy must be in (0, 1] or (0, 100] %: {s!r}")
    return v


def option(s: str) -> tuple[str, Any]:
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


def session_config(device: str, threads: int | None, deterministic: bool = False) -> Any:
    """The session's ``SessionConfig`` from ``--device``/``--threads``/``--deterministic``: the dataclass checks
    the values (``--threads 0`` is refused, not read as "all cores"); its message is worded as the flag."""
    from bench.spec.run import SessionConfig, SpecError

    try:
        return SessionConfig(device=device, threads=threads, deterministic=deterministic)
    except SpecError as e:
        raise UserError(f"--{e.key.replace('_', '-')} {e.rule}") from None


def session_id(s: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", s) or s in ("latest", "all"):
        raise argparse.ArgumentTypeError(f"a session id is 1-64 letters, digits, '.', '_', ':' or '-' (not 'latest' or 'all'): {s!r}")
    return s


PLUGIN_HELP = ("load models and tasks from a Python file, a package folder (written with a /) or an importable module, as if "
               "built in (repeatable; suite key plugins; default: none -- installed packages' entry points load without it)")


def add_plugin_flag(p: Any) -> None:
    p.add_argument("--plugin", action="append", default=[], metavar="PATH.py|MODULE", help=PLUGIN_HELP)


def plugin_refs(values: list[str]) -> list[str]:
    """``--plugin`` values -> what a run carries (paths made absolute against the working directory, module names as
    they are: ``bench.spec.run.plugin_ref``); a value that is neither is one line naming the flag."""
    from bench.spec.run import SpecError, plugin_ref

    try:
        return [plugin_ref(v) for v in values]
    except SpecError as e:
        raise UserError(f"--plugin {e.rule}") from None
