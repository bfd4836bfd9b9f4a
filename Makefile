# Two commands, each setting everything up on a fresh machine:
#   make demo   runs graphs/txt2img.json and writes a PNG to output/
#   make test   lints, type-checks and runs the whole test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test lint setup clean editor editor-check

setup: $(STAMP)

# constraints.txt pins torch to the CPU build on this machine kind's disk; an unpinned torch
# would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,ray]'
	touch $(STAMP)

# The demo model ships in nodes/sd/builtin_models/; the inputs are only for the other example graphs.
demo: $(STAMP)
	$(BIN)/python examples/example_inputs.py input
	$(BIN)/latentgraph run graphs/txt2img.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint editor-check
	$(BIN)/python -m pytest -q -rs

# The browser editor: editor/ is built with npm into server/static/editor/ (committed, so a clone
# needs only Python). editor-check runs its unit tests and fails if a fresh build differs from
# the committed bundle; without npm it says so and checks nothing.
NPM ?= npm
EDITOR_CHECK_DIR := $(or $(TMPDIR),/tmp)/latentgraph-editor-check

editor:
	cd editor && nice -n 10 $(NPM) ci --no-audit --no-fund && $(NPM) run gen:api && nice -n 10 $(NPM) run build

editor-check:
	@if ! command -v $(NPM) >/dev/null 2>&1; then \
		echo "npm not found: SKIPPED the editor's unit tests and the bundle-equals-fresh-build check"; \
	else \
		set -e; cd editor; \
		nice -n 10 $(NPM) ci --no-audit --no-fund --loglevel=error; \
		npx openapi-typescript ../docs/api/openapi.json -o $(EDITOR_CHECK_DIR).d.ts >/dev/null; \
		diff -q $(EDITOR_CHECK_DIR).d.ts src/api/schema.d.ts \
			|| { echo "editor/src/api/schema.d.ts is older than docs/api/openapi.json: run make editor"; exit 1; }; \
		nice -n 10 $(NPM) test; \
		nice -n 10 npx tsc -b; \
		rm -rf $(EDITOR_CHECK_DIR); \
		nice -n 10 npx vite build --logLevel warn --emptyOutDir --outDir $(EDITOR_CHECK_DIR); \
		diff -r $(EDITOR_CHECK_DIR) ../server/static/editor \
			|| { echo "server/static/editor differs from a fresh build: run make editor and commit it"; exit 1; }; \
		rm -rf $(EDITOR_CHECK_DIR) $(EDITOR_CHECK_DIR).d.ts; \
	fi

clean:
	rm -rf $(VENV) output
