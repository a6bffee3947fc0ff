"""Every command in the README and the pages under docs/ runs as written: each ``s2sbench ...``, ``python -m
bench...`` and ``torchrun ... -m bench ...`` line of a shell block is parsed by the real parser, and a ``run``
line is turned into its run specs and checked as a session would before it starts (models, sizes, options,
suite files and keys) -- without training anything. ``make``, ``tox -e`` and ``pytest`` lines name targets,
environments and files that exist.

Explicitly handled:
* placeholders for the book's data (``path/to/date.txt``, ``path/to/book/data``) and the data beside the
  project (``../shared/...``) become the real files when they are here; where they are not, the line is
  parsed but its runs are not built (the data is needed for that);
* GPU-only lines (``--device cuda``) are parsed and built like any other; only the device is not checked,
  since a session checks it on the machine that runs it;
* shell variables (``$ID``, ``${SLURM_ARRAY_TASK_ID}``) stand for 1; GitHub expressions appear only in YAML;
* files the reader writes (``my-suite.toml``, ``my_model.py``) are parsed only, and so are the lines after a
  ``pip install`` of a plugin in the same block (they name its models and tasks; CI runs the example plugin
  itself: ``make plugin-example``);
* a line that shows a refusal says so in its comment (``# --lr must be a finite number > 0, got nan``): it must
  be refused, with that message.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shlex
from dataclasses import dataclass

import pytest

from tests.conftest import REPO

SHARED = os.path.normpath(os.path.join(REPO, "..", "shared"))
BOOK = os.path.join(SHARED, "data", "book")
# What the docs write for data they cannot ship -> where it is on a machine that has it.
PLACEHOLDERS = {"path/to/date.txt": os.path.join(BOOK, "date.txt"), "path/to/book/data": BOOK, "../shared": SHARED}
SHELL = ("sh", "bash", "shell", "console", "")
USER_FILES = ("my-suite.toml", "my.toml", "my_model.py", "path/to/my_package", "my_installed.module")  # the reader's own: parsed only
REDIRECTS = (">", ">>", "2>", "2>&1", "<", "&>")


@dataclass(frozen=True)
class Command:
    where: str  # file:line
    argv: list[str]  # as typed, variables filled in
    needs_data: bool  # names a file of the data beside the project
    comment: str = ""  # what the page says it prints, after '#' on its line
    after_plugin_install: bool = False  # a `pip install` of a plugin came before it in its block


def _pages() -> list[str]:
    docs = os.path.join(REPO, "docs")
    return [os.path.join(REPO, "README.md")] + sorted(os.path.join(docs, f) for f in os.listdir(docs) if f.endswith(".md"))


def _lines(path: str) -> list[tuple[int, str, bool]]:
    """(line number, logical line, whether a plugin was pip-installed earlier in its block) of every shell code
    block: continuations joined."""
    out: list[tuple[int, str, bool]] = []
    installed = False
    lang = None
    pending, start = "", 0
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            fence = re.match(r"^```(\w*)", line)
            if fence:
                lang = None if lang is not None else fence.group(1)
                installed = False
                continue
            if lang is None or lang not in SHELL:
                continue
            if not pending:
                start = n
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            out.append((start, pending + line, installed))
            installed = installed or bool(re.match(r"^\s*pip install .*examples/", pending + line))
            pending = ""
    return out


def _fill(token: str) -> str:
    token = re.sub(r"\$\{?\(?[A-Za-z_][A-Za-z_0-9]*\)?\}?", "1", token)  # shell variables
    for k, v in PLACEHOLDERS.items():
        token = token.replace(k, v)
    return token


def commands() -> list[Command]:
    out = []
    for path in _pages():
        for n, line, after_install in _lines(path):
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError:
                continue
            said = re.search(r"\s#\s+(.*)$", line)
            segment: list[str] = []
            skip_next = False
            for t in tokens + [";"]:
                if skip_next:  # the file a redirection names
                    skip_next = False
                elif t in (";", "&&", "||", "|", "&"):  # "&": a command sent to the background ends there too
                    if segment:
                        needs = any(k in x for x in segment for k in PLACEHOLDERS)
                        out.append(Command(f"{os.path.relpath(path, REPO)}:{n}", [_fill(x) for x in segment], needs,
                                           said.group(1).strip() if said else "", after_install))
                    segment = []
                elif t in REDIRECTS:
                    skip_next = not t.endswith("&1")
                elif not re.match(r"^\d?>", t):
                    segment.append(t)
    return out


def _ours(argv: list[str]) -> tuple[str, list[str]] | None:
    """-> (what runs, its arguments) for the commands this project provides; None for others (git, sbatch, ...)."""
    while argv and re.match(r"^[A-Z_]+=", argv[0]):  # VAR=value before the command
        argv = argv[1:]
    if not argv:
        return None
    exe = os.path.basename(argv[0])
    if exe == "s2sbench":
        return "bench", argv[1:]
    if exe in ("python", "python3") and len(argv) > 2 and argv[1] == "-m":
        return argv[2], argv[3:]
    if exe == "torchrun" and "-m" in argv:
        i = argv.index("-m")
        return argv[i + 1], argv[i + 2:]
    if exe in ("make", "tox", "pytest"):
        return exe, argv[1:]
    return None


ALL = [c for c in commands() if _ours(c.argv)]


def test_the_docs_have_commands_to_check() -> None:
    assert sum(_ours(c.argv)[0] == "bench" for c in ALL) >= 20


class _Parsed(Exception):
    def __init__(self, ns: argparse.Namespace) -> None:
        self.ns = ns


def _parse_module(module: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    """Run ``module.main(args)`` only as far as its argument parser: the parsed namespace, or the parser's error."""
    real = argparse.ArgumentParser.parse_args

    def parse_and_stop(self: argparse.ArgumentParser, *a: object, **kw: object) -> argparse.Namespace:
        raise _Parsed(real(self, *a, **kw))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    mod = importlib.import_module(module)
    with pytest.raises(_Parsed) as got:
        mod.main(args)
    return got.value.ns


def _check_run(ns: argparse.Namespace) -> None:
    """What ``run`` refuses before anything starts: the session's settings, the specs and their models, sizes and
    options, and -- on a CPU, the one device every machine has -- what the runs ask of the device."""
    import torch

    from bench.cli import args
    from bench.cli.run import specs_from_flags
    from bench.runner.session import check_device, validate

    sc = args.session_config(ns.device, ns.threads, ns.deterministic)
    _, specs = specs_from_flags(ns)
    assert specs
    for s in specs:
        validate(s)
        if sc.device == "cpu":
            check_device(s, torch.device("cpu"))


def _refusal(said: str) -> str | None:
    """The message a page's comment shows for a refused command, or None: the words s2sbench prints, less the
    page's elisions ('...') and glosses in brackets (``--threads must be >= 1, got 0 (not "all cores")``)."""
    msg = re.sub(r"\s*\([^)]*\)$", "", said.removeprefix("... ").split("; ...")[0]).strip()
    return msg if re.search(r"\b(must|needs|one of|cannot|not allowed)\b", msg) else None


@pytest.mark.parametrize("cmd", ALL, ids=[f"{c.where} {' '.join(c.argv[:4])}" for c in ALL])
def test_every_documented_command_runs_as_written(cmd: Command, monkeypatch: pytest.MonkeyPatch) -> None:
    what, args = _ours(cmd.argv)
    if what == "make":
        with open(os.path.join(REPO, "Makefile"), encoding="utf-8") as f:
            makefile = f.read()
        for target in (a for a in args if "=" not in a and not a.startswith("-")):
            assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"{cmd.where}: make has no target {target}"
        return
    if what == "tox":
        with open(os.path.join(REPO, "tox.ini"), encoding="utf-8") as f:
            envs = set(re.findall(r"^\[testenv:([\w-]+)\]", f.read(), re.M)) | {"py", "lint"}
        assert set(args[args.index("-e") + 1].split(",")) <= envs, cmd.where
        return
    if what == "pytest":
        paths = [a.split("::")[0] for a in args if not a.startswith("-") and ("/" in a or a.endswith(".py"))]
        assert all(os.path.exists(os.path.join(REPO, p)) for p in paths), f"{cmd.where}: {paths}"
        return
    if what.startswith("tests."):
        assert importlib.util.find_spec(what) is not None, f"{cmd.where}: no module {what}"
        return
    if what != "bench":  # python -m bench.checks.X ...: that module's own parser
        _parse_module(what, args, monkeypatch)
        return
    from bench.cli import build_parser

    try:
        ns = build_parser().parse_args(args)
    except SystemExit as e:
        pytest.fail(f"{cmd.where}: s2sbench {' '.join(args)}: the parser refused it (exit {e.code})")
    if ns.cmd != "run" or any(f in a for a in cmd.argv for f in USER_FILES) or cmd.after_plugin_install:
        return
    if cmd.needs_data and not os.path.isdir(BOOK):
        pytest.skip("needs the book's data beside the project (parsed only)")
    from bench.errors import UserError

    expected = _refusal(cmd.comment)
    try:
        _check_run(ns)
    except UserError as e:
        assert expected is not None, f"{cmd.where}: refused: {e}"
        assert expected in str(e), f"{cmd.where}: the page says {expected!r}, s2sbench says {e}"
        return
    assert expected is None, f"{cmd.where}: the page shows a refusal ({expected!r}) that does not happen"
