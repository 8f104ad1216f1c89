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

.PHONY: help venv install run lint test bench cli clean distclean

help:
	@echo "make run        start the web server on http://$(HOST):$(PORT) (installs first)"
	@echo "make test       lint, then every test in tests/ (browser tests included)"
	@echo "make lint       ruff check + mypy (strict on mmu_model)"
	@echo "make bench      run every scripts/bench_*.py"
	@echo "make cli        python -m mmu_model $(CLI_ARGS)"
	@echo "make install    create $(VENV), pip install -e '.[dev]', npm ci"
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

venv: $(PY)

install: $(PY_STAMP) $(NODE_STAMP)

run: install
	$(PY) -m uvicorn app.main:create_app --factory --host $(HOST) --port $(PORT)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# pytest exits 5 when it collected no test; that is a failure here, not a pass.
test: lint
	rc=0; $(PY) -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit $$rc

bench: install
	shopt -s nullglob; found=0; \
	for f in scripts/bench_*.py; do found=1; echo "== $$f"; $(PY) "$$f"; done; \
	if [ $$found -eq 0 ]; then echo "make bench: no scripts/bench_*.py yet"; fi

cli: install
	$(PY) -m mmu_model $(CLI_ARGS)

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis artifacts test-results build *.egg-info
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -not -path './node_modules/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) node_modules
