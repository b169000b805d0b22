# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run shell test lint format bench clean

run: $(VENV)/.installed  ## install, then start the bot (the local console when no token is set)
	$(BIN)/marketbot run

shell: $(VENV)/.installed  ## the local chat console on demo data
	$(BIN)/marketbot shell --demo

test: $(VENV)/.installed-dev  ## install with dev extras, then lint and run every test
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy storage tools/base.py tools/registry.py tools/params.py tools/runner.py
	$(BIN)/pytest

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# GROCERIES=path/to/groceries.csv adds the classic Groceries basket set to the rules benchmark.
bench: $(VENV)/.installed-dev  ## the speed and memory benchmarks (several minutes)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/segment.py
	$(BIN)/python benchmarks/rules.py $(if $(GROCERIES),--groceries $(GROCERIES))
	$(BIN)/python benchmarks/bot_latency.py

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
