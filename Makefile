# The two commands of the README: `make run` and `make test`.
# Both set up what they need by themselves (a virtualenv in .venv with pinned packages).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test setup setup-dev lint clean bench-ingest bench-feeds bench-digest constraints

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3

# Runtime packages only, exactly as pinned in constraints.txt.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	touch $@

# Runtime plus test and lint tools.
$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@ $(VENV)/.installed

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

# The service on the bundled configuration (offline): polls, feeds, digests, web. Ctrl-C stops it.
run: setup
	$(BIN)/syndication run

lint: setup-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The whole test suite, as CI runs it. Set SYNDICATION_TEST_DATABASE_URL to
# also run every store test against PostgreSQL.
test: lint
	$(BIN)/pytest -n 3 --cov --cov-report=term:skip-covered -p no:cacheprovider

# Benchmarks (see bench/README.md): the peer library goes into the same venv.
bench-ingest: setup
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[bench]'
	$(BIN)/python bench/ingest.py

bench-feeds: setup
	$(BIN)/python bench/feeds.py

bench-digest: setup
	$(BIN)/python bench/digest.py

# Regenerate the full pin list from a fresh venv with every extra installed.
constraints:
	rm -rf /tmp/syndication-constraints && $(PYTHON) -m venv /tmp/syndication-constraints
	/tmp/syndication-constraints/bin/pip install --quiet -e '.[dev,bench]'
	/tmp/syndication-constraints/bin/pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .coverage
