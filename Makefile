# wasteml: the two commands of the README are `make demo` and `make test`.
# Each installs what it needs from scratch (virtual environments, npm packages, exported
# models) and is fast when everything is already in place.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The main venv is rebuilt when pyproject.toml changes.
VENV_STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
TS_STAMP := clients/ts/node_modules/.installed-$(shell sha1sum clients/ts/package-lock.json | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: demo test setup python-env triton-env node-env deploy-tools models generate check-generated lint bench clean

## demo: the main job on the embedded defaults (local Triton, Milvus Lite, SQLite) and real data
demo: setup models
	$(BIN)/wasteml demo

## test: the whole test suite (what CI runs); benchmarks marked slow are skipped
test: setup models
	bash scripts/check_generated.sh
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

setup: python-env triton-env node-env deploy-tools

python-env: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,export]'
	rm -f $(VENV)/.installed-*
	touch $@

## triton-env: the local Triton's own venv (nvidia-pytriton bundle, numpy<2, onnxruntime)
triton-env:
	PYTHON=$(PYTHON) bash scripts/setup_triton_env.sh .venv-triton

## deploy-tools: docker compose (CLI plugin), hadolint and promtool for the deployment checks
deploy-tools: python-env
	bash deploy/install_tools.sh $(BIN)

node-env: $(TS_STAMP)

$(TS_STAMP): clients/ts/package-lock.json
	cd clients/ts && npm ci --no-audit --no-fund --loglevel=error
	touch $@

## models: export the text encoder and train the forecasting models (each skipped when present);
## paths from the WASTEML_MODEL_REPOSITORY and WASTEML_DATA_DIR settings, as the server reads them
models: python-env
	$(BIN)/wasteml export text-encoder
	$(BIN)/python -m wasteml_tools.forecasting.cli demand --skip-if-trained --no-backtest --no-register
	$(BIN)/python -m wasteml_tools.forecasting.cli fill-level --skip-if-trained --no-backtest --no-register

## generate: regenerate the Python and TypeScript clients from proto/
generate: python-env node-env
	bash scripts/generate.sh

check-generated: python-env node-env
	bash scripts/check_generated.sh

lint: python-env
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

## bench: benchmarks (slow; figures, not assertions)
bench: setup models
	$(BIN)/pytest -m slow -s

clean:
	rm -rf var
