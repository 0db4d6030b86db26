# Two commands matter: `make run` and `make test`. Each sets itself up on a machine that has
# only Python (3.11, 3.12 or 3.13) and make. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export IOC_DATA_DIR ?= data
export DAGSTER_HOME ?= $(abspath $(IOC_DATA_DIR))/dagster_home
export RUNTIME__DLTHUB_TELEMETRY := false
# sample/dev mode: the dossier feed may run without IOC_PII_KEY (a public development key is used).
# Production leaves IOC_MODE unset (or `production`) and sets IOC_PII_KEY: without it, runs refuse to start.
export IOC_MODE ?= sample
# uv installs uv.lock into $(VENV) (never a Python of its own); `dg` sees $(VENV) as the active environment
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON_DOWNLOADS := never
export VIRTUAL_ENV := $(abspath $(VENV))
UV_VERSION := 0.13.8# the same as the `uv` pin in pyproject.toml
# --compile-bytecode: the packages' .pyc are written once, at the install. Without them every process compiles
# what it imports (about 5 s of CPU for `cli run`, more for a test worker), and again each time when the
# environment says PYTHONDONTWRITEBYTECODE (no .pyc is ever written then).
UV_SYNC := $(BIN)/uv sync --locked --python $(BIN)/python --no-progress --compile-bytecode

DEV_HOST ?= 127.0.0.1
DEV_PORT ?= 3000
REPORT_PORT ?=

.PHONY: help run test test-fast dev report lint lock sample gateway clean system-packages bench validate sql

## help: this list
help:
	@sed -n 's/^## \([^:]*\): \(.*\)/\1\t\2/p' $(MAKEFILE_LIST) | awk -F'\t' '{printf "  make %-16s %s\n", $$1, $$2}'

# A venv from the machine's Python, with uv (pinned) from the package registry
$(BIN)/uv:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The locked packages (uv.lock), installed by uv from the package registry into $(VENV)
$(STAMP): pyproject.toml uv.lock | $(BIN)/uv
	$(UV_SYNC) --extra dev
	@touch $@

$(DAGSTER_HOME)/dagster.yaml: deploy/dagster.local.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp deploy/dagster.local.yaml $@

## run: set up, then materialize every asset on the committed sample delivery
run: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m ioc_pipeline.cli run

# pytest-xdist: whole scopes (a file, or a class such as the fault injection) to a worker, so a module's fixture
# (the UI test's `make dev`, the bench run) is set up once; the longest scopes first (tests/conftest.py
# LONGEST_FIRST). Three workers on two cores: the UI test and the subprocess tests spend much of their time
# waiting (Dagster's backfill daemon loops every 30 s), and a third worker uses it (10.4 -> 8.7 min measured).
# PYTEST_WORKERS=0 runs in this process; PYTEST_ARGS adds options (-x, -k ...).
PYTEST_WORKERS ?= 3
# The tests' files (every test's data folder, its SQLite instance, DuckDB files) in memory when the machine has a
# tmpfs at /dev/shm: no fsync at each of Dagster's event writes (test_changes.py: 81 -> 66 s measured).
TEST_TMPDIR ?= $(shell [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo $${TMPDIR:-/tmp})
PYTEST := TMPDIR=$(TEST_TMPDIR) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder $(PYTEST_ARGS)

## test: set up (Python packages, then Chromium and PostgreSQL when missing), then run the whole test suite (CI)
test: $(STAMP) system-packages
	$(PYTEST)

## test-fast: the everyday loop: every test but the slow operating ones (browser, PostgreSQL, make dev, bench)
test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

## system-packages: the Debian packages the tests need (apt-get, only when missing)
system-packages:
	@bash tools/system-packages.sh

## dev: the Dagster UI and daemon on http://127.0.0.1:3000 (the IOC report on the next port); Ctrl-C or SIGTERM stops everything
dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	exec $(BIN)/python -m ioc_pipeline.devserver --host $(DEV_HOST) --port $(DEV_PORT) $(if $(REPORT_PORT),--report-port $(REPORT_PORT))

## report: rebuild the IOC report (one offline HTML page) from the current warehouse and print its path
report: $(STAMP)
	$(BIN)/python -m ioc_pipeline.report

## sql: a DuckDB prompt on your own scratch database (data/warehouse/scratch/<you>.duckdb), the warehouse attached read-only as `ioc`
sql: $(STAMP)
	$(BIN)/python -m ioc_pipeline.sql

## lint: ruff (rules and format), mypy on ioc_pipeline/, `dg check defs` (the code location loads)
lint: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/ruff check ioc_pipeline tests bench
	$(BIN)/ruff format --check ioc_pipeline tests bench
	$(BIN)/mypy
	$(BIN)/dg check defs

## lock: re-resolve uv.lock after a change of pyproject.toml's dependencies (needs the package registry)
lock: | $(BIN)/uv
	$(BIN)/uv lock

## validate: check a department's file(s) offline with the pipeline's readers and rules (FILE="a.csv b.xlsx" [OUT=dir])
validate: $(STAMP)
	@test -n "$(FILE)" || { echo 'usage: make validate FILE="viettel_20220531.csv [more files]" [OUT=folder]'; exit 2; }
	$(BIN)/python -m ioc_pipeline.cli validate $(FILE) $(if $(OUT),--out $(OUT))

## sample: regenerate the committed sample delivery under data/landing
sample: $(STAMP)
	$(BIN)/python -m ioc_pipeline.sample --out data/landing

## gateway: a local stand-in for the dossier gateway API on http://127.0.0.1:8765 (token demo-token)
gateway: $(STAMP)
	$(BIN)/python -m ioc_pipeline.sample.gateway --landing data/landing --port 8765 --token demo-token

BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): pyproject.toml uv.lock $(STAMP)
	$(UV_SYNC) --extra dev --extra bench
	@touch $@

## bench: the benchmark against a bare DuckDB script (S=1 by default: `make bench SCALE=10`); results in bench/results/
SCALE ?= 1
BENCH_ARGS ?=
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run --scale $(SCALE) $(BENCH_ARGS)

## clean: remove everything the pipeline produced (the landing zone stays)
clean:
	rm -rf $(IOC_DATA_DIR)/lake $(IOC_DATA_DIR)/warehouse $(IOC_DATA_DIR)/dlt $(IOC_DATA_DIR)/dagster_home
