# Everything installs itself from nothing: a fresh virtualenv with pinned packages, pinned kubectl/helm.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TOOLS := $(CURDIR)/.tools/bin
export PATH := $(TOOLS):$(CURDIR)/$(BIN):$(PATH)

.PHONY: all venv tools lint crd sandbox test test-fast e2e clean

all: test

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/.installed

tools: $(TOOLS)/.version

$(TOOLS)/.version: scripts/install-tools.sh
	scripts/install-tools.sh

lint: venv
	$(BIN)/ruff check operator tests
	$(BIN)/ruff format --check operator tests
	$(BIN)/mypy

crd: venv
	$(BIN)/clickhouse-privatelink-operator crd --output crds/clickhouseprivatelinks.yaml

# The operator's main job on the local sandbox: no cloud account, no cluster.
sandbox: venv tools
	$(BIN)/clickhouse-privatelink-operator sandbox

# The whole suite: lint, types, unit, stand-in, e2e and packaging tests.
test: venv tools lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
