# agent-system: `make setup` then `make test` on a fresh machine.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help setup test lint bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: ## create .venv, install every package pinned, install missing server binaries
	@scripts/setup.sh

test: ## run the test suite against real Redis and PostgreSQL (self-started unless REDIS_URL/DATABASE_URL)
	$(BIN)/pytest $(PYTEST_ARGS)

RUFF_PATHS = libs services clients tests bench scripts
MYPY_STRICT = libs/agentsys/agentsys
MYPY_PACKAGES = services/orchestrator/orchestrator services/worker/worker services/gateway/gateway \
	clients/agentctl/agentctl

lint: ## ruff, mypy --strict on the shared library, mypy on the services and agentctl (.pre-commit-config.yaml runs the same)
	$(BIN)/ruff check $(RUFF_PATHS)
	$(BIN)/mypy --strict $(MYPY_STRICT)
	for pkg in $(MYPY_PACKAGES); do $(BIN)/mypy $$pkg || exit 1; done

clean: ## remove caches (keeps .venv)
	find . -name __pycache__ -prune -exec rm -rf {} + ; rm -rf .pytest_cache .ruff_cache .mypy_cache

bench: ## benchmarks: print figures, append them to .bench/results.jsonl (BENCH=pipeline,... to pick)
	$(BIN)/python -m bench.run

# ---- process mode: the whole stack under supervisord (scripts/run, deploy/process) ----------
# make logs worker-1 / make restart worker-1: the word after the target names the program.
ifneq ($(filter logs restart,$(firstword $(MAKECMDGOALS))),)
SERVICE ?= $(wordlist 2,$(words $(MAKECMDGOALS)),$(MAKECMDGOALS))
$(eval $(wordlist 2,$(words $(MAKECMDGOALS)),$(MAKECMDGOALS)):;@:)
endif
.PHONY: run dev status logs stop restart measure

run: ## start everything under supervisord in the foreground (Ctrl-C stops it); WORKERS=N, RELOAD=1, RUN_DIR, *_PORT
	@$(BIN)/python -m scripts.run.stack up

dev: ## make run with hot reload: edited code restarts only the programs running it
	@RELOAD=1 $(BIN)/python -m scripts.run.stack up

status: ## state of every program of the running stack
	@$(BIN)/python -m scripts.run.stack status

logs: ## follow the logs: make logs [SERVICE] (all programs when none is named)
	@$(BIN)/python -m scripts.run.stack logs $(SERVICE)

stop: ## stop the running stack (apps first, servers last)
	@$(BIN)/python -m scripts.run.stack stop

restart: ## restart programs: make restart SERVICE (a program name, or workers)
	@$(BIN)/python -m scripts.run.stack restart $(SERVICE)

measure: ## process-mode figures: time to the first bang (cold, warm), idle RSS, worker start-up
	@$(BIN)/python -m scripts.run.measure

# ---- compose mode: one compose file per service (services/<name>/docker-compose.yml) --------
# Secrets come from the environment or ./.env: REDIS_PASSWORD, POSTGRES_PASSWORD, API_TOKEN.
# DOCKER=... picks the docker client (it needs the compose v2 plugin).
DOCKER ?= docker
COMPOSE_UP := redis postgres orchestrator worker gateway
COMPOSE_DOWN := gateway worker orchestrator postgres redis
COMPOSE_ENV := $(if $(wildcard .env),--env-file $(CURDIR)/.env)
# down/ps need no secrets, but compose interpolates the whole file: placeholders keep it quiet.
COMPOSE_NO_SECRETS := REDIS_PASSWORD=$${REDIS_PASSWORD:-unused} POSTGRES_PASSWORD=$${POSTGRES_PASSWORD:-unused} API_TOKEN=$${API_TOKEN:-unused}
.PHONY: up down ps clean-compose test-compose

up: ## compose: create agent-system-net, build and start each service with its own file, in dependency order
	@$(DOCKER) network inspect agent-system-net >/dev/null 2>&1 || $(DOCKER) network create agent-system-net >/dev/null
	@set -e; for s in $(COMPOSE_UP); do echo "up: $$s"; \
	    $(DOCKER) compose $(COMPOSE_ENV) -f services/$$s/docker-compose.yml up -d --build --wait; done

down: ## compose: stop and remove every service's containers, in reverse order (keeps volumes and the network)
	@set -e; for s in $(COMPOSE_DOWN); do echo "down: $$s"; $(COMPOSE_NO_SECRETS) \
	    $(DOCKER) compose $(COMPOSE_ENV) -f services/$$s/docker-compose.yml --profile per-agent down --remove-orphans; done

ps: ## compose: the containers of every service
	@set -e; for s in $(COMPOSE_UP); do $(COMPOSE_NO_SECRETS) \
	    $(DOCKER) compose $(COMPOSE_ENV) -f services/$$s/docker-compose.yml --profile per-agent ps -a; done

clean-compose: ## compose: the clean slate: remove containers, volumes (all data) and agent-system-net
	@set -e; for s in $(COMPOSE_DOWN); do echo "clean: $$s"; $(COMPOSE_NO_SECRETS) \
	    $(DOCKER) compose $(COMPOSE_ENV) -f services/$$s/docker-compose.yml --profile per-agent down --volumes --remove-orphans; done
	@! $(DOCKER) network inspect agent-system-net >/dev/null 2>&1 || $(DOCKER) network rm agent-system-net >/dev/null

test-compose: ## build the images and run the compose stack for real (own dockerd, stand-in base images; root)
	@scripts/compose/test.sh

# ---- reliability: fault injection, soak, dependency audit (docs/reliability.md) ----------------
.PHONY: test-reliability soak audit

test-reliability: ## full-size fault tests (kills, restarts, bad input, security), under 15 minutes
	RELIABILITY_FULL=1 timeout -s INT -k 60 900 $(BIN)/pytest tests/reliability $(PYTEST_ARGS)

soak: ## synthetic universe at 50% of max throughput for SOAK_SECONDS (600): flat memory, bounded queues
	$(BIN)/python -m scripts.soak

AUDIT_ARGS ?= --strict
AUDIT_EXCEPTIONS ?= audit-exceptions.txt
audit: ## pip-audit over constraints.txt (needs the internet; not in CI); exceptions in audit-exceptions.txt
	$(BIN)/pip-audit --disable-pip --no-deps -r constraints.txt --progress-spinner off $(AUDIT_ARGS) \
	    $(shell awk '!/^[[:space:]]*[#]/ && NF {printf "--ignore-vuln %s ", $$1}' $(AUDIT_EXCEPTIONS))
