# HireFlow backend. `make dev` runs it, `make test` checks it; both start from a fresh clone.
# Python 3.13 when the machine has it: the same code, in three alternating pairs of the pad benchmark
# at 500 pads, took 10 % less web CPU than on 3.11 (README, benchmarks).
# (A pyenv shim named python3.13 may exist and refuse to run: the first candidate that runs is taken.)
PY313  := python3.13 $(wildcard $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions/3.13*/bin/python3.13)
PYTHON ?= $(shell for p in $(PY313) python3; do $$p -c '' 2>/dev/null && { command -v $$p; break; }; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install lock lint test browser bench dev token inngest clean

# Exact versions from requirements.lock (reproducible), then the project itself without resolving again.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

# After changing the dependencies in pyproject.toml: pin them again (uv, installed into the venv).
lock: install
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra embedded --universal --python-version 3.11 -o requirements.lock

install: $(STAMP)

lint: install
	$(BIN)/ruff check hireflow tests bench run_web.py run_worker.py
	$(BIN)/mypy

test: lint browser
	$(BIN)/pytest

# The /api/docs test drives a real headless Chromium (Debian's `chromium` package): installed here when
# it is missing and we are root with apt-get; otherwise that one test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium for the /api/docs browser test"; \
	    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium could not be installed"; \
	  else echo "no chromium and no root apt-get: the /api/docs browser test will be skipped"; fi

bench: install
	$(BIN)/python bench/rest.py
	$(BIN)/python bench/provisioning.py
	$(BIN)/python bench/ws_fanout.py
	$(BIN)/python bench/forged_tokens.py
	$(BIN)/python bench/runs.py
	$(BIN)/python bench/pad.py
	$(BIN)/python bench/pad_loads.py

dev: install
	$(BIN)/python -m hireflow.dev

# A development user and a session token valid for a day: make token NAME=alice
token: install
	@$(BIN)/python -m hireflow token "$(NAME)"

# The Inngest dev server against the local backend (start the backend with INNGEST_DEV=1). Its CLI
# downloads a binary when first run, so it needs internet access beyond the package registries.
inngest:
	npx inngest-cli@latest dev -u http://127.0.0.1:$${PORT:-3000}/api/inngest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
