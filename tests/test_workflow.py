"""The GitHub Actions workflow people copy: valid YAML, the same commands as ``.ci/run``, compare's table in
the job summary and as an artifact, and a GPU job whose settings the Makefile actually reads."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO

WORKFLOW = os.path.join(REPO, ".github", "workflows", "s2sbench.yml")


@pytest.fixture(scope="module")
def workflow() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (the test extra installs it)")
    with open(WORKFLOW, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    assert isinstance(doc, dict)
    return doc


def _ci_run_commands() -> list[str]:
    with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as f:
        lines = [ln.strip() for ln in f]
    return [ln for ln in lines if ln and not ln.startswith(("#", "set ", "cd "))]


def _runs(job: dict) -> list[str]:
    return [s["run"].strip() for s in job["steps"] if "run" in s]


def _make_regress_markdown() -> str:
    with open(os.path.join(REPO, "Makefile"), encoding="utf-8") as f:
        text = f.read()
    recipe = text.split("\nregress:", 1)[1].split("\n\n", 1)[0]
    md = re.search(r"--markdown (\S+)", recipe).group(1).rstrip(";")
    if md.startswith("$("):  # a make variable: its default
        md = re.search(rf"^{re.escape(md[2:-1])} \?= (\S+)", text, re.M).group(1)
    return md


def test_it_runs_on_every_pull_request(workflow) -> None:
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in on


def test_the_cpu_job_calls_what_ci_run_calls_in_the_same_order(workflow) -> None:
    ci = _ci_run_commands()
    assert ci == ["make test EXTRAS=test,ray", "make plugin-example", "make regress"]  # the tests with Ray, the example plugin, the gate
    runs = _runs(workflow["jobs"]["cpu"])
    assert [r for r in runs if r.startswith("make")] == ci


def test_compare_s_markdown_goes_to_the_summary_and_an_artifact_even_on_a_regression(workflow) -> None:
    md = _make_regress_markdown()
    steps = workflow["jobs"]["cpu"]["steps"]
    summary = [s for s in steps if "GITHUB_STEP_SUMMARY" in s.get("run", "")]
    assert summary and md in summary[0]["run"] and summary[0]["if"] == "always()"
    upload = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert upload and md in upload[0]["with"]["path"] and upload[0]["if"] == "always()"


def test_the_gpu_job_is_self_hosted_opt_in_and_runs_the_gate_against_a_gpu_baseline(workflow) -> None:
    job = workflow["jobs"]["gpu"]
    assert "self-hosted" in job["runs-on"] and any("vars.S2SBENCH_GPU_LABEL" in str(x) for x in job["runs-on"])
    assert "vars.S2SBENCH_GPU_LABEL" in job["if"] and "head.repo.full_name" in job["if"]  # opt-in; no fork code on it
    assert "make regress" in _runs(job)
    assert "--device cuda" in job["env"]["REGRESS_FLAGS"] and "cpu-ci" not in job["env"]["BASELINE"]
    with open(os.path.join(REPO, "Makefile"), encoding="utf-8") as f:
        makefile = f.read()
    for name in job["env"]:
        assert re.search(rf"^{name} \?=", makefile, re.M), f"the Makefile does not read {name}"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_gpu_job_s_settings_steer_make_regress() -> None:
    env = {**os.environ, "BASELINE": "gpu", "REGRESS_SUITE": "zoo", "REGRESS_FLAGS": "--device cuda --deterministic", "FAIL_ON": "time:+25%"}
    p = subprocess.run(["make", "-n", "regress", "PY=python"], cwd=REPO, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    cmds = p.stdout
    assert "bench run --suite zoo --device cuda --deterministic --store" in cmds
    assert "compare results/baselines/gpu.json latest" in cmds and '--fail-on "time:+25%"' in cmds
    default = subprocess.run(["make", "-n", "regress", "PY=python"], cwd=REPO, capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items() if k not in ("BASELINE", "REGRESS_SUITE", "REGRESS_FLAGS", "FAIL_ON")})
    assert "bench run --suite quick --device cpu --deterministic --threads 1" in default.stdout
    assert "compare results/baselines/cpu-ci-avx512.json latest" in default.stdout or "compare results/baselines/cpu-ci-avx2.json latest" in default.stdout
