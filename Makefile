# The README's two commands. Each bootstraps .venv from nothing, so a fresh clone needs only Python 3.
#   make bench   -- quick benchmark session + its report
#   make test    -- the test suite
# Torch is installed first, pinned, where the venv has none: an unpinned `pip install .` on a machine
# without torch would pull a multi-GB CUDA build. Override e.g. TORCH_SPEC="torch==2.5.1" or
# TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu124" for a GPU machine.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: bench test lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

bench: $(STAMP)
	$(PY) -m bench run --suite quick
	$(PY) -m bench report

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check bench models tests

clean:
	rm -rf $(VENV) results/bench.sqlite results/reports
