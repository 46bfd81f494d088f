# Everything a fresh machine with Python 3.11 needs: a venv in .venv, the project, its tests.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv demo test lint bench clean

$(BIN)/tos2ca-batch: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

venv: $(BIN)/tos2ca-batch

demo: venv
	$(BIN)/tos2ca-batch demo

test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python benchmarks/bench_kernels.py
	$(BIN)/python benchmarks/bench_run.py
	$(BIN)/python benchmarks/refresh_costs.py

clean:
	rm -rf $(VENV) tos2ca-work .pytest_cache
