# Every target that needs the tools installs them first, so `make run` and
# `make test` work on a fresh clone. Stamp files keep repeated runs fast and
# redo the install when pyproject.toml, package.json or package-lock.json change.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000
# Extra arguments: `make test PYTEST_ARGS='-k layering'`, `make cli CLI_ARGS='simulate --help'`.
PYTEST_ARGS ?=
CLI_ARGS    ?= simulate

PY_STAMP   := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# The model compiled by mypyc (scripts/build_compiled.py). `run`, `cli` and `bench` use it:
# python -P keeps the source tree off the front of sys.path, so the compiled package
# (first on PYTHONPATH) is the one imported; app/ still comes from the source tree.
COMPILED       := build/compiled
COMPILED_STAMP := $(COMPILED)/.built
WITH_COMPILED  := PYTHONPATH=$(COMPILED):. $(PY) -P

.PHONY: help venv install compiled run lint test bench cli clean distclean

help:
	@echo "make run        start the web server on http://$(HOST):$(PORT), serving the compiled model (installs and compiles first)"
	@echo "make test       lint, then every test in tests/ (browser tests included)"
	@echo "make lint       ruff check + mypy (strict on mmu_model)"
	@echo "make bench      run every scripts/bench_*.py"
	@echo "make cli        python -m mmu_model $(CLI_ARGS)"
	@echo "make install    create $(VENV), pip install -e '.[dev]', npm ci"
	@echo "make compiled   compile mmu_model with mypyc into $(COMPILED) (run/cli/bench use it)"
	@echo "make clean      remove caches and artifacts; distclean also $(VENV) and node_modules"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(PY_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --disable-pip-version-check -e '.[dev]'
	touch $@

# npm ci installs exactly what package-lock.json says; without a lock, npm install makes one.
$(NODE_STAMP): package.json $(wildcard package-lock.json)
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20 and npm" >&2; exit 1; }
	if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
	touch $@

# Rebuilt whenever a model source changes, so the compiled model is never stale.
$(COMPILED_STAMP): $(wildcard mmu_model/*.py mmu_model/data/*) scripts/build_compiled.py | $(PY_STAMP)
	$(PY) scripts/build_compiled.py --out $(COMPILED)
	touch $@

venv: $(PY)

compiled: $(COMPILED_STAMP)

install: $(PY_STAMP) $(NODE_STAMP)

# uvicorn puts its --app-dir (default: the working directory, i.e. the source tree) first on
# sys.path, ahead of PYTHONPATH: pointing it at the compiled build keeps that one first.
# The server logs which model it serves at start-up, and /healthz says so too.
run: install compiled
	$(WITH_COMPILED) -m uvicorn app.main:create_app --factory --app-dir $(COMPILED) \
		--host $(HOST) --port $(PORT)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# pytest exits 5 when it collected no test; that is a failure here, not a pass.
# The compiled model is built first: tests/model/test_compiled.py holds it to the source.
test: lint compiled
	rc=0; $(PY) -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit $$rc

bench: install compiled
	shopt -s nullglob; found=0; \
	for f in scripts/bench_*.py; do found=1; echo "== $$f"; $(PY) "$$f"; done; \
	if [ $$found -eq 0 ]; then echo "make bench: no scripts/bench_*.py yet"; fi

cli: install compiled
	$(WITH_COMPILED) -m mmu_model $(CLI_ARGS)

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis artifacts test-results build *.egg-info
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -not -path './node_modules/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) node_modules
