# One target per command. `make run` and `make test` bootstrap everything they need on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when pyproject.toml changed since the last install.
INSTALLED := $(VENV)/.rhythm-installed

.PHONY: run demo test lint format install vllm-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

# --no-compile: byte-compiling every module of torch & co. up front doubles the install time; Python compiles
# the few modules we import on first use instead.
$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --no-compile -e '.[dev]'
	touch $@

install: $(INSTALLED)

run: $(INSTALLED)
	@scripts/run.sh

# Against a running `make run`: create a user and print one recommendation.
demo:
	@scripts/demo.sh

# The real vLLM CPU server lives in its own venv (see scripts/vllm-venv.sh); skipped where the script is absent.
vllm-venv:
	@[ ! -x scripts/vllm-venv.sh ] || scripts/vllm-venv.sh

test: $(INSTALLED) vllm-venv
	$(BIN)/pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
