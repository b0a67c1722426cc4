# Fortress: the two commands that matter are `make demo` and `make test`; both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml devtools/pyproject.toml | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: help demo test lint typecheck unit integration crds assets system-deps controlplane e2e-kind bench clean

help:
	@echo "make demo   - run the local demo (PostgreSQL, a Kubernetes API, the operator, the examples)"
	@echo "make test   - install everything, then ruff, mypy and the whole pytest suite"
	@echo "make crds   - regenerate crds/ and the chart's copy from the models"
	@echo "make controlplane - build the local control plane (etcd, kube-apiserver, kube-controller-manager,"
	@echo "                    kube-scheduler, kwok) from Go modules into bin/"
	@echo "make e2e-kind - kind end to end (skips with the reason without docker, kind or a daemon)"
	@echo "make bench  - the side-by-side benchmarks in benchmarks/"

# --- installation -----------------------------------------------------------------------------
$(STAMP): pyproject.toml devtools/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]' -e ./devtools
	@rm -f $(VENV)/.installed-* && touch $@

system-deps:
	@bash scripts/system-deps.sh

controlplane:
	@if command -v go >/dev/null 2>&1 || test -x /usr/local/go/bin/go; then \
	  PATH="$$PATH:/usr/local/go/bin" bash tests/controlplane/build.sh || \
	    echo "!! control plane build failed: tests fall back to the in-memory Kubernetes emulator (they fail under CI=true)"; \
	else \
	  echo "!! Go not found: no local control plane; tests use the in-memory Kubernetes emulator (they fail under CI=true)"; \
	fi

# --- the two commands -------------------------------------------------------------------------
demo: system-deps $(STAMP)
	$(PY) -m fortress demo

test: system-deps $(STAMP) controlplane
	$(VENV)/bin/ruff check operator devtools tests benchmarks
	$(VENV)/bin/ruff format --check operator devtools tests benchmarks
	$(VENV)/bin/mypy
	$(PY) -m fortress crds --check
	$(PY) -m fortress.assets --check
	$(PY) -m pytest -q -rs $(PYTEST_ARGS)

# --- pieces -----------------------------------------------------------------------------------
lint: $(STAMP)
	$(VENV)/bin/ruff check operator devtools tests benchmarks
	$(VENV)/bin/ruff format --check operator devtools tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

integration: system-deps $(STAMP)
	$(PY) -m pytest -q -rs tests/integration $(PYTEST_ARGS)

crds: $(STAMP)
	$(PY) -m fortress crds

assets: $(STAMP)
	$(PY) -m fortress.assets

e2e-kind: $(STAMP)
	@PY=$(PY) bash scripts/e2e-kind.sh

bench: system-deps $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]' -e ./devtools
	@for b in benchmarks/bench_*.py; do m=$${b%.py}; echo "== $$m"; $(PY) -m $${m//\//.} || exit 1; done

clean:
	rm -rf $(VENV) bin .mypy_cache .ruff_cache .pytest_cache
