# The README's commands. Each bootstraps .venv from nothing, so a fresh clone needs only Python 3.
#   make bench   -- quick benchmark session + its report
#   make test    -- the test suite (CI: `make test EXTRAS=test,ray,tune,g2p,text` also runs the Ray executor's tests)
#   make mutation -- plant the quiet bugs a benchmark cannot afford and check that a test catches each (on demand)
#   make plugin-example -- install examples/gru-plugin and run it through the entry-point door (CI)
#   make docs    -- the documentation site (docs/, mkdocs.yml) built into site/, strictly: a broken link fails (CI)
# Torch is installed first, pinned, where the venv has none: an unpinned `pip install .` on a machine
# without torch would pull a multi-GB CUDA build. Override e.g. TORCH_SPEC="torch==2.5.1" or
# TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu124" for a GPU machine.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS ?= test
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
# Two installs: the project alone is all a benchmark needs (make bench, regress, baseline); the tests, the
# mutation check and lint add $(EXTRAS). Installing the extras also installs the project, so it marks both.
CORE := $(VENV)/.installed-core
STAMP := $(VENV)/.installed

# CI's regression check: the gate suite (quick + the parallel recurrences) on one CPU thread (stable timings, bit-identical accuracies)
# compared with the committed baseline. Speed is machine-normalised; one seed, hence a generous bound.
# Bit-identical only on one instruction set: AVX-512 and AVX2 machines run other kernels and train the same
# seed to other accuracies, so the CPU baseline is per instruction set (cpu-ci-avx512, cpu-ci-avx2). On a CPU
# with no baseline of its own, the gate checks speed and memory against the AVX2 one and says so.
REGRESS_STORE ?= results/regress.sqlite
FAIL_ON ?= time:+100%,accuracy:-0.1pt,memory:+50%
# The same gate on another machine (README: CI): its own baseline file, suite and run flags, e.g.
#   make baseline BASELINE=gpu REGRESS_FLAGS="--device cuda --deterministic"   (once, on that machine; commit it)
#   make regress  BASELINE=gpu REGRESS_FLAGS="--device cuda --deterministic"
CPU_ISA := $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo avx512 || (grep -qw avx2 /proc/cpuinfo 2>/dev/null && echo avx2 || echo other))
BASELINE ?= cpu-ci-$(CPU_ISA)
FALLBACK_BASELINE ?= cpu-ci-avx2
FALLBACK_FAIL_ON ?= time:+100%,accuracy:off,memory:+50%
REGRESS_MD ?= results/reports/regress.md
REGRESS_SUITE ?= gate
REGRESS_FLAGS ?= --device cpu --deterministic --threads 1

.PHONY: bench test mutation plugin-example docs regress regress-run baseline lint clean

define venv_with_torch
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PIP) $(TORCH_INDEX) "$(TORCH_SPEC)"
endef

$(CORE): pyproject.toml
	$(venv_with_torch)
	$(PIP) -e .
	touch $(CORE)

$(STAMP): pyproject.toml
	$(venv_with_torch)
	$(PIP) -e ".[$(EXTRAS)]"
	touch $(STAMP) $(CORE)

# make bench: the quick suite on one CPU thread per run (run's default on a CPU; torch's one per core collapses when
# other jobs share the machine: docs/first-hour.md). BENCH_FLAGS adds run flags, e.g. BENCH_FLAGS="--threads 2".
bench: $(CORE)
	$(PY) -m bench run --suite quick $(BENCH_FLAGS)
	$(PY) -m bench report

test: $(STAMP)
	$(PY) -m pytest -q

mutation: $(STAMP)
	$(PY) -m bench.checks.mutation

# The example plugin through the entry-point door (docs/plugins.md): installed into the venv (it stays there), its model
# and task held to the contract, its own tests and the entry-point tests that skip without it, then a tiny session of
# its model beside a built-in one on its task, and the session's report.
PLUGIN_STORE ?= results/plugin-example.sqlite
plugin-example: $(STAMP)
	$(PY) -m pip install -q -e examples/gru-plugin
	$(PY) -m bench check-model gru
	$(PY) -m bench check-task rot13
	$(PY) -m pytest -q examples/gru-plugin/tests tests/runner/test_plugins.py
	rm -f $(PLUGIN_STORE) $(PLUGIN_STORE)-wal $(PLUGIN_STORE)-shm
	$(PY) -m bench run --task rot13 --model gru,attention --size tiny --epochs 2 --train-size 500 --device cpu --threads 1 --store $(PLUGIN_STORE)
	$(PY) -m bench report --store $(PLUGIN_STORE)

regress: regress-run
	@if [ -f results/baselines/$(BASELINE).json ]; then \
	  echo "$(PY) -m bench compare results/baselines/$(BASELINE).json latest --store $(REGRESS_STORE) --fail-on \"$(FAIL_ON)\""; \
	  $(PY) -m bench compare results/baselines/$(BASELINE).json latest --store $(REGRESS_STORE) --fail-on "$(FAIL_ON)" --markdown $(REGRESS_MD); \
	else \
	  echo "no baseline results/baselines/$(BASELINE).json for this machine: speed and memory only, against $(FALLBACK_BASELINE) (record one with: make baseline)"; \
	  $(PY) -m bench compare results/baselines/$(FALLBACK_BASELINE).json latest --store $(REGRESS_STORE) --fail-on "$(FALLBACK_FAIL_ON)" --markdown $(REGRESS_MD); \
	fi

baseline: regress-run  # re-record results/baselines/$(BASELINE).json (commit it with the change that moved it)
	$(PY) -m bench baseline save $(BASELINE) --force --store $(REGRESS_STORE)

regress-run: $(CORE)
	rm -f $(REGRESS_STORE) $(REGRESS_STORE)-wal $(REGRESS_STORE)-shm
	$(PY) -m bench run --suite $(REGRESS_SUITE) $(REGRESS_FLAGS) --store $(REGRESS_STORE)

# The documentation site: the docs extra (MkDocs and its Material theme) added to the venv, then a strict build -- a
# broken link, a missing page or a page left out of mkdocs.yml's nav fails. The reference pages under docs/reference/
# are generated from the code (python -m bench.cli.reference; a test keeps them equal to it).
DOCS_STAMP := $(VENV)/.installed-docs
$(DOCS_STAMP): pyproject.toml
	$(venv_with_torch)
	$(PIP) -e ".[docs]"
	touch $(DOCS_STAMP) $(CORE)

docs: $(DOCS_STAMP)
	$(PY) -m bench.cli.reference --check
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(PY) -m ruff check bench models tests examples

clean:
	rm -rf $(VENV) site results/bench.sqlite results/regress.sqlite results/reports
