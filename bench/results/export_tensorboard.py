"""``s2sbench export --to tensorboard DIR``: one TensorBoard run per stored run, curves and hyperparameters.

Each run gets its own folder, ``DIR/<session>/<task>/<model>/<size>/<seed>/<config hash>`` (its store key
under its session, so TensorBoard's run filter takes ``date/attention`` or a session id), holding:

* scalars per epoch: ``epoch/loss``, ``epoch/valid_exact_match``, ``epoch/train_s`` (the epoch's training
  time) and the rest of the epoch record; a throughput run's step times as ``step/step_s``; exact match by
  source length as ``by_length/test_exact_match`` (the step is the length);
* the final figures as ``final/<metric>`` scalars at the last step;
* the HParams dashboard's three records, as ``SummaryWriter.add_hparams`` writes them: the experiment
  (which hyperparameters and metrics there are), the session start (this run's config) and the session end
  (success, or failure for a failed run).

Written with the ``tensorboard`` package's own event writer and protocol buffers, not
``torch.utils.tensorboard``: an export, like a report, needs only the store, not torch
(``pip install 's2sbench[tensorboard]'``).

Exporting again into the same DIR does not add a second copy: each run folder keeps a small
``s2sbench-run.json`` naming the stored run it holds; a folder that already holds that run is skipped, and
one that held an earlier record of the same key (a failed run since retried, a store since merged) has its
event files replaced.

Nothing is left half-written: DIR is probed first (a folder, or one that can be made, writable, with space left:
:func:`probe`), and each run's event file is built in memory and written with its marker whole or not at all
(``bench.results.files``: temporary names, then renames), so a full disk leaves no empty event file and no
half a run folder -- and no writer thread to die with "Exception in thread" (TensorBoard's own event writer
writes from one). The runs written before the failure are whole, and an export again skips them.
"""

from __future__ import annotations

import io
import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from bench.errors import UserError
from bench.results import files
from bench.results.export import ExportRun
from bench.results.metrics import CATALOGUE
from bench.results.store import MIN_FREE

INSTALL = "pip install 's2sbench[tensorboard]'"
MARKER = "s2sbench-run.json"
FINAL_PREFIX = "final/"


@dataclass(frozen=True)
class Outcome:
    logdir: str
    written: int
    skipped: int
    replaced: int


def _tb() -> dict[str, Any]:
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2, summary_v2
        from tensorboard.summary.writer.record_writer import RecordWriter
    except ImportError:
        raise UserError(f"export --to tensorboard needs TensorBoard, which is not installed: {INSTALL}") from None
    return {"event_pb2": event_pb2, "summary_pb2": summary_pb2, "api_pb2": api_pb2, "metadata": metadata,
            "plugin_data_pb2": plugin_data_pb2, "summary_v2": summary_v2, "RecordWriter": RecordWriter}


def probe(logdir: str) -> None:
    """Can ``logdir`` take an export? TensorBoard importable; a folder (or a path whose nearest existing folder can
    be written) with space left. One line saying why not, before any work."""
    _tb()
    if os.path.exists(logdir) and not os.path.isdir(logdir):
        raise UserError(f"{logdir}: a file, not a TensorBoard log folder")
    head = os.path.abspath(logdir)
    while not os.path.exists(head):
        head = os.path.dirname(head)
    if not os.path.isdir(head):
        raise UserError(f"{logdir}: {head} is a file, not a folder")
    if not os.access(head, os.W_OK | os.X_OK):
        raise UserError(f"{logdir}: cannot write in {head} (no permission); give a folder you can write")
    try:
        st = os.statvfs(head)
    except (OSError, AttributeError):
        return
    if st.f_bavail * st.f_frsize < MIN_FREE:
        raise UserError(f"{logdir}: no space left in {head} ({st.f_bavail * st.f_frsize // 1024} KiB free)")


def run_dirs(runs: list[ExportRun]) -> list[str]:
    """Each run's folder, relative to DIR: its session and key; a second record of one key gets ``~2``."""
    seen: dict[tuple[str, str], int] = {}
    out = []
    for r in runs:
        n = seen[(r.session, r.key)] = seen.get((r.session, r.key), 0) + 1
        parts = [r.session, *r.key.split("/")]
        if n > 1:
            parts[-1] += f"~{n}"
        out.append(os.path.join(*(p.replace(os.sep, "_") for p in parts)))
    return out


def hparams_of(r: ExportRun) -> dict[str, str | float | bool]:
    hp: dict[str, str | float | bool] = {k: (float(v) if isinstance(v, int) and not isinstance(v, bool) else v)
                                         for k, v in r.config.items()}
    hp["status"] = r.status
    return hp


def final_tags(r: ExportRun) -> dict[str, float]:
    return {FINAL_PREFIX + k: v for k, v in r.metrics.items()}


def _read_marker(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        return doc if isinstance(doc, dict) else None
    except (OSError, ValueError):
        return None


def export(runs: list[ExportRun], logdir: str) -> Outcome:
    """Write ``runs`` under ``logdir``, each run whole or not at all; runs already there are skipped."""
    probe(logdir)
    tb = _tb()
    hp_names = sorted({k for r in runs for k in hparams_of(r)})
    shown = {m.name for m in CATALOGUE}
    metric_tags = sorted({FINAL_PREFIX + k for r in runs for k in r.metrics if k in shown})
    experiment = tb["summary_v2"].hparams_config_pb([tb["summary_v2"].HParam(n) for n in hp_names],
                                                   [tb["summary_v2"].Metric(t) for t in metric_tags])
    written = skipped = replaced = 0
    for r, rel in zip(runs, run_dirs(runs)):
        d = os.path.join(logdir, rel)
        marker = _read_marker(os.path.join(d, MARKER))
        if marker is not None and marker.get("uid") == r.uid and all(os.path.exists(os.path.join(d, f)) for f in marker.get("files", [])):
            skipped += 1
            continue
        name = _event_file_name(d)
        marker_doc = {"uid": r.uid, "session": r.session, "key": r.key, "name": r.name, "files": [name]}
        # the event file and its marker, whole or not at all; a folder made for them goes again if they cannot be written
        files.write_files(d, {name: _events(tb, r, experiment), MARKER: json.dumps(marker_doc, indent=1)}, "TensorBoard run")
        if marker is not None:  # an earlier record of this key: its event files go, now that the new one is in place
            for f in marker.get("files", []):
                if os.path.basename(f) == f and f.startswith("events.out.tfevents.") and f != name:
                    try:
                        os.remove(os.path.join(d, f))
                    except OSError:
                        pass
            replaced += 1
        else:
            written += 1
    return Outcome(logdir, written, skipped, replaced)


def _event_file_name(d: str) -> str:
    """TensorBoard's own name for an event file (``events.out.tfevents.<time>.<host>.<pid>.<n>``), one not in ``d`` yet."""
    n = 0
    while True:
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{n}"
        if not os.path.exists(os.path.join(d, name)):
            return name
        n += 1


def _events(tb: dict[str, Any], r: ExportRun, experiment: Any) -> bytes:
    """One run's event file, in memory: TensorBoard's record format (its ``RecordWriter``), the first event naming the
    file version, as TensorBoard's own ``EventFileWriter`` writes it."""
    ev, sm, api, md, pd = tb["event_pb2"], tb["summary_pb2"], tb["api_pb2"], tb["metadata"], tb["plugin_data_pb2"]
    t0 = r.started or r.finished or 0.0
    t1 = r.finished or t0
    buf = io.BytesIO()
    w = tb["RecordWriter"](buf)

    def event(e: Any) -> None:
        w.write(e.SerializeToString())

    def scalar(tag: str, value: float, step: int, wall: float | None) -> None:
        event(ev.Event(wall_time=wall or t0, step=step, summary=sm.Summary(value=[sm.Summary.Value(tag=tag, simple_value=value)])))

    event(ev.Event(wall_time=time.time(), file_version="brain.Event:2"))
    for tag, points in sorted(r.series.items()):
        for step, value, wall in points:
            scalar(tag, value, step, wall)
    last = max((p[0] for tag, pts in r.series.items() if tag.startswith("epoch/") for p in pts), default=0)
    for tag, value in sorted(final_tags(r).items()):
        scalar(tag, value, last, t1)
    end = pd.HParamsPluginData(session_end_info=pd.SessionEndInfo(
        status=api.STATUS_SUCCESS if r.status == "ok" else api.STATUS_FAILURE, end_time_secs=t1))
    end_summary = sm.Summary(value=[sm.Summary.Value(tag=md.SESSION_END_INFO_TAG, metadata=md.create_summary_metadata(end),
                                                     tensor=md.NULL_TENSOR)])
    start = tb["summary_v2"].hparams_pb(hparams_of(r), trial_id=f"{r.session}/{r.name}", start_time_secs=t0)
    for summary, wall in ((experiment, t0), (start, t0), (end_summary, t1)):
        event(ev.Event(wall_time=wall, step=0, summary=summary))
    return buf.getvalue()
