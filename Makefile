# The two commands of the README: `make run` and `make test`. Both set up everything they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint typecheck imports unit services venv clean openapi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## Install the system services the tests talk to (NATS server from Debian's packages).
services:
	@command -v nats-server >/dev/null 2>&1 || { \
	  echo "installing nats-server"; \
	  (apt-get update -qq || sudo apt-get update -qq) >/dev/null && \
	  (apt-get install -y -qq nats-server || sudo apt-get install -y -qq nats-server) >/dev/null; }

## Set up on first use (config, keys, two demo clusters, a demo admin, days of finished jobs), then
## serve on localhost:8080 with live simulated clusters.
run: $(STAMP)
	$(BIN)/ccstream demo

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

openapi: $(STAMP)
	$(BIN)/python -m api.openapi --check
	$(BIN)/python -m api.configdoc --check

unit: $(STAMP) services
	$(BIN)/pytest -q

## Everything CI checks: lint, types, import boundaries, the pinned OpenAPI document, all tests.
test: lint typecheck imports openapi unit

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
