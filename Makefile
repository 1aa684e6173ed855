# GNN systems study suite. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= small
NOTEBOOKS ?=
STAMP := $(VENV)/.installed
EXT_STAMP := $(VENV)/.pyg-extensions

.DEFAULT_GOAL := help
.PHONY: help setup data figures test test-fast lab report clean lint env-current device-check

help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  \033[1m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: PROFILE=$(PROFILE) (smoke|small|paper)  NOTEBOOKS='01-hgnn-training ...'  STUDYLIB_DATA_MIRROR=<dir>"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel setuptools
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@

# PyG's extension kernels (torch-scatter, torch-sparse): wheels from $$PIP_FIND_LINKS or PyG's index,
# else built from source (slow); the suite still runs where neither works.
$(EXT_STAMP): $(STAMP) scripts/install_pyg_extensions.sh
	bash scripts/install_pyg_extensions.sh $(PY)
	@touch $@

setup: $(EXT_STAMP) ## create .venv, install studylib with its pinned dependencies and PyG's extension kernels

data: $(EXT_STAMP) ## fetch the small real datasets into data/ (from $$STUDYLIB_DATA_MIRROR, else download)
	$(PY) -m studylib data

figures: data ## regenerate every figure of the PROFILE (default small) into figures/ and results/
	$(PY) -m studylib run $(NOTEBOOKS) --profile $(PROFILE)

report: $(STAMP) ## write reports/index.html: every figure with its provenance, the findings scoreboard
	$(PY) -m studylib report

test: $(EXT_STAMP) ## run the test suite (includes the smoke profile of every notebook)
	$(PY) -m pytest -q

test-fast: $(EXT_STAMP) ## the test suite without the slow end-to-end tests
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check studylib tests

lab: $(EXT_STAMP) ## open the notebooks in JupyterLab
	$(VENV)/bin/jupyter lab notebooks/

# A second environment for the torch- and PyG-only paths: Python 3.12, current torch and PyG, numpy 2,
# no DGL (what a GPU machine with a current PyTorch has). Not the default; `make setup` stays pinned.
PYTHON312 ?= $(shell for p in python3.12 $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { command -v "$$p" || echo "$$p"; } && break; done)
VENV_CURRENT ?= .venv-current
TORCH_CURRENT ?= 2.11.0
CURRENT_PKGS := "torch==$(TORCH_CURRENT)" "torch_geometric==2.8.1" "numpy>=2" scipy pandas pyarrow pydantic PyYAML \
	matplotlib seaborn tqdm psutil py-cpuinfo nvidia-ml-py papermill nbformat nbclient nbconvert ipykernel pytest

env-current: ## second env .venv-current: Python 3.12, current torch (TORCH_CURRENT) and PyG, numpy 2, no DGL (~3 GB download)
	@test -n "$(PYTHON312)" || { echo "error: no Python 3.12 found (python3.12 or pyenv's 3.12); set PYTHON312=/path/to/python3.12"; exit 1; }
	test -x $(VENV_CURRENT)/bin/python || $(PYTHON312) -m venv $(VENV_CURRENT)
	$(VENV_CURRENT)/bin/python -m pip install --quiet --upgrade pip wheel setuptools
	$(VENV_CURRENT)/bin/python -m pip install --quiet $(CURRENT_PKGS)
	$(VENV_CURRENT)/bin/python -m pip install --quiet --no-deps --ignore-requires-python -e .
	@! $(VENV_CURRENT)/bin/python -c 'import dgl' 2>/dev/null || { echo "error: dgl is installed in $(VENV_CURRENT)"; exit 1; }
	$(VENV_CURRENT)/bin/python -c 'import sys, torch, torch_geometric, numpy, studylib; print("python", sys.version.split()[0], "torch", torch.__version__, "pyg", torch_geometric.__version__, "numpy", numpy.__version__)'

DEVICE_OUT ?= reports/device-check
# PY=python3 on the command line runs it with that interpreter and skips the set-up of .venv
device-check: $(if $(filter command line,$(origin PY)),,$(STAMP)) ## device check (GPU if present, else CPU) into DEVICE_OUT (default reports/device-check)
	$(PY) -m studylib device-check --out $(DEVICE_OUT)

clean: ## remove outputs and caches (keeps .venv and data/)
	rm -rf reports/ results/*/ .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
