# Everything a fresh machine with Python 3.11 needs: a venv in .venv, the project, its tests.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_VENV ?= .venv-demo
DEMO_BIN := $(DEMO_VENV)/bin

.PHONY: venv demo test lint bench clean

$(BIN)/tos2ca-batch: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

venv: $(BIN)/tos2ca-batch

# The demo needs the package alone, not the test toolchain (moto, MPI, the CF checker...).
$(DEMO_BIN)/tos2ca-batch: pyproject.toml
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_BIN)/pip install -q --upgrade pip
	$(DEMO_BIN)/pip install -q -e .
	touch $@

demo: $(DEMO_BIN)/tos2ca-batch
	$(DEMO_BIN)/tos2ca-batch demo

test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python benchmarks/bench_kernels.py
	$(BIN)/python benchmarks/bench_run.py
	$(BIN)/python benchmarks/refresh_costs.py

clean:
	rm -rf $(VENV) $(DEMO_VENV) tos2ca-work .pytest_cache
