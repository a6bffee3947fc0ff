# The README's commands. Each bootstraps .venv from nothing, so a fresh clone needs only Python 3.
#   make bench   -- quick benchmark session + its report
#   make test    -- the test suite (CI: `make test EXTRAS=test,ray` also runs the Ray executor's tests)
#   make mutation -- plant the quiet bugs a benchmark cannot afford and check that a test catches each (on demand)
# Torch is installed first, pinned, where the venv has none: an unpinned `pip install .` on a machine
# without torch would pull a multi-GB CUDA build. Override e.g. TORCH_SPEC="torch==2.5.1" or
# TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu124" for a GPU machine.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS ?= test
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# CI's regression check: the quick suite on one CPU thread (stable timings, bit-identical accuracies)
# compared with the committed baseline. Speed is machine-normalised; one seed, hence a generous bound.
REGRESS_STORE ?= results/regress.sqlite
FAIL_ON ?= time:+100%,accuracy:-0.1pt,memory:+50%

.PHONY: bench test mutation regress regress-run baseline lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

bench: $(STAMP)
	$(PY) -m bench run --suite quick
	$(PY) -m bench report

test: $(STAMP)
	$(PY) -m pytest -q

mutation: $(STAMP)
	$(PY) -m bench.checks.mutation

regress: regress-run
	$(PY) -m bench compare results/baselines/cpu-ci.json latest --store $(REGRESS_STORE) --fail-on "$(FAIL_ON)" --markdown results/reports/regress.md

baseline: regress-run  # re-record results/baselines/cpu-ci.json (commit it with the change that moved it)
	$(PY) -m bench baseline save cpu-ci --store $(REGRESS_STORE)

regress-run: $(STAMP)
	rm -f $(REGRESS_STORE) $(REGRESS_STORE)-wal $(REGRESS_STORE)-shm
	$(PY) -m bench run --suite quick --device cpu --deterministic --threads 1 --store $(REGRESS_STORE)

lint: $(STAMP)
	$(PY) -m ruff check bench models tests

clean:
	rm -rf $(VENV) results/bench.sqlite results/regress.sqlite results/reports
