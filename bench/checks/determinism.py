"""Is ``--deterministic`` deterministic here? Each model trained twice; per-epoch losses compared bit for bit.

    python -m bench.checks.determinism [--device cuda] [--models attention,transformer] [--epochs 2] [--json]

Runs in a fresh process so that cuBLAS's workspace setting (``CUBLAS_WORKSPACE_CONFIG``) is in place before
CUDA initialises, as PyTorch documents. Exit code 0 when every model gave identical runs, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

PROG = "python -m bench.checks.determinism"  # the name usage and errors show; `s2sbench check determinism` passes its own


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    """This check's options: one parser for both doors, ``python -m bench.checks.determinism`` and ``s2sbench check determinism``."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="device to train on (default: cuda)")
    p.add_argument("--models", default="attention,transformer", help="comma-separated models (default: attention,transformer)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per run (default: 2)")
    p.add_argument("--size", default="tiny", help="model size (default: tiny)")
    p.add_argument("--train", type=int, default=2000, help="training examples of the date task (default: 2000)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    from bench.runner.determinism import CUBLAS_WORKSPACE

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)  # before anything touches CUDA
    a = parser(prog).parse_args(argv)

    from bench.errors import UserError
    from bench.runner.determinism import determinism_check

    try:
        rows = determinism_check(a.device, a.models.split(","), a.epochs, size=a.size, train=a.train)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            verdict = "identical" if r["identical"] else f"DIFFERENT (max loss difference {r['max_loss_diff']:.3g})"
            print(f"{r['device']}  {r['task']} {r['model']} {r['size']}, {r['epochs']} epochs: {verdict}")
            print(f"    losses run 1 {r['loss_a']}")
            print(f"    losses run 2 {r['loss_b']}")
            for w in r["nondeterministic"]:
                print(f"    warning: {w}")
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
