# Two commands, each setting everything up on a fresh machine:
#   make demo   runs graphs/txt2img.json and writes a PNG to output/
#   make test   lints, type-checks and runs the whole test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test lint setup clean

setup: $(STAMP)

# constraints.txt pins torch to the CPU build on this machine kind's disk; an unpinned torch
# would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The demo model ships in nodes/sd/builtin_models/; the inputs are only for the other example graphs.
demo: $(STAMP)
	$(BIN)/python examples/example_inputs.py input
	$(BIN)/latentgraph run graphs/txt2img.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) output
