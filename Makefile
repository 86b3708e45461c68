# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test test-fast lint clean i18n

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or make PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP) $@

run: $(STAMP)
	$(BIN)/aftersales dev --demo

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -W error $(PYTEST_ARGS)

# The edit loop, under a minute: no subprocess stacks, browser or model training (slow), no
# workflow runs on a Temporal server (temporal), SQLite only (postgres: the same tests
# run on SQLite here). `make test` runs these and the rest (docs/operations.md).
test-fast: $(TEST_STAMP)
	$(BIN)/python -m pytest -W error -m "not slow and not temporal and not postgres" $(PYTEST_ARGS)

# ruff and mypy come with the test extras (pyproject.toml): nothing is installed here.
lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy workflows activities db web aftersales simulators bench

# After changing a page string: extract, merge into the zh catalog (translate what is new
# or fuzzy in web/translations/zh_Hans_CN/LC_MESSAGES/messages.po), and compile.
i18n: $(TEST_STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k N_ -o web/translations/messages.pot \
		--no-location --omit-header --sort-output .
	$(BIN)/pybabel update -i web/translations/messages.pot -d web/translations \
		--no-fuzzy-matching --ignore-obsolete --width 100
	$(BIN)/pybabel compile -d web/translations --statistics

clean:
	rm -rf $(VENV) var .pytest_cache
