# Everything a fresh machine with Python 3.11 needs: a venv in .venv, the project, its tests.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_VENV ?= .venv-demo
DEMO_BIN := $(DEMO_VENV)/bin

.PHONY: venv demo test lint bench lock clean

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

# The image installs exactly this set, hash-checked (Dockerfile): the project's dependencies with
# the image's extras and its build requirements, resolved for the base image's Python and platform.
# Run after any change to pyproject.toml's dependencies; tests/test_dockerfile.py fails until then.
IMAGE_LOCK := manifests/image-requirements.txt
IMAGE_EXTRAS := --extra mpi --extra parquet --extra earthdata
lock: venv
	$(BIN)/pip install -q "uv>=0.9"
	$(BIN)/python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires'], sep='\\n')" \
	  | $(BIN)/uv pip compile pyproject.toml - $(IMAGE_EXTRAS) --generate-hashes --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" -o $(IMAGE_LOCK)

clean:
	rm -rf $(VENV) $(DEMO_VENV) tos2ca-work .pytest_cache
