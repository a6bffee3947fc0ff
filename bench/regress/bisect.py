"""``s2sbench bisect GOOD BAD``: from a regression ``compare`` found to the commit that caused it.

``git bisect run`` does the search; the predicate is a session plus ``compare``'s verdict:

1. What runs at each commit: by default only the runs that regressed -- ``compare BASE NEW`` is taken
   again, and the runs of its regressed task x model x size groups (their stored configs, every seed) are
   written as a suite file; or a suite the user names. Either way the file is copied once into the
   bisect's folder, so every commit runs the same definition.
2. The reference is measured here, now: the suite runs at GOOD first, and every later commit is compared
   with *that* session, on this machine, in this bisect (speed is compared as ratios measured together,
   docs/design.md, "Speed on noisy machines"). The suite then runs at BAD; if the regression does not show there, there is nothing
   to bisect and it says so.
3. ``git bisect run`` calls the predicate at each midpoint: run the suite with that commit's own code
   (``python -m bench run`` in a checkout of the commit), compare with the GOOD session under the same
   ``--fail-on`` thresholds, and look only at the (group, metric) pairs that regressed (or at every row,
   for a named suite, narrowed by ``--metric``). A "worse" verdict there is bad (exit 1); none is good
   (exit 0); a commit where the suite cannot run, or the regressed figure cannot be measured, is skipped
   (exit 125), as ``git bisect run`` expects.

The checkouts happen in a git worktree of their own, not in the user's working tree: their uncommitted
work is left alone, and the code driving the bisect (this module) is not swapped out under itself -- the
predicate is this module, started with the driving copy of ``bench`` first on ``sys.path``, while the
suite runs with the commit's code. Every session goes into one store in the bisect's folder
(``results/bisect/<good>-<bad>/bisect.sqlite``), kept afterwards: ``compare``, ``report`` and ``export``
read it like any other.

Nothing here imports torch or the runner: sessions run in subprocesses of the commit under test.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bench.analysis.configs import model_label
from bench.errors import UserError
from bench.regress.compare import Comparison, Row, compare, compare_refs, fmt_change, metric_label
from bench.regress.sides import is_baseline_ref, side_from_store
from bench.regress.thresholds import parse_fail_on
from bench.results.metrics import BY_NAME
from bench.results.store import Store
from bench.spec import suite as suite_mod
from bench.spec.run import DataSpec, MeasureSpec, TrainConfig

GOOD, BAD, SKIP, ABORT = 0, 1, 125, 128  # ``git bisect run``'s exit codes (128 and up abort the bisect)
PREFIX = "s2sbench bisect:"  # the predicate's one line per commit, picked out of git's output


@dataclass(frozen=True)
class Plan:
    """What every step of one bisect runs and judges; written to ``plan.json`` for the predicate process."""

    repo: str
    good: str
    bad: str
    out: str
    suite: str  # the suite file every commit runs (a copy in ``out``)
    store: str
    run_args: list[str]  # for ``bench run`` after --suite/--store: device, threads, determinism, data dir
    fail_on: str | None
    targets: list[list[str]] | None  # [task, model, size, metric] pairs to judge; None: every row
    metrics: list[str] | None  # only these metrics (``--metric``); None: all
    reference: str = ""  # the GOOD session
    python: str = sys.executable


@dataclass(frozen=True)
class Step:
    commit: str
    verdict: str  # good | bad | skip
    session: str | None
    detail: str  # the worst judged row, or why it was skipped
    change: float | None = None  # that row's ratio (speed, memory) or delta in points (quality)


@dataclass
class Result:
    plan: Plan
    first_bad: str | None
    candidates: list[str]  # when skips left several
    steps: list[Step] = field(default_factory=list)

    def step(self, commit: str) -> Step | None:
        hits = [s for s in self.steps if s.commit == commit]
        return hits[-1] if hits else None


# --- git ------------------------------------------------------------------------------------------------
def git(repo: str, *args: str, check: bool = True) -> str:
    try:
        p = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, timeout=600)
    except OSError as e:
        raise UserError(f"cannot run git ({e})") from None
    if check and p.returncode != 0:
        msg = (p.stderr.strip() or p.stdout.strip() or f"git {args[0]} failed").splitlines()[0]
        raise UserError(f"git {' '.join(args[:2])}: {msg}")
    return p.stdout.strip()


def resolve_commit(repo: str, ref: str) -> str:
    out = subprocess.run(["git", "-C", repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], capture_output=True, text=True)
    if out.returncode != 0:
        raise UserError(f"{ref}: not a commit in {repo}")
    return out.stdout.strip()


def subject(repo: str, sha: str) -> str:
    return git(repo, "log", "-1", "--format=%s", sha, check=False)


# --- what runs ------------------------------------------------------------------------------------------
def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml(x)}" for k, x in sorted(v.items())) + " }"
    raise TypeError(f"cannot write {v!r} to TOML")


_THROUGHPUT_KEYS = {"steps": "steps", "warmup": "warmup_steps", "batches": "step_batches"}  # ThroughputSpec field -> suite key


def suite_block(configs: list[dict[str, Any]]) -> str:
    """One ``[[runs]]`` block for stored configs that differ only in their seed.

    A key is written only where it differs from this code's default (as ``RunSpec.config`` leaves new fields
    out at their defaults), so a commit from before a setting existed can still read the file. TOML has no
    null: a run stored without a target gets ``target = 1.0`` (stop only at 100 % validation exact match).
    """
    c = configs[0]
    d, t, m = c.get("data", {}), c.get("train", {}), c.get("measure", {})
    lines = ["[[runs]]"]
    if d.get("task_file"):
        lines.append(f"task_files = {_toml([d['task_file']])}")
    else:
        lines.append(f"tasks = {_toml([d.get('task', DataSpec().task)])}")
    lines += [f"models = {_toml([c['model']])}", f"sizes = {_toml([c['size']])}",
              f"seeds = {_toml(sorted({int(x['seed']) for x in configs}))}"]
    if c.get("model_options"):
        lines.append(f"model_options = {_toml(c['model_options'])}")
    for spec_cls, values, rename in ((DataSpec, d, {"seed": "data_seed"}), (TrainConfig, t, {}), (MeasureSpec, m, {})):
        default = spec_cls()
        for f in fields(spec_cls):
            if f.name in ("task", "task_file") or f.name not in values:
                continue
            v = values[f.name]
            if (tuple(v) if isinstance(v, list) else v) == getattr(default, f.name):
                continue
            if v is None:
                if f.name != "target":
                    continue
                v = 1.0
            lines.append(f"{rename.get(f.name, f.name)} = {_toml(v)}")
    for k, key in _THROUGHPUT_KEYS.items():
        if k in (c.get("throughput") or {}):
            lines.append(f"{key} = {_toml(c['throughput'][k])}")
    return "\n".join(lines) + "\n"


def suite_text(configs: list[dict[str, Any]], description: str) -> str:
    """Stored run configs -> a suite file that runs them again (one block per config, its seeds together)."""
    by_cfg: dict[str, list[dict[str, Any]]] = {}
    for c in configs:
        rest = {k: v for k, v in c.items() if k != "seed"}
        by_cfg.setdefault(json.dumps(rest, sort_keys=True), []).append(c)
    return f"description = {_toml(description)}\n\n" + "\n".join(suite_block(cs) for cs in by_cfg.values())


def regressed(c: Comparison, metrics: list[str] | None = None) -> list[Row]:
    rows = c.regressions()
    return [r for r in rows if metrics is None or r.metric in metrics]


def configs_of(store_path: str, session: str, groups: set[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """The stored configs of ``session``'s runs in ``groups`` (task, model label, size), each config once."""
    store = Store.open_read_only(store_path)
    try:
        runs = store.runs(store.session(session)["id"])
    finally:
        store.close()
    out: dict[str, dict[str, Any]] = {}
    for r in runs:
        if (r.task, model_label(r.model, r.config.get("model_options")), r.size) in groups:
            out[json.dumps(r.config, sort_keys=True)] = r.config
    return list(out.values())


# --- one step -------------------------------------------------------------------------------------------
def run_suite(plan: Plan, checkout: str, log: str) -> str | None:
    """The suite, run with the code of ``checkout`` -> the new session's id, or None when it did not run."""
    before = _session_ids(plan.store)
    env = {**os.environ, "PYTHONPATH": checkout + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")}
    cmd = [plan.python, "-m", "bench", "run", "--suite", plan.suite, "--store", plan.store, *plan.run_args]
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "w", encoding="utf-8") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        rc = subprocess.run(cmd, cwd=checkout, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    new = [s for s in _session_ids(plan.store) if s not in before]
    return new[-1] if rc == 0 and len(new) == 1 else None


def _session_ids(path: str) -> list[str]:
    if not os.path.exists(path):
        return []
    store = Store.open_read_only(path)
    try:
        return [s["id"] for s in store.sessions()]
    finally:
        store.close()


def _cost(r: Row) -> float:
    """How bad a row is, larger is worse: a time ratio, or points lost."""
    if r.change is None:
        return math.inf if r.verdict == "worse" else -math.inf
    m = BY_NAME.get(r.metric)
    if r.kind == "quality":
        return r.change if m is not None and m.better == "low" else -r.change  # an error rate's rise is the loss
    return 1 / r.change if m is not None and m.better == "high" and r.change > 0 else r.change


def describe(r: Row) -> str:
    change = fmt_change(r)
    return (f"{r.task}/{r.model}/{r.size} {metric_label(r.metric)} {change or r.verdict}"
            f"{f' ({r.note})' if r.note and not change else ''}").strip()


def judge(plan: Plan, session: str) -> Step:
    """The GOOD session against ``session``: bad when a judged row is worse; skip when one cannot be measured."""
    c = compare(side_from_store(plan.store, plan.reference), side_from_store(plan.store, session), parse_fail_on(plan.fail_on))
    rows = [r for r in c.rows if r.kind != "group" and (plan.metrics is None or r.metric in plan.metrics)]
    if plan.targets is not None:
        want = {tuple(t) for t in plan.targets}
        rows = [r for r in rows if (r.task, r.model, r.size, r.metric) in want]
        seen = {(r.task, r.model, r.size, r.metric) for r in rows}
        unmeasured = sorted(t for t in want - seen if t[3] != "runs")  # no "runs" row means no run failed: fine
        if unmeasured:
            t = unmeasured[0]
            return Step("", "skip", session, f"{'/'.join(t[:3])} {metric_label(t[3])} not measured (runs failed or missing)")
    if not rows:
        return Step("", "skip", session, "nothing to judge (no run of the suite compared)")
    worst = max(rows, key=_cost)
    verdict = "bad" if any(r.verdict == "worse" for r in rows) else "good"
    if verdict == "bad":
        worst = max((r for r in rows if r.verdict == "worse"), key=_cost)
    return Step("", verdict, session, describe(worst), worst.change)


def _record(plan: Plan, step: Step) -> None:
    with open(os.path.join(plan.out, "steps.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(step)) + "\n")


def _line(step: Step, repo: str) -> str:
    return f"{step.verdict:4s} {step.commit[:10]} {subject(repo, step.commit)[:60]!r}: {step.detail}"


def measure(plan: Plan, checkout: str, commit: str) -> Step:
    """Run the suite at ``commit`` (checked out in ``checkout``) and judge it against the reference."""
    sid = run_suite(plan, checkout, os.path.join(plan.out, "logs", f"{commit[:12]}.log"))
    if sid is None:
        step = Step(commit, "skip", None, "the suite did not run at this commit (log: "
                    f"{os.path.join(plan.out, 'logs', commit[:12] + '.log')})")
    else:
        j = judge(plan, sid)
        step = Step(commit, j.verdict, sid, j.detail, j.change)
    _record(plan, step)
    return step


def step_main(plan_path: str) -> int:
    """The predicate ``git bisect run`` calls, in the checkout of the commit to test."""
    try:
        with open(plan_path, encoding="utf-8") as f:
            plan = Plan(**json.load(f))
        checkout = os.getcwd()
        commit = git(checkout, "rev-parse", "HEAD")
        step = measure(plan, checkout, commit)
        print(f"{PREFIX} {_line(step, checkout)}", flush=True)
        return {"good": GOOD, "bad": BAD}.get(step.verdict, SKIP)
    except Exception as e:  # a fault of the harness, not of the commit: stop the bisect rather than call the commit bad
        print(f"{PREFIX} abort: {type(e).__name__}: {e}", flush=True)
        return ABORT


# --- the bisect -----------------------------------------------------------------------------------------
def plan_from(repo: str, good: str, bad: str, out: str | None, suite: str | None, base: str | None, new: str, store: str,
              fail_on: str | None, metrics: list[str] | None, run_args: list[str], data_dir: str | None = None) -> Plan:
    """Check the input and write the suite every commit will run. Raises UserError on bad input."""
    top = git(repo, "rev-parse", "--show-toplevel")
    g, b = resolve_commit(top, good), resolve_commit(top, bad)
    if g == b:
        raise UserError(f"GOOD and BAD are the same commit ({g[:10]})")
    if subprocess.run(["git", "-C", top, "merge-base", "--is-ancestor", g, b]).returncode != 0:
        raise UserError(f"{good} is not an ancestor of {bad}: bisect needs GOOD before BAD on one line of history")
    parse_fail_on(fail_on)  # bad thresholds are refused before anything runs
    for m in metrics or []:
        if m not in BY_NAME and m != "runs":
            raise UserError(f"--metric: unknown metric {m!r}; known: {', '.join(BY_NAME)}, runs")
    where = "--out" if out else "the bisect's folder"
    out = os.path.abspath(out or os.path.join("results", "bisect", f"{g[:7]}-{b[:7]}"))
    _check_out(out, where)
    targets: list[list[str]] | None = None
    if suite:
        if base:
            raise UserError("give --suite (run that suite) or --base/--new (run what regressed between them), not both")
        src = suite_mod.resolve(suite)
        if data_dir is None:
            data_dir = os.path.dirname(os.path.abspath(src))  # relative data files stay where the suite said
        # the user's file, read and checked as the user wrote it: its problems name it, not bisect's copy of it
        suite_mod.load(src, data_dir=data_dir)
        text = _read_suite(src)
    else:
        if not base:
            raise UserError("say what to bisect: --base REF (and --new REF, default latest) naming the comparison that regressed, or "
                            "--suite NAME")
        c = compare_refs(base, new, store, fail_on)
        rows = regressed(c, metrics)
        if not rows:
            raise UserError(f"compare {base} {new}: no regression{' in ' + ','.join(metrics) if metrics else ''} to bisect")
        side = new if not is_baseline_ref(new) else base if not is_baseline_ref(base) else None
        if side is None:
            raise UserError("both sides are baseline files, which keep no run configs: give --suite, or a session as --new")
        groups = {(r.task, r.model, r.size) for r in rows}
        configs = configs_of(store, side, groups)
        if not configs:
            raise UserError(f"{store}: session {side} has none of the regressed runs")
        targets = sorted([r.task, r.model, r.size, r.metric] for r in rows)
        text = suite_text(configs, f"bisect {g[:10]}..{b[:10]}: the runs that regressed in compare {base} {new}")
    path = os.path.join(out, "suite.toml")
    made = _missing(out)
    try:
        os.makedirs(out, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        for d in reversed(made):  # leave nothing: the folders this call made go again
            shutil.rmtree(d, ignore_errors=True)
        raise UserError(f"{where} {out}: cannot write the bisect's suite there ({e.strerror or e})") from None
    specs = suite_mod.load(path, data_dir=data_dir)[2]  # this code must read it (an old commit may refuse a newer key: it is skipped)
    files = any(sp.data.task_file for sp in specs)
    args = list(run_args) + (["--data-dir", data_dir] if data_dir and files else [])
    return Plan(top, g, b, out, path, os.path.join(out, "bisect.sqlite"), args, fail_on, targets, metrics)


def _missing(folder: str) -> list[str]:
    """The folders of ``folder``'s path that do not exist yet, outermost first."""
    out: list[str] = []
    head = folder
    while head and not os.path.exists(head):
        out.insert(0, head)
        head = os.path.dirname(head)
    return out


def _check_out(out: str, where: str) -> None:
    """The bisect's folder can be made and written (before anything is checked out or run)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"{where} {out}: a file, not a folder")
    head = out
    while not os.path.exists(head):
        head = os.path.dirname(head)
    if not os.path.isdir(head):
        raise UserError(f"{where} {out}: {head} is a file, not a folder")
    if not os.access(head, os.W_OK | os.X_OK):
        raise UserError(f"{where} {out}: cannot write in {head} (no permission)")


def _read_suite(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:  # suite.load has said it already; a file changed meanwhile
        raise UserError(f"{path}: cannot read the suite file ({getattr(e, 'strerror', None) or e})") from None


def _predicate(plan_path: str) -> list[str]:
    """The command ``git bisect run`` calls: this module of the driving copy, whatever the checkout holds."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the folder holding this bench/
    code = f"import sys; sys.path.insert(0, {root!r}); from bench.regress.bisect import step_main; sys.exit(step_main(sys.argv[1]))"
    return [sys.executable, "-c", code, plan_path]


def run(plan: Plan, echo: Callable[[str], None] = print) -> Result:
    """GOOD and BAD measured, then ``git bisect run`` between them in a worktree of its own."""
    tmp = tempfile.mkdtemp(prefix="s2sbench-bisect-")
    wt = os.path.join(tmp, "checkout")
    git(plan.repo, "worktree", "add", "--detach", "--quiet", wt, plan.good)
    res = Result(plan, None, [])
    try:
        ref = measure(plan, wt, plan.good)
        res.steps.append(ref)
        if ref.session is None:
            raise UserError(f"the suite does not run at GOOD {plan.good[:10]}: {ref.detail}")
        plan = Plan(**{**asdict(plan), "reference": ref.session})
        res.plan = plan
        echo(f"good {plan.good[:10]} {subject(plan.repo, plan.good)[:60]!r}: reference session {ref.session}")
        git(wt, "checkout", "--detach", "--quiet", plan.bad)
        last = measure(plan, wt, plan.bad)
        res.steps.append(last)
        echo(_line(last, plan.repo))
        if last.verdict != "bad":
            raise UserError(f"the regression does not show between GOOD and BAD here ({last.verdict}: {last.detail}); nothing to bisect")
        plan_path = os.path.join(plan.out, "plan.json")
        with open(plan_path, "w", encoding="utf-8") as f:
            json.dump(asdict(plan), f, indent=1)
        if git(plan.repo, "rev-list", "--count", f"{plan.good}..{plan.bad}") == "1":
            res.first_bad = plan.bad  # BAD is GOOD's child: nothing between them to test
            return res
        git(wt, "bisect", "start", plan.bad, plan.good)
        n0 = len(read_steps(plan.out))
        out = _bisect_run(wt, _predicate(plan_path), os.path.join(plan.out, "git-bisect.log"), echo)
        res.steps += read_steps(plan.out)[n0:]
        for line in out:
            if line.endswith(" is the first bad commit") and _is_sha(line.split()[0]):
                res.first_bad = line.split()[0]
        if res.first_bad is None:
            aborted = [ln for ln in out if ln.startswith(f"{PREFIX} abort")]
            if aborted:
                raise UserError(aborted[0][len(PREFIX):].strip() + f" (see {os.path.join(plan.out, 'git-bisect.log')})")
            res.candidates = [ln.strip() for ln in out if _is_sha(ln.strip())]
    finally:
        subprocess.run(["git", "-C", wt, "bisect", "reset", "--quiet"], capture_output=True)
        subprocess.run(["git", "-C", plan.repo, "worktree", "remove", "--force", wt], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def _bisect_run(wt: str, cmd: list[str], log: str, echo: Callable[[str], None]) -> list[str]:
    """``git bisect run CMD`` in the worktree; every line goes to ``log``, the predicate's own lines to ``echo``."""
    lines: list[str] = []
    with open(log, "w", encoding="utf-8") as f, subprocess.Popen(["git", "-C", wt, "bisect", "run", *cmd], stdout=subprocess.PIPE,
                                                               stderr=subprocess.STDOUT, text=True) as p:
        assert p.stdout is not None
        for line in p.stdout:
            f.write(line)
            line = line.rstrip("\n")
            lines.append(line)
            if line.startswith(PREFIX):
                echo(line[len(PREFIX):].strip())
    return lines


def read_steps(out: str) -> list[Step]:
    """Every step recorded in a bisect folder, in order (earlier bisects into the same folder included)."""
    path = os.path.join(out, "steps.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [Step(**json.loads(x)) for x in f if x.strip()]


def _is_sha(s: str) -> bool:
    return len(s) == 40 and all(ch in "0123456789abcdef" for ch in s)
