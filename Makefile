# Two commands do all the set-up on a fresh clone:
#   make demo   install, then build the example issue (and send it to the built-in outbox)
#   make test   install (system packages included), then check and run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test install install-dev install-test system-packages lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

# The Python tools only (no root needed): enough for `make lint`.
install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

install-test: install-dev system-packages
	scripts/install-test-tools

# Debian packages the tests drive for real; installed only when missing (needs root then).
system-packages:
	@scripts/install-system-packages

demo: install
	$(BIN)/hebdo-mail build issues/2006-50
	$(BIN)/hebdo-mail send issues/2006-50 --subscribers subscribers.example.csv

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src tests bench

test: install-test
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) build outbox logs .pytest_cache .mypy_cache
