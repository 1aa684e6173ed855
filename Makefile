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
.PHONY: help setup data figures test test-fast lab report clean lint

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

report: $(STAMP) ## write reports/index.html: every figure with its provenance
	$(PY) -m studylib report

test: $(EXT_STAMP) ## run the test suite (includes the smoke profile of every notebook)
	$(PY) -m pytest -q

test-fast: $(EXT_STAMP) ## the test suite without the slow end-to-end tests
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check studylib tests

lab: $(EXT_STAMP) ## open the notebooks in JupyterLab
	$(VENV)/bin/jupyter lab notebooks/

clean: ## remove outputs and caches (keeps .venv and data/)
	rm -rf reports/ results/*/ .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
