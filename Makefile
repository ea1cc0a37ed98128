# Two commands do all the set-up on a fresh clone:
#   make demo   install, then build the example issue (and send it to the built-in outbox)
#   make test   install (system packages included), then run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test install install-test system-packages lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python system-packages
	$(BIN)/pip install --quiet -e '.[test]'

# Debian packages the tests drive for real; installed only when missing.
system-packages:
	@scripts/install-system-packages

demo: install
	$(BIN)/hebdo-mail build issues/2006-50
	$(BIN)/hebdo-mail send issues/2006-50 --subscribers subscribers.example.csv

test: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src
	$(BIN)/pytest

lint: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

clean:
	rm -rf $(VENV) build outbox logs .pytest_cache .mypy_cache
