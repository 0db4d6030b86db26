# Two commands matter: `make run` and `make test`. Each sets itself up on a machine that has
# only Python 3.11 and make.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export IOC_DATA_DIR ?= data
export DAGSTER_HOME ?= $(abspath $(IOC_DATA_DIR))/dagster_home
export RUNTIME__DLTHUB_TELEMETRY := false

.PHONY: run test dev lint sample clean bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

## run: set up, then materialize every asset on the committed sample delivery
run: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m ioc_pipeline.cli run

## test: set up, then run the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest

## dev: the Dagster UI and daemon on http://127.0.0.1:3000
dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	set -m; exec $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## lint: ruff
lint: $(STAMP)
	$(BIN)/ruff check ioc_pipeline tests bench
	$(BIN)/ruff format --check ioc_pipeline tests bench

## sample: regenerate the committed sample delivery under data/landing
sample: $(STAMP)
	$(BIN)/python -m ioc_pipeline.sample --out data/landing

BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@touch $@

## bench: the benchmark against a bare DuckDB script (S=1 by default: `make bench SCALE=10`); results in bench/results/
SCALE ?= 1
BENCH_ARGS ?=
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run --scale $(SCALE) $(BENCH_ARGS)

## clean: remove everything the pipeline produced (the landing zone stays)
clean:
	rm -rf $(IOC_DATA_DIR)/lake $(IOC_DATA_DIR)/warehouse $(IOC_DATA_DIR)/dlt $(IOC_DATA_DIR)/dagster_home
