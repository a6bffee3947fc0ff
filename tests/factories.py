"""One way for tests to build what the store holds: ``run_record(**overrides)``, defaults a test overrides by name.

A run built by hand repeats sixteen fields of which a test cares about two or three; here the rest have
defaults (an ok run of date/attention/tiny, seed 0, in session "s", one minute long, nothing measured),
and a test names only what it is about.
"""

from __future__ import annotations

from typing import Any

from bench.results.store import RunRecord
from bench.spec.run import RunSpec

STARTED = "2026-01-01T00:00:00+00:00"
FINISHED = "2026-01-01T00:01:00+00:00"


def run_record(spec: RunSpec | None = None, **overrides: Any) -> RunRecord:
    """A stored run. ``spec`` fills in what the runner stores from one (key, task, model, size, seed, config and
    its hash); ``overrides`` set any field of ``RunRecord`` by name. Without a ``key`` (or with ``key=None``) it is
    made from the fields as ``RunSpec.key`` makes it: ``task/model/size/seed/config_hash``."""
    fields: dict[str, Any] = dict(session="s", task="date", model="attention", size="tiny", seed=0, config={}, config_hash="h",
                                  status="ok", error=None, started=STARTED, finished=FINISHED, metrics={}, history=[], samples=[])
    if spec is not None:
        fields.update(key=spec.key(), task=spec.data.name, model=spec.model, size=spec.size, seed=spec.seed, config=spec.config(),
                      config_hash=spec.config_hash())
    fields.update(overrides)
    if fields.get("key") is None:
        fields["key"] = "{task}/{model}/{size}/{seed}/{config_hash}".format(**fields)
    return RunRecord(**fields)
