# The two commands: `make run` and `make test`. Both create .venv and install on first use:
# `make run` only the runtime dependencies, `make test` also the test and lint tools.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
TESTTOOLS := $(VENV)/.installed-test
# The modules setup.py compiles with mypyc and Cython (its COMPILED_MODULES and
# CYTHON_MODULES): editing one rebuilds.
COMPILED_SRC := $(wildcard $(shell $(PY) setup.py --compiled-sources 2>/dev/null))

.PHONY: install install-runtime run run-standalone test test-pure lint typecheck bench chaos compat compat-check clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Runtime dependencies only (what `make run` needs), and the package, its hot modules
# compiled with mypyc (setup.py; SYNAP_PURE_PYTHON=1 for the pure-Python build).
$(RUNTIME): pyproject.toml $(wildcard setup.py) $(COMPILED_SRC) | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $(RUNTIME)

# Plus the tests' tools: pytest, hypothesis, redis-py, synap-sdk, ruff, mypy (the extra
# `test`'s requirements, without building the package a second time).
$(TESTTOOLS): pyproject.toml | $(RUNTIME)
	$(BIN)/python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['test']))" > $(VENV)/test-requirements.txt
	$(BIN)/pip install -q -r $(VENV)/test-requirements.txt
	touch $(TESTTOOLS)

## make install: everything a developer needs (runtime + test tools)
install: $(RUNTIME) $(TESTTOOLS)

## make install-runtime: only what running a node needs
install-runtime: $(RUNTIME)

## make run: a local demo cluster (one master, two replicas) on 127.0.0.1
run: $(RUNTIME)
	$(BIN)/python -m synap.demo

## make run-standalone: one standalone node with the embedded defaults
run-standalone: $(RUNTIME)
	$(BIN)/synap-server

lint: $(TESTTOOLS)
	$(BIN)/ruff check synap tests bench
	$(BIN)/ruff format --check synap tests bench

typecheck: $(TESTTOOLS)
	$(BIN)/mypy

## make test: lint, types, the unit tests on the pure-Python fallback (they include the
## tests that must monkeypatch a compiled module), then the whole suite on the compiled build
test: $(RUNTIME) $(TESTTOOLS) lint typecheck
	SYNAP_REQUIRE_COMPILED=0 SYNAP_PURE_PYTHON=1 $(BIN)/pytest -q -n 2 tests/unit
	$(BIN)/pytest -q -n 2 --dist loadfile tests

## make test-pure: the whole suite on the pure-Python fallback (SYNAP_PURE_PYTHON=1 makes
## this process and every server it starts import the sources, not the extensions)
test-pure: $(RUNTIME) $(TESTTOOLS)
	SYNAP_PURE_PYTHON=1 $(BIN)/pytest -q -n 2 --dist loadfile tests

bench: $(RUNTIME) $(TESTTOOLS)
	$(BIN)/python bench/run_all.py

chaos: $(RUNTIME) $(TESTTOOLS)
	CHAOS_SECONDS=600 $(BIN)/pytest -q tests/chaos

## make compat: Redis 7.0.15's own test suite (../shared/redis-tests, needs tclsh) against
## a fresh synap-server per file; rewrites docs/COMPATIBILITY.md
compat: $(RUNTIME) $(TESTTOOLS)
	$(BIN)/python -m tests.compat.run_compat --shared ../shared

## make compat-check: the same run, failing only below tests/compat/baseline.txt (CI)
compat-check: $(RUNTIME) $(TESTTOOLS)
	$(BIN)/python -m tests.compat.run_compat --shared ../shared --check --no-write

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache synap/_build.json
	rm -f synap__mypyc.*.so $(patsubst %.py,%.*.so,$(filter %.py,$(COMPILED_SRC)))
	rm -f $(patsubst %.pyx,%.*.so,$(filter %.pyx,$(COMPILED_SRC))) $(patsubst %.pyx,%.c,$(filter %.pyx,$(COMPILED_SRC)))
