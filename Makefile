# The two entry points named in README.md: `make demo` and `make test`.
# Each creates .venv and installs what it needs on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-fast lint bench mutate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# `make demo PORT=8011` serves the demo on another port (default 8000).
demo: $(STAMP)
	$(BIN)/python -m example_service $(if $(PORT),--port $(PORT))

# Everything: the unit tier, then the integration tier (real servers, processes, nginx, Chromium, Go).
test: $(STAMP)
	scripts/ensure-chromium
	scripts/ensure-nginx
	scripts/ensure-go
	$(BIN)/python -m pytest

# The unit tier alone (tests/unit/): pure code, no sockets, no processes, nothing beyond the venv.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

# Mutation testing of the sans-I/O modules (not in CI): docs/testing.md has the score and the survivors.
mutate: $(STAMP)
	rm -rf mutants
	WSPROXY_HYPOTHESIS_PROFILE=derandomized $(BIN)/mutmut run --max-children 2
	$(BIN)/python scripts/mutation-score

clean:
	rm -rf mutants $(VENV) .pytest_cache .mypy_cache .ruff_cache
