# Catalyst developer commands. Every target bootstraps .venv on first use, so a fresh clone needs
# only `make serve` (run the gateway with the bundled examples) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test node-deps bench bench-packs bench-packages bench-access conformance clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/catalyst serve --config examples/catalyst.yaml

# Node peers of the tests (conformance suite, server-everything), from PyPI's Node + npm.
node-deps: $(STAMP)
	$(BIN)/python scripts/node_deps.py

test: $(STAMP) node-deps
	$(BIN)/ruff check src tests bench conformance scripts
	$(BIN)/ruff format --check src tests bench conformance scripts
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/gateway_overhead.py

bench-packs: $(STAMP)
	$(BIN)/python bench/packs.py

bench-packages: $(STAMP)
	$(BIN)/python bench/packages.py

bench-access: $(STAMP)
	$(BIN)/python bench/access.py

.PHONY: bench-audit
bench-audit: $(STAMP)
	$(BIN)/python bench/audit_durability.py

.PHONY: bench-rest
bench-rest: $(STAMP)
	$(BIN)/python bench/rest_api.py

conformance: $(STAMP) node-deps
	$(BIN)/python conformance/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

.PHONY: bench-observability
bench-observability: $(STAMP)
	$(BIN)/python bench/observability.py

.PHONY: bench-workflows
bench-workflows: $(STAMP)
	$(BIN)/python bench/workflows.py

.PHONY: bench-dashboard
bench-dashboard: $(STAMP)
	$(BIN)/python bench/dashboard.py

.PHONY: bench-sessions
bench-sessions: $(STAMP)
	$(BIN)/python bench/scale_sessions.py
.PHONY: bench-cache
bench-cache: $(STAMP)
	$(BIN)/python bench/result_cache.py
.PHONY: bench-events
bench-events: $(STAMP)
	$(BIN)/python bench/events.py
# 1 worker vs 2 (catalyst serve --workers) against the lean upstream; needs wrk (apt-get install wrk)
.PHONY: bench-workers
bench-workers: $(STAMP)
	$(BIN)/python bench/workers.py

# helm's linter on deploy/helm/catalyst: a helm binary, else helm-sdkpy in .helm-venv (docs/deploy.md)
.PHONY: lint-helm
lint-helm: $(STAMP)
	$(BIN)/python scripts/helm_lint.py --setup
	$(BIN)/python scripts/helm_lint.py
