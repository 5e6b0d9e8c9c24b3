# The single entry point: CI, developers and users all come through here.
# `make run` and `make test` do their own set-up on a fresh machine (.venv, install).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The suite runs in parallel (pytest-xdist): every worker process has its own template
# and test databases, Redis namespaces and free ports (tests/fixtures/services.py).
# `--dist loadgroup` keeps the tests of one `xdist_group` on one worker, one after
# another: the chaos scenarios and the beat tests (SERIAL_GROUPS in that file).
# Most tests wait on subprocesses and sockets: on 2 cores, 20 worker-process tests took
# 177 s with 2 workers, 134 s with 3, 129 s with 4 (more load, little gain): 3.
PYTEST_WORKERS ?= 3
PARALLEL := -n $(PYTEST_WORKERS) --dist loadgroup

.PHONY: install run test lint typecheck unit integration bench chaos image stack-test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/herald run --demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest $(PARALLEL)

unit: install
	$(BIN)/pytest tests/unit

integration: install
	$(BIN)/pytest $(PARALLEL) tests/integration

bench: install
	$(BIN)/python -m bench

chaos: install
	HERALD_CHAOS=full $(BIN)/pytest tests/chaos tests/integration/test_beat_ha.py -m slow

# The container side (deploy/stack/stack-test.sh): a private Docker daemon, a local
# Debian base image made once, Herald's image, then the compose stack proven by tests/stack.
image:
	bash deploy/stack/stack-test.sh image

stack-test: install
	PYTHON=$(BIN)/python bash deploy/stack/stack-test.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
