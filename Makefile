# scv — every target sets itself up: a fresh machine needs only Python 3.11 and pip.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv run test test-unit test-integration check fmt demo bench chaos clean

help: ## List every target
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv and install scv with dev tools

run: $(STAMP) ## Run the whole pipeline on the embedded broker with the demo source (Ctrl-C stops)
	$(BIN)/scv run

test: $(STAMP) ## Run the default test suite (unit, stage and broker-backed integration tests)
	$(BIN)/python -m pytest -q

test-unit: $(STAMP) ## Run only the fast unit and stage tests
	$(BIN)/python -m pytest -q tests/unit tests/stages

test-integration: $(STAMP) ## Run only the broker-backed integration tests
	$(BIN)/python -m pytest -q tests/integration

check: $(STAMP) ## Lint (ruff) and type-check (mypy)
	$(BIN)/ruff check scv tests
	$(BIN)/ruff format --check scv tests
	$(BIN)/mypy

fmt: $(STAMP) ## Format and auto-fix with ruff
	$(BIN)/ruff format scv tests
	$(BIN)/ruff check --fix scv tests

demo: $(STAMP) ## Run the 20k-event demo once and write var/demo.json
	@mkdir -p var
	$(BIN)/scv demo --events 20000 --seed 7 --json var/demo.json

bench: $(STAMP) ## Heavier benchmarks, JSON in var/bench-*.json (about 20 min); not part of make test
	@mkdir -p var
	$(BIN)/scv bench throughput --events 50000 --workers 1 2 --latency-events 60000 \
	  --json var/bench-throughput.json
	$(BIN)/scv bench memory --json var/bench-memory.json
	$(BIN)/scv demo --events 20000 --seed 7 --json var/bench-demo.json
	$(BIN)/scv demo --events 20000 --seed 7 --matching --json var/bench-demo-matching.json
	for d in febrl3 febrl4; do \
	  $(BIN)/scv bench accuracy --dataset $$d --json var/bench-accuracy-$$d.json && \
	  $(BIN)/scv bench accuracy --dataset $$d --no-ssn --json var/bench-accuracy-$$d-no-ssn.json || exit 1; \
	done

chaos: $(STAMP) ## SIGKILL workers 6+ times during the 20k demo; compare with a fault-free run (var/chaos.json, exit 1 unless all 0)
	@mkdir -p var
	$(BIN)/scv bench chaos --events 20000 --kills 7 --json var/chaos.json

clean: ## Remove the virtualenv, local state and caches
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
