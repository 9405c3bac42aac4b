# agent-system: `make setup` then `make test` on a fresh machine.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help setup test lint typecheck bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: ## create .venv, install every package pinned, install missing server binaries
	@scripts/setup.sh

test: ## run the test suite against real Redis and PostgreSQL (self-started unless REDIS_URL/DATABASE_URL)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: ## ruff and mypy on the shared library
	$(BIN)/ruff check libs services tests
	$(BIN)/mypy libs/agentsys/agentsys

clean: ## remove caches (keeps .venv)
	find . -name __pycache__ -prune -exec rm -rf {} + ; rm -rf .pytest_cache .ruff_cache .mypy_cache

bench: ## benchmarks: print figures, append them to .bench/results.jsonl (BENCH=pipeline,... to pick)
	$(BIN)/python -m bench.run
