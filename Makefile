# Set-up is part of every target: a fresh machine needs only python3 (>= 3.11).
# The venv's Python: .ci/pick-python prefers a build with libpython built in (14-21% less CPU).
PYTHON ?= $(shell sh .ci/pick-python)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test unit e2e bench clean

$(BIN)/dupcheck: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==24.3.1
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/dupcheck
	$(BIN)/dupcheck demo

# unit: the fast tests; e2e: the ones that start servers and processes; test: both
unit: $(BIN)/dupcheck
	$(BIN)/python -m pytest -m "not e2e"

e2e: $(BIN)/dupcheck
	bash .ci/install-system-packages
	$(BIN)/python -m pytest -m e2e

test: $(BIN)/dupcheck
	bash .ci/install-system-packages
	$(BIN)/python -m pytest

bench: $(BIN)/dupcheck
	bash .ci/install-system-packages .ci/bench-apt-packages
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) dupcheck.db dupcheck.db-wal dupcheck.db-shm dupcheck.db-*.lock
