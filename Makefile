# The two commands of README.md live here. Everything a run needs is installed by these targets;
# downloads and builds are cached outside the repository, in $(TONGXING_CACHE).

PYTHON ?= python3
export TONGXING_CACHE ?= $(HOME)/.cache/tongxing
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# One virtual environment per Python version and dependency list: dependencies install once.
DEPS_KEY := $(shell $(PYTHON) -c 'import hashlib, json, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print(hashlib.sha256(json.dumps([p["dependencies"], p["optional-dependencies"]]).encode()).hexdigest()[:12])')
VENV := $(TONGXING_CACHE)/venv-py$(PYVER)-$(DEPS_KEY)
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test lint venv up down status bench

## demo: the gateway with a demo federation (three Keycloak regions, two portals) on 127.0.0.1
## (the demo package tongxing_demo, against the Keycloak the harness starts; DEMO_ARGS: options
## of `tongxing demo`, e.g. DEMO_ARGS="--port 9400")
demo: venv
	$(BIN)/tongxing-dev up keycloak
	$(BIN)/python -m tongxing_demo.harness $(DEMO_ARGS)

## test: lint, type-check, then every test tier against the real servers
test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

## lint: ruff and mypy, as configured in pyproject.toml
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## venv: the dependencies (once per pyproject.toml) and this checkout, editable (every time):
## the product (gateway, operator, demo) and the test harness (tests/harness, its own
## distribution: `tongxing-dev` and the pytest plugin; its few dependencies, all in the product's
## test extra, are checked every time, which needs no index while they are installed). Two
## steps, product first: an older product install also carried the harness, and replacing it
## removes that copy's files.
venv: $(VENV)/.deps
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --editable .
	$(BIN)/pip install --quiet --no-build-isolation --editable tests/harness

$(VENV)/.deps:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet --editable '.[test,bench]'
	$(BIN)/pip install --quiet --editable tests/harness
	touch $@

## bench: the gateway against Keycloak on this machine (not a test; see bench/README.md)
bench: venv
	$(BIN)/python -m bench $(BENCH_ARGS)

## up / down / status: keep the test servers running between test runs
up: venv
	$(BIN)/tongxing-dev up
down: venv
	$(BIN)/tongxing-dev down
status: venv
	$(BIN)/tongxing-dev status
