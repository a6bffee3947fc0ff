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
    # the tests with every extra, lint, the documentation site built strictly, the example plugin, the gate
    assert ci == ["make test EXTRAS=test,ray,tune,g2p,text", "make lint", "make docs",
                  "make plugin-example", "make regress"]
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
    env = {**os.environ, "BASELINE": "gpu", "REGRESS_SUITE": "zoo", "REGRESS_FLAGS": "--device cuda --deterministic",
           "FAIL_ON": "time:+25%"}
    p = subprocess.run(["make", "-n", "regress", "PY=python"], cwd=REPO, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    cmds = p.stdout
    assert "bench run --suite zoo --device cuda --deterministic --store" in cmds
    assert "compare results/baselines/gpu.json latest" in cmds and '--fail-on "time:+25%"' in cmds
    default = subprocess.run(["make", "-n", "regress", "PY=python"], cwd=REPO, capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items() if k not in ("BASELINE", "REGRESS_SUITE", "REGRESS_FLAGS",
                                                                                   "FAIL_ON")})
    assert "bench run --suite gate --device cpu --deterministic --threads 1" in default.stdout
    assert ("compare results/baselines/cpu-ci-avx512.json latest" in default.stdout
            or "compare results/baselines/cpu-ci-avx2.json latest" in default.stdout)


# The first major of each action that runs on Node 24 (GitHub removes Node 20 from its runners in September
# 2026; the majors before these ran on Node 20). An action missing here must be added with its own.
NODE24 = {"actions/checkout": 5, "actions/setup-python": 6, "actions/upload-artifact": 6, "actions/download-artifact": 7,
          "actions/cache": 5, "actions/setup-node": 5}
DOC_WITH_THE_WORKFLOW = os.path.join(REPO, "docs", "ci.md")  # the page that holds the workflow, verbatim


def _pages() -> list[str]:
    docs = os.path.join(REPO, "docs")
    return [os.path.join(REPO, "README.md")] + sorted(os.path.join(docs, f) for f in os.listdir(docs) if f.endswith(".md"))


def _fenced(path: str, lang: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)


def test_the_ci_page_holds_the_workflow_file_as_it_is() -> None:
    with open(WORKFLOW, encoding="utf-8") as f:
        workflow = f.read()
    blocks = [b for b in _fenced(DOC_WITH_THE_WORKFLOW, "yaml") if "name: s2sbench\n" in b]
    assert blocks, f"{DOC_WITH_THE_WORKFLOW} has no ```yaml block with the workflow"
    assert blocks[0] == workflow, "docs/ci.md's copy of the workflow differs from .github/workflows/s2sbench.yml: paste the file again"


def test_every_action_in_the_workflow_and_the_docs_runs_on_node_24() -> None:
    with open(WORKFLOW, encoding="utf-8") as f:
        sources = [(WORKFLOW, f.read())] + [(p, b) for p in _pages() for b in _fenced(p, "ya?ml")]
    seen = 0
    for path, text in sources:
        for name, major in re.findall(r"uses:\s*(actions/[\w-]+)@v(\d+)", text):
            seen += 1
            assert name in NODE24, f"{os.path.relpath(path, REPO)}: {name}: add its first Node 24 major to NODE24"
            assert int(major) >= NODE24[name], (f"{os.path.relpath(path, REPO)}: {name}@v{major} runs on Node 20; "
                                                f"use v{NODE24[name]} or later")
    assert seen >= 7  # the workflow's own steps at least
