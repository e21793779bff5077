# HireFlow backend. `make dev` runs it, `make test` checks it; both start from a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install lint test bench dev token clean

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
	$(BIN)/python bench/provisioning.py
	$(BIN)/python bench/ws_fanout.py

dev: install
	$(BIN)/python -m hireflow.dev

# A development user and a session token valid for a day: make token NAME=alice
token: install
	@$(BIN)/python -m hireflow token "$(NAME)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
