# Two commands on a fresh machine: `make run` (set up + start the app), `make test` (set up + lint + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: run test setup setup-dev lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt pyproject.toml $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps musicnn==0.1.0
	$(BIN)/pip install -q --no-deps -e .  # the `genre-lens` command, from any directory (setuptools in an isolated build)
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

setup-dev: $(VENV)/.installed-dev

run: setup
	$(BIN)/streamlit run app/main.py --server.port $(PORT)

lint: setup-dev
	$(BIN)/ruff check .

test: setup-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: setup-dev
	$(BIN)/python bench/bench_engine.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
