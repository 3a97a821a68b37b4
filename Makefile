# Everything installs itself from nothing: a fresh virtualenv with pinned packages, pinned kubectl/helm.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TOOLS := $(CURDIR)/.tools/bin
export PATH := $(TOOLS):$(CURDIR)/$(BIN):$(PATH)

.PHONY: all venv tools lint crd sandbox test clean

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
	$(MAKE) chart-crds

# The operator's main job on the local sandbox: no cloud account, no cluster.
sandbox: venv tools
	$(BIN)/clickhouse-privatelink-operator sandbox

# The whole suite: lint, types, unit, stand-in, e2e and packaging tests.
test: venv tools lint
	$(BIN)/pytest -q

# Packaging: the chart's crds/ are byte-identical copies of crds/ (Helm cannot read files outside the
# chart; deploy/ uses crds/ itself as a kustomize base). tests/packaging fails when they differ.
CHART := charts/clickhouse-privatelink-operator
CRD_FILES := $(filter-out crds/kustomization.yaml,$(wildcard crds/*.yaml))

.PHONY: chart-crds packaging

chart-crds:
	rm -f $(CHART)/crds/*.yaml
	cp $(CRD_FILES) $(CHART)/crds/

# Everything packaging derives from one definition: the chart's CRDs, deploy/operator.yaml (the chart
# rendered), health.lua's terminal reasons (reasons.py) and the argocd-cm snippets (health.lua).
packaging: venv tools chart-crds
	$(BIN)/python scripts/render_packaging.py all

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
