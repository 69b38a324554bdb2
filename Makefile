# scv — every target sets itself up: a fresh machine needs only Python 3.11 and pip.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv tools kafka quix run test test-kafka test-unit test-integration check fmt demo bench fuzz households chaos clean

help: ## List every target
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv and install scv with dev tools

tools: ## Install Debian's chromium, chromium-driver and prometheus (page and scrape tests) if missing
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
	  && command -v prometheus >/dev/null 2>&1 || { \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  echo "installing Debian's chromium, chromium-driver and prometheus for the tests"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends -o DPkg::Lock::Timeout=300 chromium chromium-driver prometheus \
	  || { echo "could not install chromium, chromium-driver and prometheus: the tests need them"; exit 1; }; }

kafka: $(STAMP) ## Install Java 17 and Maven if missing, and fetch Apache Kafka into ~/.cache/scv (once)
	@command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1 || { \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  echo "installing Debian's openjdk-17-jre-headless and maven for Apache Kafka"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends -o DPkg::Lock::Timeout=300 openjdk-17-jre-headless maven \
	  || { echo "could not install Java and Maven: Apache Kafka needs them"; exit 1; }; }
	$(BIN)/scv broker --kafka --fetch-only

quix: $(STAMP) ## Install the naive Quix Streams peer of scv bench throughput into its own virtualenv under ~/.cache/scv (once)
	@$(BIN)/python -c "from scv.bench.quix import quix_python; print('quixstreams peer:', quix_python())"

run: $(STAMP) ## Run the whole pipeline on the embedded broker with the demo source (Ctrl-C stops)
	$(BIN)/scv run

test: $(STAMP) tools quix ## Run the default test suite (unit, stage and broker-backed integration tests)
	$(BIN)/python -m pytest -q -m "not kafka"

test-kafka: $(STAMP) tools kafka quix ## The broker-backed integration tests, the 20k demo and make chaos on Apache Kafka
	@mkdir -p var
	SCV_BROKER=kafka $(BIN)/python -m pytest -q tests/integration
	SCV_BROKER=kafka $(BIN)/scv demo --events 20000 --seed 7 --json var/demo-kafka.json --check
	$(MAKE) --no-print-directory chaos SCV_BROKER=kafka CHAOS_EVENTS=10000 CHAOS_JSON=var/chaos-kafka.json
	$(MAKE) --no-print-directory chaos SCV_BROKER=kafka SCV_PROCESSING_GUARANTEE=exactly_once \
	  CHAOS_EVENTS=10000 CHAOS_JSON=var/chaos-kafka-exactly-once.json

test-unit: $(STAMP) ## Run only the fast unit and stage tests
	$(BIN)/python -m pytest -q tests/unit tests/stages

test-integration: $(STAMP) tools quix ## Run only the broker-backed integration tests
	$(BIN)/python -m pytest -q -m "not kafka" tests/integration

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

bench: $(STAMP) quix ## Heavier benchmarks, JSON in var/bench-*.json (about 25 min); not part of make test
	@mkdir -p var
	$(BIN)/scv bench throughput --events 50000 --workers 1 2 --latency-events 60000 --rounds 3 --split-stages \
	  --json var/bench-throughput.json
	$(BIN)/scv bench memory --json var/bench-memory.json
	$(BIN)/scv bench api --workers 1 --under-load --json var/bench-api-1.json
	$(BIN)/scv bench api --workers 2 --under-load --json var/bench-api-2.json
	$(BIN)/scv demo --events 20000 --seed 7 --json var/bench-demo.json
	$(BIN)/scv demo --events 20000 --seed 7 --matching --json var/bench-demo-matching.json
	$(BIN)/scv bench backfill --events 35000 --households 0.5 --runs 5 --json var/bench-backfill.json
	for d in febrl3 febrl4; do \
	  $(BIN)/scv bench accuracy --dataset $$d --json var/bench-accuracy-$$d.json && \
	  $(BIN)/scv bench accuracy --dataset $$d --no-ssn --json var/bench-accuracy-$$d-no-ssn.json || exit 1; \
	done

households: $(STAMP) ## 1,000 generated households through the stages in random arrival orders: every run ends, as in event-time order (var/households.json, about 1 min)
	@mkdir -p var
	$(BIN)/python tests/stages/households_run.py --scenarios 1000 --json var/households.json

$(VENV)/.fuzz-installed: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,fuzz]'
	@touch $@

fuzz: $(VENV)/.fuzz-installed ## Hostile input: >= 100,000 bad events through the stages (JSON counts in var/fuzz.json), then atheris on the normaliser (about 10 min)
	@mkdir -p var
	$(BIN)/python tests/stages/fuzz_run.py --bad-events 100000 --json var/fuzz.json
	$(BIN)/python tests/stages/fuzz_atheris.py -runs=2000000 -max_len=8192 -seed=1 \
	  -artifact_prefix=var/fuzz- var/fuzz-corpus >var/fuzz-atheris.json 2>var/fuzz-atheris.log \
	  || { tail -40 var/fuzz-atheris.log; exit 1; }
	@cat var/fuzz-atheris.json

CHAOS_EVENTS ?= 20000
CHAOS_JSON   ?= var/chaos.json
# On Apache Kafka (SCV_BROKER=kafka) chaos also runs a 3-node cluster and breaks it.
CHAOS_KAFKA  := $(if $(filter kafka,$(SCV_BROKER)),--brokers 3 --broker-kills 3 --rolling-restart --cluster-restart)

chaos: $(STAMP) ## SIGKILL workers 7 times during the 20k demo (SCV_BROKER=kafka: also 3 broker kills, a rolling and a full restart of 3 nodes); compare with a fault-free run (var/chaos.json, exit 1 unless all 0)
	@mkdir -p var
	$(BIN)/scv bench chaos --events $(CHAOS_EVENTS) --kills 7 $(CHAOS_KAFKA) --json $(CHAOS_JSON)

clean: ## Remove the virtualenv, local state and caches
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
