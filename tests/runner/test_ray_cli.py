"""The refusals of ``--executor ray`` that need no Ray: they run everywhere, Ray installed or not (the tests
that start Ray are in test_ray.py and skip without it).

An address is checked before Ray sees it (Ray retries an unreachable one for minutes): a missing port and a
port nothing listens at are one line each; a listening port passes. Without Ray installed, asking for it is
one line naming the install command, and no store is created.
"""

from __future__ import annotations

import socket
import sys

import pytest

from bench.errors import UserError
from bench.runner.ray_executor import resolve_address
from tests.conftest import run_cli

RUN = ["run", "--task", "date", "--model", "attention", "--size", "tiny", "--device", "cpu"]


def test_address_without_the_ray_executor_is_refused(tmp_path):
    rc, out, err = run_cli(["run", "--task", "date", "--model", "attention", "--address", "auto", "--store", str(tmp_path / "s.sqlite")])
    assert rc == 2 and "--executor ray" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.sqlite").exists()


def test_ray_executor_without_ray_installed_is_one_line_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as where it is not installed
    store = tmp_path / "s.sqlite"
    rc, out, err = run_cli([*RUN, "--executor", "ray", "--store", str(store)])
    assert rc == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "pip install" in lines[0] and "Traceback" not in err
    assert not store.exists()


def test_an_address_needs_a_port_and_something_listening_there():
    with pytest.raises(UserError, match="HOST:PORT"):
        resolve_address(None, "10.0.0.5")
    with pytest.raises(UserError, match="nothing answers"):
        resolve_address(None, "127.0.0.1:1")
    with socket.socket() as s:  # a listening port passes, unchanged (ray:// prefix and all)
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert resolve_address(None, f"127.0.0.1:{port}") == f"127.0.0.1:{port}"
        assert resolve_address(None, f"ray://127.0.0.1:{port}") == f"ray://127.0.0.1:{port}"
