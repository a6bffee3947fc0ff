"""Check that sharding changes nothing: a suite run as one session and as N shards merged gives the same runs.

The same runs: the same run keys, each once, and, on a CPU with one thread, the same measured quality to
the last digit (exact match, token accuracy, final loss, epochs, parameters).

    python -m bench.checks.shardcheck                                   # the quick suite, 2 shards (twice ~5 min on 2 cores)
    python -m bench.checks.shardcheck --shards 3 --size tiny --epochs 1 --train-size 500   # the same, smaller and faster
    python -m bench.checks.shardcheck --suite my.toml --keep results/shardcheck

Every step is the real command line (``python -m bench run ... --shard K/N --session-id ...`` and
``python -m bench merge``), run one after another. Exit 0 when everything matches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench.results.store import Store

QUALITY = ("test_exact_match", "test_token_accuracy", "valid_exact_match", "final_loss", "epochs", "params")


def _bench(args: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"shardcheck: `s2sbench {' '.join(args)}` failed ({p.returncode}): {p.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - t0, p.stdout


def _runs(path: str, session: str) -> list:
    st = Store.open_existing(path)
    try:
        return st.runs(session)
    finally:
        st.close()


PROG = "python -m bench.checks.shardcheck"  # the name usage and errors show; `s2sbench check shardcheck` passes its own


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    """This check's options: one parser for both doors, ``python -m bench.checks.shardcheck`` and ``s2sbench check shardcheck``."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default="quick", help="suite name or .toml file (default: quick)")
    p.add_argument("--shards", type=int, default=2, help="number of shards to split it into (default: 2)")
    p.add_argument("--size", help="override the suite's sizes (e.g. tiny, for speed)")
    p.add_argument("--epochs", help="override the suite's epochs")
    p.add_argument("--train-size", help="cap the training examples")
    p.add_argument("--keep", metavar="DIR", help="keep the stores in DIR (default: a temporary folder, removed)")
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    p = parser(prog)
    a = p.parse_args(argv)
    if a.shards < 1:
        p.error("--shards must be at least 1")
    work = a.keep or tempfile.mkdtemp(prefix="shardcheck-")
    os.makedirs(work, exist_ok=True)
    common = ["--suite", a.suite, "--device", "cpu", "--threads", "1", "--deterministic"]
    for flag, v in (("--size", a.size), ("--epochs", a.epochs), ("--train-size", a.train_size)):
        if v:
            common += [flag, v]
    try:
        whole = os.path.join(work, "whole.sqlite")
        secs, _ = _bench(["run", *common, "--session-id", "whole", "--store", whole])
        print(f"unsharded session: {secs:.1f} s")
        shards = []
        for k in range(1, a.shards + 1):
            path = os.path.join(work, f"shard{k}.sqlite")
            secs, out = _bench(["run", *common, "--shard", f"{k}/{a.shards}", "--session-id", "sharded", "--store", path])
            print(f"shard {k}/{a.shards}: {secs:.1f} s, {out.splitlines()[0].split(': ', 1)[1]}")
            shards.append(path)
        merged = os.path.join(work, "merged.sqlite")
        _, out = _bench(["merge", merged, *shards])
        print("merge: " + out.strip().replace("\n", "\n       "))

        a_runs, b_runs = _runs(whole, "whole"), _runs(merged, "sharded")
        a_keys, b_keys = [r.key for r in a_runs], [r.key for r in b_runs]
        problems = []
        if len(set(b_keys)) != len(b_keys):
            problems.append("a run key appears more than once in the merged session")
        if sorted(a_keys) != sorted(b_keys):
            problems.append(f"run keys differ: only unsharded {sorted(set(a_keys) - set(b_keys))}, only sharded "
                            f"{sorted(set(b_keys) - set(a_keys))}")
        by_key = {r.key: r for r in b_runs}
        same = 0
        for r in a_runs:
            o = by_key.get(r.key)
            if o is None:
                continue
            diff = [m for m in QUALITY if r.metrics.get(m) != o.metrics.get(m)] + (["status"] if r.status != o.status else [])
            if diff:
                problems.append(f"{r.key}: {', '.join(diff)} differ")
            else:
                same += 1
        print(f"runs: unsharded {len(a_keys)}, sharded+merged {len(b_keys)} ({len(set(b_keys))} distinct keys); "
              f"identical quality ({', '.join(QUALITY)}) in {same} of {len(a_keys)}")
        for p in problems:
            print("MISMATCH " + p)
        print("OK: the shards merged are exactly the unsharded session" if not problems else "FAILED")
        return 0 if not problems else 1
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
