# The two commands: `make run` and `make test`. Both create .venv and install on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run run-standalone test lint typecheck unit integration bench chaos compat compat-check clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## make run: a local demo cluster (one master, two replicas) on 127.0.0.1
run: $(STAMP)
	$(BIN)/python -m synap.demo

## make run-standalone: one standalone node with the embedded defaults
run-standalone: $(STAMP)
	$(BIN)/synap-server

lint: $(STAMP)
	$(BIN)/ruff check synap tests bench
	$(BIN)/ruff format --check synap tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

## make test: lint, type check and the whole suite
test: $(STAMP) lint typecheck
	$(BIN)/pytest -q -n 2 --dist loadfile tests

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

chaos: $(STAMP)
	CHAOS_SECONDS=600 $(BIN)/pytest -q tests/chaos

## make compat: Redis 7.0.15's own test suite (../shared/redis-tests, needs tclsh) against
## a fresh synap-server per file; rewrites docs/COMPATIBILITY.md
compat: $(STAMP)
	$(BIN)/python -m tests.compat.run_compat --shared ../shared

## make compat-check: the same run, failing only below tests/compat/baseline.txt (CI)
compat-check: $(STAMP)
	$(BIN)/python -m tests.compat.run_compat --shared ../shared --check --no-write

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
