"""``s2sbench check NAME``: the self-checks' front door lists every check, shows each one's options, refuses an
unknown name in one line, runs a check as ``python -m bench.checks.NAME`` does, and loads no check until it runs one."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import check
from tests.conftest import REPO, run_cli

ON_DISK = sorted(p.stem for p in Path(REPO, "bench", "checks").glob("*.py") if p.stem != "__init__")


def _python(*argv: str, cwd: str = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_every_module_of_the_checks_folder_is_listed_with_one_line() -> None:
    """A new check is reachable the moment its module exists: the list is the folder."""
    assert check.names() == ON_DISK and len(ON_DISK) >= 10
    for argv in (["check"], ["check", "--list"]):
        rc, out, err = run_cli(argv)
        assert rc == 0, err
        lines = out.strip().splitlines()
        assert [ln.split()[0] for ln in lines] == ON_DISK  # one line each, in order
        assert all(len(ln.split(maxsplit=1)) == 2 for ln in lines)  # ... each with what the check does


@pytest.mark.parametrize("name", ON_DISK)
def test_check_name_help_shows_that_check_s_options(name: str) -> None:
    rc, out, err = run_cli(["check", name, "--help"])
    assert rc == 0, err
    assert out.startswith(f"usage: s2sbench check {name}")
    # the module's own parser (the one `python -m bench.checks.NAME` parses with), under the front door's name
    assert out == importlib.import_module(f"bench.checks.{name}").parser(f"s2sbench check {name}").format_help()
    assert "--help" in out


def test_an_unknown_check_is_one_line_and_exit_2() -> None:
    rc, out, err = run_cli(["check", "nosuch", "--quick"])
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "nosuch" in lines[0] and "screenshot" in lines[0] and "Traceback" not in err


@pytest.mark.parametrize("argv", [["mutation", "--list"], ["screenshot", "missing.html"]])
def test_both_doors_give_the_same_output(tmp_path, argv: list[str]) -> None:
    old = _python("-m", f"bench.checks.{argv[0]}", *argv[1:], cwd=str(tmp_path))
    new = _python("-m", "bench", "check", *argv, cwd=str(tmp_path))
    assert (new.returncode, new.stdout, new.stderr) == (old.returncode, old.stdout, old.stderr)
    assert old.stdout or old.stderr  # the check did say something
    if argv[0] == "screenshot":
        assert old.returncode == 2 and "missing.html" in old.stderr


def test_listing_imports_no_check_and_no_torch() -> None:
    """Lazy: the command line, even listing the checks, imports none of them (they load torch)."""
    code = ("import sys\nfrom bench.cli import main\nmain(['check', '--list'])\n"
            "import json; print(json.dumps(sorted(m for m in sys.modules if m.startswith('bench.checks.') or m == 'torch')))")
    p = _python("-c", code)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == []
