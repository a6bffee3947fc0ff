"""``s2sbench merge OUT IN...``: join results stores -- the shards of one suite, stores from several
machines -- into one, keeping every session and run.

Rules (docs/scale-out.md, "Merge", says the same):

* Sessions are identified by id. Different ids stay different sessions, even when they hold the same runs
  (the history of a run across days is the point of a store).
* The same session id in several stores is one session: the shards of a suite run with a common
  ``--session-id``, or a store merged twice. Its runs are the union; its start is the earliest part's, its
  end the latest's; it is ``finished`` only when every part finished; its environment is the earliest
  part's, plus ``parts``: each part's shard, host, device, times, status, command and calibration. The
  records of the processes that ran it come along, so a part whose process died reads ``interrupted`` in
  OUT as it does where it ran.
* Within one session a run key appears once. Seen twice with different contents (a shard run twice, a
  failed run resumed), the one that finished later wins -- the command says which it kept and which it
  dropped; ties prefer an ``ok`` run, then the later store on the command line. An identical copy (the
  same store merged again) is simply not added twice. A run's stored test outputs (``run_predictions``) go
  with it.
* A session's plan (``bench.results.plans``) comes along: the joined session planned what its parts planned
  (a part stored before plans were: the runs it ran).
* A session that is finished in OUT is never changed by what an input says about the same part of it (its
  history is append-only in meaning, docs/store.md): its runs stay as OUT has them, and an input's other
  record of one of them, or a run it never ran, is left out with a line saying so. It can only be joined by a
  part OUT does not have yet (another shard of it), whose runs are added.
* A damaged input (a row that cannot be read, a run outside its session's plan: ``bench.results.integrity``)
  is refused, naming the row: nothing damaged is copied into OUT.

Nothing is written unless everything can be: every input (and OUT, if it exists) is checked first --
an SQLite file, a results store, this s2sbench's schema version, one suite per session id -- then all
changes go into OUT in one transaction; a new OUT is built under a temporary name and renamed once complete,
so a failed merge leaves no file behind. Inputs are only read (``Store.open_read_only``'s connection: nothing
written, no ``-wal``/``-shm`` left beside them, read-only media readable).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from bench.errors import UserError
from bench.results import integrity
from bench.results.store import RUN_COLS, SESSION_COLS, BulkWriter, DamagedStore, Dump, Store, check_regular, same_file


def read(path: str) -> Dump:
    """Every row of the store at ``path``; a damaged store is refused, naming the first damaged row."""
    try:
        d = Store.read_dump(path)
    except DamagedStore as e:
        raise UserError(f"{path}: damaged, nothing merged: {e.what}; `s2sbench check store {path}` lists what is damaged") from None
    bad = integrity.problems(d, time.time())
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise UserError(f"{path}: damaged, nothing merged: {bad[0].line()}{more}; `s2sbench check store {path}` lists what is damaged")
    return d


@dataclass
class MergeResult:
    out: str
    sessions_new: int = 0
    sessions_joined: int = 0
    runs_added: int = 0
    runs_identical: int = 0
    runs_replaced: int = 0
    lines: list[str] = field(default_factory=list)  # what was decided, one line each

    def summary(self) -> str:
        return (f"merged into {self.out}: {self.sessions_new} new session(s), {self.sessions_joined} joined; {self.runs_added} run(s) "
                f"added, {self.runs_identical} identical copies skipped, {self.runs_replaced} duplicate(s) resolved (later finished wins)")


def _part_ids(s: dict[str, Any]) -> set[str]:
    """What identifies each part of a stored session (where it ran, when it started, its shard), wherever it is stored."""
    return {json.dumps({k: v for k, v in p.items() if k not in ("store", "status", "finished")}, sort_keys=True) for p in _part(s, "")}


def _part(s: dict[str, Any], where: str) -> list[dict[str, Any]]:
    env = json.loads(s["env"])
    if "parts" in env:  # already a merge: its parts as they were
        return list(env["parts"])
    return [{"shard": env.get("shard"), "host": env.get("host"), "device_name": env.get("device_name"), "started": s["started"],
             "finished": s["finished"], "status": s["status"], "command": s["command"], "calibration": env.get("calibration"),
             "store": where}]


def _join_sessions(rows: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Rows of one session id from several stores (earliest first) -> one row."""
    suites = {r["suite"] for _, r in rows}
    if len(suites) > 1:
        sid = rows[0][1]["id"]
        raise UserError(f"session {sid!r} is a session of different suites in {' and '.join(w for w, _ in rows)} "
                        f"({', '.join(sorted(map(str, suites)))}): not parts of one session; nothing merged")
    if len(rows) == 1:
        return dict(rows[0][1])
    first = rows[0][1]
    statuses = {r["status"] for _, r in rows}
    status = "finished" if statuses == {"finished"} else "running" if "running" in statuses else "interrupted"
    ends = [r["finished"] for _, r in rows]
    parts: dict[str, dict[str, Any]] = {}
    for where, r in rows:
        for p in _part(r, where):
            k = json.dumps({k: v for k, v in p.items() if k not in ("store", "status", "finished")}, sort_keys=True)
            if k not in parts or (p.get("finished") or "") > (parts[k].get("finished") or ""):
                parts[k] = p
    if len(parts) == 1 and all("parts" not in json.loads(r["env"]) for _, r in rows):  # one session seen twice (merged again)
        return dict(max((r for _, r in rows), key=lambda r: r["finished"] or ""))
    env = json.loads(first["env"])
    env.pop("shard", None)
    env["parts"] = sorted(parts.values(), key=lambda p: ((p.get("shard") or {}).get("index", 0), p.get("started") or ""))
    return {"id": first["id"], "started": min(r["started"] for _, r in rows), "finished": max(ends) if all(ends) else None,
            "status": status, "suite": first["suite"], "command": first["command"], "env": json.dumps(env, sort_keys=True)}


def _shard_note(sid: str, env: dict[str, Any], n_runs: int) -> str | None:
    shards = [p["shard"] for p in env.get("parts", []) if p.get("shard")] or ([env["shard"]] if env.get("shard") else [])
    if not shards:
        return None
    counts = {s["count"] for s in shards}
    prints = {s.get("suite_fingerprint") for s in shards}
    have = sorted({s["index"] for s in shards})
    if len(counts) > 1 or len(prints) > 1:
        return f"session {sid}: WARNING its parts are shards of different splits or suites ({', '.join(sorted(map(str, counts)))} shards)"
    n = counts.pop()
    missing = [k for k in range(1, n + 1) if k not in have]
    suite_runs = shards[0].get("suite_runs")
    runs = f", {n_runs} of the suite's {suite_runs} runs" if suite_runs is not None else ""
    if missing:
        return f"session {sid}: shards {', '.join(map(str, have))} of {n}; missing {', '.join(map(str, missing))}{runs}"
    if suite_runs is not None and n_runs != suite_runs:  # e.g. shards partitioned by different s2sbench versions
        return f"session {sid}: WARNING every shard of {n} is here, yet {n_runs} of the suite's {suite_runs} runs"
    return f"session {sid}: shards {', '.join(map(str, have))} of {n} (complete{runs})"


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a[c] == b[c] for c in RUN_COLS)


def merge(out: str, inputs: list[str]) -> MergeResult:
    if not inputs:
        raise UserError("merge: give at least one input store")
    check_regular(out)
    if any(same_file(p, out) for p in inputs):  # the same file under another path too: a symlink, a hard link
        raise UserError(f"{out}: the output is also an input; merge into another file")
    dumps = [read(p) for p in inputs]  # every input checked before anything is written
    existed = os.path.exists(out) and os.path.getsize(out) > 0
    if existed:
        read(out)
    elif os.path.exists(out):
        raise UserError(f"{out}: an empty file, not a results store")
    # session ids: one suite each, across every input (and OUT, re-checked inside the transaction)
    by_sid: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for d in dumps:
        for sid, s in d.sessions.items():
            by_sid.setdefault(sid, []).append((d.path, s))
    for rows in by_sid.values():
        _join_sessions(sorted(rows, key=lambda r: r[1]["started"]))

    # A new OUT is built under a temporary name beside it and renamed into place once complete, so a failure
    # (a full disk, an interruption) leaves no half-made or empty store; an existing OUT takes every change
    # in one transaction.
    target = out if existed else os.path.join(os.path.dirname(os.path.abspath(out)), f".{os.path.basename(out)}.{os.getpid()}.merging")
    made = _missing_folders(out)
    res = MergeResult(out)
    store: Store | None = None
    try:
        try:
            store = Store(target)
        except UserError as e:
            raise UserError(str(e).replace(target, out)) from None
        store.path = out  # messages name OUT, not the temporary file
        with store.bulk() as w:
            have = w.dump()
            for sid, rows in sorted(by_sid.items()):
                sources = [d for d in dumps if sid in d.sessions]
                mine = have.sessions.get(sid)
                if mine is not None and mine["status"] == "finished":  # closed: only a part it lacks may join it
                    known = _part_ids(mine)
                    sources = [d for d in sources if not _part_ids(d.sessions[sid]) <= known]
                    rows = [(d.path, d.sessions[sid]) for d in sources]
                    _ignored(sid, have, [d for d in dumps if sid in d.sessions and d not in sources], out, res)
                if mine is not None:
                    res.sessions_joined += 1
                    if not rows:
                        continue
                rows = sorted(([(out, mine)] if mine is not None else []) + rows, key=lambda r: r[1]["started"])
                joined = _join_sessions(rows)
                if mine is not None:
                    if any(joined[c] != mine[c] for c in SESSION_COLS):
                        w.put_session(joined, exists=True)
                else:
                    res.sessions_new += 1
                    w.put_session(joined, exists=False)
                for d in sources:  # who ran it, so its status is derived in OUT as where it ran (bench.results.owners)
                    for o in d.owners:
                        if o["session"] == sid:
                            w.put_owner(o)
                _merge_plans(w, sid, have, sources)
                _merge_runs(w, sid, have, sources, out, res, closed=mine is not None and mine["status"] == "finished")
                note = _shard_note(sid, json.loads(joined["env"]), w.distinct_keys(sid))
                if note:
                    res.lines.append(note)
        if not existed:
            _self_contained(store, out)
            store.close()
            store = None
            try:
                os.replace(target, out)
            except OSError as e:
                raise UserError(f"{out}: cannot write the merged store ({e.strerror or e}); nothing written") from None
    except BaseException:
        if store is not None:
            store.close()
        if not existed:
            for suffix in ("", "-wal", "-shm", "-journal"):
                if os.path.exists(target + suffix):
                    os.remove(target + suffix)
            for d in reversed(made):
                try:
                    os.rmdir(d)
                except OSError:
                    break
        raise
    if store is not None:
        store.close()
    return res


def _missing_folders(path: str) -> list[str]:
    """The folders above ``path`` that do not exist yet, outermost first (removed again if the merge fails)."""
    out: list[str] = []
    head = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(head):
        out.insert(0, head)
        head = os.path.dirname(head)
    return out


def _self_contained(store: Store, out: str) -> None:
    """Fold the write-ahead log into the file itself, so that renaming the file moves every row."""
    try:
        store.db.execute("PRAGMA journal_mode=DELETE").fetchone()
    except sqlite3.Error as e:
        raise UserError(f"{out}: cannot write the merged store ({e}); nothing written") from None


def _plan_of(d: Dump, sid: str) -> set[str]:
    """``sid``'s plan in ``d``: the recorded one, else (stored before plans were) the runs it ran."""
    return d.plans.get(sid) or {r["key"] for r in d.runs if r["session"] == sid}


def _merge_plans(w: BulkWriter, sid: str, have: Dump, sources: list[Dump]) -> None:
    """The joined session planned what its parts planned: OUT's (made explicit where it was what it ran) and each source's."""
    keys = _plan_of(have, sid) if sid in have.sessions else set()
    for d in sources:
        keys |= _plan_of(d, sid)
    w.put_plan(sid, keys)


def _ignored(sid: str, have: Dump, dumps: list[Dump], out: str, res: MergeResult) -> None:
    """Inputs holding only parts of ``sid`` that OUT has and finished: their records are left out, and said so."""
    mine = [r for r in have.runs if r["session"] == sid]
    for d in dumps:
        for r in (r for r in d.runs if r["session"] == sid):
            if any(_same(r, m) for m in mine):
                res.runs_identical += 1
            elif any(m["key"] == r["key"] for m in mine):
                res.lines.append(f"session {sid}: finished in {out}, so its run {r['key']} stays as it is there; left out the other record "
                                 f"of it in {d.path} (finished {r['finished']}, {r['status']})")
            else:
                res.lines.append(f"session {sid}: finished in {out}, which never ran {r['key']}; left out that run of {d.path} "
                                 "(a finished session is never added to)")


def _merge_runs(w: BulkWriter, sid: str, have: Dump, dumps: list[Dump], out: str, res: MergeResult, closed: bool = False) -> None:
    """``closed``: the session is finished in OUT and ``dumps`` hold parts it lacks -- OUT's runs stay as they are
    (none replaced, none deleted); the parts' runs of keys OUT does not have are added."""
    # candidates in order of precedence for ties: OUT first, then the inputs as given
    cands: list[tuple[str, int, dict[str, Any]]] = [(out, 0, r) for r in have.runs if r["session"] == sid]
    for i, d in enumerate(dumps, 1):
        cands += [(d.path, i, r) for r in d.runs if r["session"] == sid]
    groups: dict[str, list[tuple[str, int, dict[str, Any]]]] = {}
    for c in cands:
        groups.setdefault(c[2]["key"], []).append(c)
    inserts = []
    for key, group in sorted(groups.items()):
        if closed and any(c[1] == 0 for c in group):
            for c in group[sum(1 for c in group if c[1] == 0):]:
                if any(_same(c[2], m[2]) for m in group if m[1] == 0):
                    res.runs_identical += 1
                else:
                    res.lines.append(f"session {sid}: finished in {out}, so its run {key} stays as it is there; left out the other "
                                     f"record of it in {c[0]} (finished {c[2]['finished']}, {c[2]['status']})")
            continue
        best = max(group, key=lambda c: (c[2]["finished"], c[2]["status"] == "ok", c[1]))
        keep = next((c for c in group if c[1] == 0 and _same(c[2], best[2])), None)  # OUT's copy of the winner stays
        for c in group:
            if c is keep or (c is best and keep is None):
                continue
            if _same(c[2], best[2]):  # an identical copy: added once
                if c[1] == 0:
                    w.delete_run(c[2]["id"])
                res.runs_identical += 1
                continue
            res.runs_replaced += 1
            res.lines.append(f"session {sid}: run {key} twice; kept the one finished {best[2]['finished']} ({best[2]['status']}) from "
                             f"{best[0]}, dropped the one finished {c[2]['finished']} ({c[2]['status']}) from {c[0]}")
            if c[1] == 0:
                w.delete_run(c[2]["id"])
        if keep is None:
            inserts.append((best[2], (have if best[1] == 0 else dumps[best[1] - 1]).predictions.get(best[2]["id"])))
    for r, preds in sorted(inserts, key=lambda x: (x[0]["finished"], x[0]["key"])):
        w.insert_run(r, preds)  # with every test example's output, where the run has them (bench.results.outputs)
        res.runs_added += 1
