"""The book's experiments beside the book's own figures, and the ablation that explains the difference.

    python -m bench run --suite book_ch7 --data-dir ../shared/data/book --device cpu --threads 1
    python -m bench.checks.book --suite book_ch7 --data-dir ../shared/data/book

reads every finished run of the suite from the store (whichever session ran it: a run is matched by its
configuration and seed, the data folder aside) and prints a Markdown table: per configuration, test exact
match over seeds -- mean, 95 % interval (Student t), each seed's figure -- at the end of the run and at its
best epoch, beside the book's figure for the same model and data (``bench.results.bookfigures``) where it
has one. A figure for fewer epochs than the suite runs (the book's attention row: 3) is compared at that
epoch. For ``book_ablation`` each row is labelled by what it changes from the first, the book's
configuration. ``--run`` runs the suite first (a new session: runs already stored are run again).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import models
from bench.analysis import markdown
from bench.analysis.stats import summarize
from bench.results.bookfigures import BookFigure, lookup
from bench.results.store import DEFAULT_PATH, RunRecord, Store
from bench.spec import suite as suites
from bench.spec.run import DataSpec, RunSpec


def config_id(config: dict[str, Any]) -> str:
    """A run's configuration without its seed and without the folder its data file was read from."""
    c = json.loads(json.dumps(config))
    c.pop("seed", None)
    if c.get("data", {}).get("task_file"):
        c["data"]["task_file"] = os.path.basename(c["data"]["task_file"])
    return hashlib.sha256(json.dumps(c, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Group:
    """One configuration of the suite and its finished runs, one per seed."""

    spec: RunSpec
    figure: BookFigure | None
    wanted: list[int] = field(default_factory=list)  # the suite's seeds
    seeds: list[int] = field(default_factory=list)  # those with a finished run
    final: list[float] = field(default_factory=list)  # test exact match after the last epoch (or the figure's epoch)
    best: list[float] = field(default_factory=list)  # the best epoch's, up to the same epoch
    epochs: list[int] = field(default_factory=list)  # epochs run (fewer when a run was perfect early)


def at_epoch(history: Sequence[dict[str, Any]], epoch: int) -> tuple[float, float]:
    """-> (exact match after ``epoch``, best up to it). A run stopped early (perfect) keeps its last figure."""
    accs = [float(h["valid_exact_match"]) for h in history[:epoch]]
    return accs[-1], max(accs)


def collect(specs: Sequence[RunSpec], runs: Sequence[RunRecord]) -> list[Group]:
    """Group the suite's specs by configuration, in suite order, and attach the latest finished run per seed."""
    latest: dict[tuple[str, int], RunRecord] = {}
    for r in runs:  # in store order: a later run of the same configuration and seed replaces an earlier one
        if r.status == "ok" and r.history:
            latest[(config_id(r.config), r.seed)] = r
    groups: dict[str, Group] = {}
    for s in specs:
        cid = config_id(s.config())
        g = groups.get(cid)
        if g is None:
            g = groups[cid] = Group(s, lookup(s.data.name, s.model, s.data.reverse_source))
        g.wanted.append(s.seed)
        r = latest.get((cid, s.seed))
        if r is None:
            continue
        final, best = at_epoch(r.history, g.figure.epochs if g.figure else len(r.history))
        g.seeds.append(s.seed)
        g.final.append(final)
        g.best.append(best)
        g.epochs.append(len(r.history))
    return list(groups.values())


# ------------------------------------------------------------------------------------------------ labels

_DATA_FLAGS = ("reverse_source", "keep_source_padding", "fixed_length_target")


def options(spec: RunSpec) -> dict[str, Any]:
    """The settings the book's configuration and s2sbench's default differ in: the model's options (its
    config at the run's size, widths aside) and the data flags."""
    cfg = models.config(spec.model, 10, spec.size, **dict(spec.model_options))
    out = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in ("vocab_size", "embed", "hidden")}
    return out | {k: getattr(spec.data, k) for k in _DATA_FLAGS}


def is_default(spec: RunSpec) -> bool:
    """Every option at s2sbench's default (the model config's field defaults, DataSpec's flags)."""
    cfg = models.config(spec.model, 10, spec.size, **dict(spec.model_options))
    default = type(cfg)(vocab_size=10, embed=cfg.embed, hidden=cfg.hidden)
    flags = all(getattr(spec.data, k) == getattr(DataSpec(), k) for k in _DATA_FLAGS if k != "reverse_source")
    return cfg == default and flags


def change(spec: RunSpec, base: RunSpec) -> str:
    a, b = options(base), options(spec)
    diff = [f"{k}={_show(b[k])}" for k in b if b[k] != a.get(k)]
    label = ", ".join(diff) if diff else "the book's configuration"
    return label + (" (s2sbench's default)" if diff and is_default(spec) else "")


def _show(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


# ------------------------------------------------------------------------------------------------ tables


def pct(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def interval(xs: Sequence[float]) -> str:
    """'54.1 [40.3, 67.9]': mean and 95 % interval in percent; the mean alone for one seed."""
    s = summarize(xs)
    if s.n == 0:
        return "not run"
    if s.n == 1:
        return pct(s.mean)
    return f"{pct(s.mean)} [{pct(max(0.0, s.low))}, {pct(min(1.0, s.high))}]"


def per_seed(xs: Sequence[float]) -> str:
    return ", ".join(pct(x) for x in xs) if xs else "–"


def inside(x: float, xs: Sequence[float]) -> str:
    """Is ``x`` within the spread of the runs ``xs``: their 95 % interval, or their range?"""
    if len(xs) < 2:
        return "–"
    s = summarize(xs)
    return "yes" if s.low <= x <= s.high or min(xs) <= x <= max(xs) else "no"


BOOK_HEAD = ("task", "model", "source", "epochs", "book final", "book best", "book's code, other seeds: final",
             "s2sbench final: mean [95 % interval]", "per seed", "s2sbench best: mean [95 % interval]", "per seed",
             "book final within s2sbench's spread", "s2sbench mean within the book code's spread")


def book_table(groups: Sequence[Group]) -> str:
    rows = []
    for g in groups:
        s, f = g.spec, g.figure
        model = s.model + "".join(f" ({k}={v})" for k, v in s.model_options)
        epochs = f"{f.epochs} of {s.train.epochs}" if f and f.epochs != s.train.epochs else str(s.train.epochs)
        reseeded = f"{interval(f.reseeded)} ({per_seed(f.reseeded)})" if f and f.reseeded else "–"
        # the book's code over all its runs (its own draw and the reseeded ones) against s2sbench's mean
        theirs = inside(summarize(g.final).mean, (f.final, *f.reseeded)) if f and f.reseeded and g.final else "–"
        rows.append((s.data.name, model, "reversed" if s.data.reverse_source else "as written", epochs,
                     pct(f.final) if f else "–", pct(f.best) if f else "–", reseeded,
                     interval(g.final), per_seed(g.final), interval(g.best), per_seed(g.best),
                     inside(f.final, g.final) if f else "–", theirs))
    return markdown.table(BOOK_HEAD, rows)


def ablation_table(groups: Sequence[Group]) -> str:
    head = ("change from the book's configuration", "final: mean [95 % interval]", "per seed", "best: mean [95 % interval]", "per seed")
    base = groups[0].spec
    return markdown.table(head, [(change(g.spec, base), interval(g.final), per_seed(g.final), interval(g.best), per_seed(g.best))
                                 for g in groups])


def render(name: str, groups: Sequence[Group]) -> str:
    ablation = "ablation" in name
    table = ablation_table(groups) if ablation else book_table(groups)
    seeds = sorted({s for g in groups for s in g.seeds})
    note = (f"Test exact match in %, over seeds {', '.join(map(str, seeds)) or 'none'}; 95 % interval: Student t over "
            "the seeds. Book: the book's numpy code, one run; its other seeds: the same code reseeded after loading the "
            "data (bench.checks.bookseeds); both from bench.results.bookfigures.")
    fig = groups[0].figure if ablation and groups else None
    if fig is not None:
        note += f" The book's own code in the book's configuration: {pct(fig.final)} final, {pct(fig.best)} best."
    short = [g for g in groups if len(g.seeds) < len(g.wanted)]
    if short:
        note += " Not all seeds run yet: " + "; ".join(f"{_name(g, groups[0], ablation)} ({len(g.seeds)} of {len(g.wanted)})"
                                                       for g in short) + "."
    return f"{table}\n\n{note}\n"


def _name(g: Group, base: Group, ablation: bool) -> str:
    s = g.spec
    if ablation:
        return change(s, base.spec)
    return f"{s.data.name} {s.model} {'reversed' if s.data.reverse_source else 'as written'}"


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout (no install step)


def run_suite(suite: str, data_dir: str, store: str, seeds: str | None) -> int:
    """``--run``: the suite as a user runs it, ``s2sbench run`` on a CPU with one thread, in a process of its own
    (its output goes straight to the terminal). A subprocess, not an import: the command line is the front
    door of the checks (``s2sbench check``), so a check importing it would close an import cycle."""
    cmd = [sys.executable, "-m", "bench", "run", "--suite", suite, "--data-dir", data_dir, "--store", store, "--device", "cpu",
           "--threads", "1", *(["--seeds", seeds] if seeds else [])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.run(cmd, env=env).returncode


PROG = "python -m bench.checks.book"  # the name usage and errors show; `s2sbench check book` passes its own


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    """This check's options: one parser for both doors, ``python -m bench.checks.book`` and ``s2sbench check book``."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default="book_ablation",
                   help="book_ch7, book_ch8, book_ch8_attention, book_ablation, or a suite file (default: book_ablation)")
    p.add_argument("--data-dir", required=True, help="the folder with the book's addition.txt and date.txt")
    p.add_argument("--store", default=DEFAULT_PATH, help=f"the results store to read (default: {DEFAULT_PATH})")
    p.add_argument("--seeds", help="other seeds than the suite's, e.g. 0,1,2,3,4 (as given to `run --seeds`)")
    p.add_argument("--run", action="store_true", help="run the suite first (CPU, one thread)")
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    a = parser(prog).parse_args(argv)
    overrides = {}
    if a.seeds:
        try:
            overrides["seeds"] = [int(x) for x in a.seeds.split(",")]
        except ValueError:
            print(f"--seeds: not a comma-separated list of integers: {a.seeds!r}", file=sys.stderr)
            return 2
    name, _, specs = suites.load(a.suite, overrides, data_dir=a.data_dir)
    if a.run:
        rc = run_suite(a.suite, a.data_dir, a.store, a.seeds)
        if rc:
            return rc
    if not os.path.exists(a.store):
        print(f"{a.store}: no such store (run the suite first, or give --store)", file=sys.stderr)
        return 2
    store = Store.open_read_only(a.store)
    try:
        runs = store.runs()
    finally:
        store.close()
    print(render(name, collect(specs, runs)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
