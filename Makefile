# Catalyst developer commands. Every target bootstraps .venv on first use, so a fresh clone needs
# only `make serve` (run the gateway with the bundled examples) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint typecheck check bench conformance clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/catalyst serve --config examples/catalyst.yaml

test: $(STAMP)
	$(BIN)/ruff check src tests bench conformance
	$(BIN)/ruff format --check src tests bench conformance
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/gateway_overhead.py

conformance: $(STAMP)
	$(BIN)/python conformance/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
