"""The ``s2sbench`` command: parses, calls, prints. One module per group of sub-commands (``run``; ``tune``;
``merge``/``report``/``list``/``export``; ``compare``/``baseline``/``calibrate``; ``bisect``; ``check``, the front
door of the self-checks; ``check-model``/``check-task``, the contract); what they call lives in the layers below
(docs/design.md, "Layout"). Imports of the heavy layers happen inside the commands, so that ``report`` or ``compare``
never load torch.

Bad input (unknown names, malformed files, impossible configs, an unwritable store) ends with one line
on stderr and exit code 2; a regression found by ``compare`` exits 1.
"""

from __future__ import annotations

import argparse
import sys

from bench.cli import args, bisect, check, contract, regress, results, run, tune
from bench.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    p = args.Parser(prog="s2sbench", description="Train, time and score seq2seq architectures side by side.",
                    epilog="`s2sbench COMMAND --help` says what each command takes, with its defaults.")
    sub = p.add_subparsers(dest="cmd", title="commands", metavar="COMMAND", parser_class=args.Parser)
    args.help_without_command(p)
    run.add(sub)
    tune.add(sub)
    results.add(sub)
    regress.add(sub)
    bisect.add(sub)
    check.add(sub)
    contract.add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return a.func(a)
    except UserError as e:
        print(f"s2sbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("s2sbench: interrupted; finished runs are stored (continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
