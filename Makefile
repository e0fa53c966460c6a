# One set of developer commands for humans and CI (.ci/run calls `make test`).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Kubernetes objects (the Kustomization itself has no Kubernetes schema).
MANIFESTS := $(filter-out deploy/k8s/kustomization.yaml,$(wildcard deploy/k8s/*.yaml))

.PHONY: install run test lint format bench fuzz catalog lock clean

# The locked versions first (exact, with hashes: requirements-dev.lock, `make lock`), then the
# package itself; the second step also installs a dependency added to pyproject.toml since the
# last `make lock`, and lint says when the lock is stale.
$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install kap-cds with its dev tools

run: install  ## serve on 127.0.0.1:8080 with the bundled rules and the SQLite audit store
	$(VENV)/bin/kap-cds serve

test: install  ## the whole suite (rules fixtures, HTTP round trips, engine properties)
	$(VENV)/bin/kap-cds rules lint
	$(PY) -m pytest

lint: install  ## ruff + mypy, the Dockerfile (hadolint), the manifests (Kubernetes schemas)
	$(VENV)/bin/ruff check cds tests bench
	$(VENV)/bin/ruff format --check cds tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/kubernetes-validate --strict --quiet $(MANIFESTS)
	$(PY) scripts/check-lock

format: install
	$(VENV)/bin/ruff format cds tests bench
	$(VENV)/bin/ruff check --fix cds tests bench

catalog: install  ## regenerate rules/CATALOG.json after editing a rule
	$(VENV)/bin/kap-cds rules catalog

lock: install  ## regenerate requirements.lock and requirements-dev.lock after changing dependencies
	scripts/lock

bench: install  ## latency/throughput benchmark; writes bench/results/
	$(PY) bench/run.py

fuzz: install  ## longer schemathesis + hypothesis run
	KAP_CDS_FUZZ_EXAMPLES=2000 $(PY) -m pytest -m slow -k fuzz

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
