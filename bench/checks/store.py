"""Is a results store whole? SQLite's integrity check and the store's own invariants (readable JSON, every run in its session's plan,
sane owners).

    s2sbench check store                      # results/bench.sqlite
    s2sbench check store shard3.sqlite        # == python -m bench.checks.store shard3.sqlite

The check itself lives with the store (``bench.results.integrity``: ``merge`` runs it on every input); this module
is its door among the self-checks. It only reads the store: nothing is written, no ``-wal``/``-shm`` is left beside
it. Exit 0: clean; 1: damaged, one line per problem naming the row; 2: not a results store (missing, a folder, a
FIFO, another program's database, another schema version). docs/store.md says how to repair one.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.errors import UserError
from bench.results.integrity import check
from bench.results.store import DEFAULT_PATH

PROG = "python -m bench.checks.store"


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    """This check's options: one parser for both doors, ``python -m bench.checks.store`` and ``s2sbench check store``."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("path", metavar="PATH", nargs="?", default=DEFAULT_PATH, help=f"the store to check (default {DEFAULT_PATH})")
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    a = parser(prog).parse_args(argv)
    try:
        rep = check(a.path, time.time())
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    for line in rep.lines():
        print(line)
    return 0 if rep.clean else 1


if __name__ == "__main__":
    sys.exit(main())
