# Muster: every workflow starts from a fresh clone with `make dev` or `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAGE ?= dev
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: dev demo advance test system-deps lint typecheck contracts package deploy api-key bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

## Run all of Muster locally (the local twin): AWS emulation, API, SMTP in, outbox out.
dev: venv
	$(PY) -m infra.twin

## Send a demo scenario through the running twin: make demo
demo: venv
	$(PY) -m infra.twin.demo

## Move the twin's clock forward: make advance HOURS=48
advance: venv
	$(PY) -m infra.twin.clock advance $(HOURS)

## Debian packages the tests need (headless Chromium for the mailbox test).
system-deps:
	bash infra/twin/system-deps.sh

## Lint, type-check and run every test (unit, integration, property, e2e).
test: venv system-deps lint typecheck
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check .

typecheck: venv
	$(VENV)/bin/mypy

## Regenerate chalicelib/openapi.json and events_schema/ from the models.
contracts: venv
	$(PY) -m chalicelib.contracts

## Create an API key for an integration: make api-key INTEGRATION=mobilize [STAGE=prod]
api-key: venv
	$(PY) -m chalicelib.cli create-key $(INTEGRATION) --stage $(STAGE)

bench: venv
	$(PY) bench/cold_start.py

clean:
	rm -rf $(VENV) out .local .pytest_cache .mypy_cache .ruff_cache
