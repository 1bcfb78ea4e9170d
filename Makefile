# mdw developer commands. `make help` lists them; `make check` is exactly what CI runs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) web ## create .venv and install mdw with its dev tools

WEB_STAMP := src/mdw/dashboard/static/vendor/manifest.json
$(WEB_STAMP): web/package.json web/package-lock.json web/build.mjs
	@if command -v npm >/dev/null 2>&1; then \
		(cd web && npm ci --no-audit --no-fund --loglevel=error && node build.mjs); \
	else echo "npm not found: skipping the dashboard's chart library (make web once npm is installed)"; fi

web: $(WEB_STAMP) ## the dashboard's front-end assets: lightweight-charts from npm (skipped without npm)

pg: ## make sure PostgreSQL answers at 127.0.0.1:5432 (starts it if it can)
	@bash scripts/ensure-postgres.sh

fmt: install ## format the code
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

lint: install ## ruff and mypy (src, plus the typing-only check of the public API)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy tests/unit/typing_public_api.py

typecheck: install ## mypy alone
	$(VENV)/bin/mypy

test: install pg lint ## lint, then the whole test suite (quick reliability cases included), with coverage
	$(PY) -m pytest -q -m "not slow" --cov --cov-report= $(PYTEST_ARGS)
	@echo "coverage: $$($(VENV)/bin/coverage report --format=total)% of the lines of src/mdw (make cov: per module)"

cov: ## the coverage of the last `make test`, per module (fully covered modules left out)
	$(VENV)/bin/coverage report

test-pg: install pg ## only the PostgreSQL-backed tests
	$(PY) -m pytest -q -m postgres $(PYTEST_ARGS)

soak: install pg ## the long reliability suite (at most 15 minutes)
	$(PY) -m pytest -q -m slow tests/reliability $(PYTEST_ARGS)

bench: install pg ## every benchmark; results in bench/results/, figures in docs/benchmarks.md
	$(PY) bench/run_all.py

sim: install ## run the Polygon-compatible simulator on 127.0.0.1:8765
	$(VENV)/bin/mdw simulate --port 8765

demo: install ## backfill the standard workload from the built-in simulator into mdw-demo/demo.db
	$(VENV)/bin/mdw demo $(if $(SERVE),--serve,)

check: test ## what CI runs

.PHONY: help install web pg fmt lint typecheck test cov test-pg soak bench sim demo check
