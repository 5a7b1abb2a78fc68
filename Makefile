# The two commands a user needs: `make demo` (the main job) and `make test` (the whole suite).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CDC := $(VENV)/bin/cdc
STAMP := $(VENV)/.installed
# helm, for the chart's checks in `make test`: built from the Go module proxy (no other download source).
HELM_VERSION := v3.21.4
HELM := .tools/bin/helm

.PHONY: help install system-deps tools demo test unit integration lint fmt stack-up stack-down stack-status bench clean

help:
	@echo "make demo   - set up everything, start the local stack, write demo data, show it flowing"
	@echo "make test   - set up everything the tests need and run the whole suite, with coverage (>= 80 %)"
	@echo "make lint   - ruff (incl. complexity <= 10) + mypy (strict on app, agents, tables, models, stack, bench, tests)"
	@echo "make bench  - benchmarks against the real stack; figures in bench/results/"

system-deps:
	@bash stack/install-system-deps.sh

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

$(HELM):
	@command -v go >/dev/null 2>&1 || { echo "install: go not found on PATH (needed to build helm)" >&2; exit 1; }
	GOBIN=$(CURDIR)/.tools/bin GOFLAGS=-buildvcs=false go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

tools: $(HELM)

install: system-deps $(STAMP) tools

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

unit: $(STAMP)
	$(PY) -m pytest tests/unit -q

integration: install
	$(PY) -m pytest tests/integration

# The whole suite with coverage of the first-party packages (the worker subprocesses of the integration tests
# included: [tool.coverage.run] in pyproject.toml); fails below 80 %. `make unit` and ad-hoc pytest runs do
# not measure coverage.
COV := --cov=app --cov=agents --cov=tables --cov=models --cov=stack \
	--cov-report=term-missing:skip-covered --cov-fail-under=80

test: install
	$(PY) -m pytest $(COV) tests

stack-up: install
	$(CDC) stack up

stack-down:
	$(CDC) stack down

stack-status:
	$(CDC) stack status

demo: install
	$(CDC) stack up
	$(CDC) demo

bench: install
	$(PY) -m bench

clean: stack-down
	rm -rf .cdc-data
