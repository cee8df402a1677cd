# Developer and CI entry points. `make test` is what CI runs (see .ci/run).

SHELL := /bin/bash
# CPython 3.12 where the machine has it, else 3.11 (scripts/pick-python.sh says why).
PYTHON ?= $(shell scripts/pick-python.sh)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Biome (lint and format of the panel's JavaScript and CSS), pinned in package-lock.json.
NODE_STAMP := node_modules/.installed
BIOME := node_modules/.bin/biome
# Two workers: most tests wait on servers, subprocesses or a browser, so two share the two cores well.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=

.PHONY: venv system-deps lint typecheck test serve fmt bench

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install whenever pyproject.toml changes (new or bumped dependencies).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

# Re-install whenever the lock changes; npm ci installs exactly what the lock says.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

system-deps:
	@scripts/ensure-system-deps.sh

lint: venv $(NODE_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports --no-cache
	$(BIOME) ci --colors=off

typecheck: venv
	$(BIN)/mypy

test: venv system-deps
	$(MAKE) --no-print-directory lint typecheck
	$(BIN)/pytest -n $(PYTEST_WORKERS) --cov --cov-report=term $(PYTEST_ARGS)

serve: venv
	$(BIN)/llmconfig serve

fmt: venv $(NODE_STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench
	$(BIOME) check --write

# Performance figures against the product's targets, measured in one run (~4 min on 2 cores); prints
# the table and writes it, with the machine it ran on, to docs/benchmarks.md.
bench: venv system-deps
	$(BIN)/python -m bench
