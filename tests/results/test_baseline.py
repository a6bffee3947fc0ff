"""The baseline file format (``bench.results.baseline``): a committed baseline reads back into what wrote it, and
a malformed one is refused with the result it trips on. Comparing against one is ``tests/regress``."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace

import pytest

from bench.errors import UserError
from bench.results import baseline
from tests.conftest import REPO

COMMITTED = sorted(os.path.join(REPO, "results", "baselines", n) for n in os.listdir(os.path.join(REPO, "results", "baselines"))
                   if n.endswith(".json"))


@pytest.mark.parametrize("path", COMMITTED, ids=os.path.basename)
def test_a_committed_baseline_reads_back_into_the_very_file(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    b = baseline.load(path)
    assert b.name == json.loads(text)["name"] and b.entries and b.calibration is not None
    assert all(isinstance(v, (int, float)) or v is None for e in b.entries for vals in e.seeds.values() for v in vals.values())
    assert baseline.dumps(baseline.document(b, created=json.loads(text)["created"])) == text


def _doc(**result) -> dict:
    """A one-result baseline document; a field given as None is left out."""
    r = {"task": "date", "model": "attention", "size": "tiny", "config_hashes": ["h"], "seeds": {"0": {"params": 10}}, **result}
    r = {k: v for k, v in r.items() if v is not None}
    return {"format": baseline.FORMAT, "schema_version": baseline.VERSION, "results": {"date/attention/tiny": r}}


def test_entries_keep_integers_and_configs_and_name_several_configurations_by_hash():
    b = baseline.from_document(_doc(config='{"train": {"amp": "bf16"}}', failed={"1": "boom"}), "x/old.json")
    (e,) = b.entries
    assert (b.name, e.seeds, e.failed, e.config_hash) == ("old", {0: {"params": 10}}, {1: "boom"}, "h")
    assert e.config == {"train": {"amp": "bf16"}}  # a config kept as JSON text is read as well as an object
    two = baseline.Baseline("two", {}, {}, None, (e, replace(e, config_hashes=("g",))))
    assert sorted(baseline.document(two, created="t")["results"]) == ["date/attention/tiny/g", "date/attention/tiny/h"]


@pytest.mark.parametrize("result, why", [
    ({"seeds": {"zero": {}}}, "result 'date/attention/tiny' is malformed (ValueError"),
    ({"failed": ["x"]}, "result 'date/attention/tiny' is malformed (ValueError"),
    ({"task": None}, "result 'date/attention/tiny' is malformed (KeyError: 'task')"),
    ({"seeds": {"0": {"params": "10"}}}, "params must be a number or null"),
])
def test_a_malformed_result_is_refused_by_its_key(result, why):
    with pytest.raises(UserError, match=re.escape(why)):
        baseline.from_document(_doc(**result), "b.json")
