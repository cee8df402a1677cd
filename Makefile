# Developer and CI entry points. `make test` is what CI runs (see .ci/run).

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv system-deps lint typecheck test serve fmt bench

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install whenever pyproject.toml changes (new or bumped dependencies).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

system-deps:
	@scripts/ensure-system-deps.sh

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: venv
	$(BIN)/mypy

test: venv system-deps
	$(MAKE) --no-print-directory lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

serve: venv
	$(BIN)/llmconfig serve

fmt: venv
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

# Performance figures against the product's targets, measured in one run (~4 min on 2 cores); prints
# the table and writes it, with the machine it ran on, to docs/benchmarks.md.
bench: venv system-deps
	$(BIN)/python -m bench
