# Everything installs itself from nothing, from lock files: uv (pinned by hash) installs the two packages
# and their dependencies from uv.lock into .venv; the test-only tools come from their own locks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TOOLS := $(CURDIR)/.tools/bin
UV := $(CURDIR)/.tools/uv/bin/uv
export PATH := $(TOOLS):$(CURDIR)/$(BIN):$(PATH)
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export UV_PYTHON := $(PYTHON)
SYNC := $(UV) sync --quiet --frozen

.PHONY: all uv venv sandbox-env requirements tools lint crd sandbox test chaos bench clean release

all: test

$(UV): scripts/uv-requirements.txt
	$(PYTHON) -m venv .tools/uv
	.tools/uv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes \
		-r scripts/uv-requirements.txt
	touch $@

uv: $(UV)

# The sandbox needs the operator and the test kit only: no linters, type checkers or scanners.
$(BIN)/.sandbox: $(UV) uv.lock pyproject.toml operator/clickhouse_privatelink_testkit/pyproject.toml
	$(SYNC) --inexact --package clickhouse-privatelink-testkit
	touch $@

sandbox-env: $(BIN)/.sandbox

# The whole development environment: both packages and the dev group.
$(BIN)/.installed: $(UV) uv.lock pyproject.toml operator/clickhouse_privatelink_testkit/pyproject.toml
	$(SYNC) --all-packages --group dev
	touch $@ $(BIN)/.sandbox

venv: $(BIN)/.installed

# The image's locked runtime tree, exported from uv.lock (tests/packaging fails when it is stale).
requirements: $(UV)
	$(UV) export --quiet --frozen --no-dev --no-emit-workspace --package clickhouse-privatelink-operator \
		-o requirements/runtime.txt

tools: $(TOOLS)/.version

$(TOOLS)/.version: $(UV) scripts/install-tools.sh scripts/tools/checkov/uv.lock scripts/tools/hadolint/uv.lock
	UV=$(UV) scripts/install-tools.sh

# mypy twice: the operator and the test kit, then the in-memory fakes against the engine's Protocols.
lint: venv
	$(BIN)/ruff check operator tests scripts benchmarks
	$(BIN)/ruff format --check operator tests scripts benchmarks
	$(BIN)/mypy
	$(BIN)/mypy tests/engine

crd: venv
	$(BIN)/clickhouse-privatelink-operator crd --output crds/clickhouseprivatelinks.yaml
	$(BIN)/clickhouse-privatelink-operator crd --policy --output crds/clickhouseprivatelinkpolicies.yaml
	$(MAKE) chart-crds

# The operator's main job on the local sandbox: no cloud account, no cluster.
sandbox: sandbox-env
	$(BIN)/clickhouse-privatelink-testkit sandbox

# The whole suite: lint, types, unit, stand-in, e2e and packaging tests. The venv and the tools install
# in parallel (make -j2 on the two prerequisites).
test:
	$(MAKE) -j2 venv tools
	$(MAKE) lint
	$(BIN)/pytest -q

# The chaos suite in full (a short pass runs in make test): 30 SIGKILLs, a SIGKILL right after every kind of
# external write (crash points), 20 resources under 20 %+ faults, out-of-band drift, 200 hostile specs, the
# cross-tenant cases; it ends with the summary line of faults, kills, crash points, repairs, foreign objects
# changed and leaks.
chaos: venv
	CHPL_CHAOS_KILLS=$${CHPL_CHAOS_KILLS:-30} CHPL_CHAOS_RESOURCES=$${CHPL_CHAOS_RESOURCES:-20} \
	CHPL_CHAOS_EXAMPLES=$${CHPL_CHAOS_EXAMPLES:-200} CHPL_CHAOS_CRASH_POINTS=$${CHPL_CHAOS_CRASH_POINTS:-all} \
		$(BIN)/pytest -q -s -o timeout=1800 tests/e2e -k "chaos or kills"

# The benchmark (not a test): 10, 100 and 1000 resources on one API key against the stand-ins' realistic
# limits; JSON + PNG in benchmarks/results/, PASS/FAIL per target (exit 1 on a FAIL unless
# BENCH_ARGS="--report-only"). See benchmarks/README.md.
BENCH_ARGS ?=
bench: venv
	$(SYNC) --inexact --all-packages --group dev --group bench
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Packaging: the chart's files/crds/ are byte-identical copies of crds/ (Helm cannot read files outside
# the chart; deploy/ uses crds/ itself as a kustomize base). tests/packaging fails when they differ.

.PHONY: chart-crds packaging

chart-crds: venv
	$(BIN)/python scripts/render_packaging.py chart-crds

# Everything packaging derives from one definition: the chart's CRDs, deploy/operator.yaml (the chart
# rendered), health.lua's terminal reasons (reasons.py) and the argocd-cm snippets (health.lua).
packaging: venv tools chart-crds
	$(BIN)/python scripts/render_packaging.py all

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache

# A release: pyproject.toml's version is the one source (scripts/release.py writes it everywhere with
# `python3 scripts/release.py set x.y.z`). This checks that the chart, the image label, the examples and
# CHANGELOG.md's newest `## [x.y.z]` heading all say VERSION, on a clean tree, then makes the annotated tag
# vVERSION. It never pushes.
release:
	@test -n "$(VERSION)" || { echo "usage: make release VERSION=x.y.z" >&2; exit 2; }
	$(PYTHON) scripts/release.py tag $(VERSION)
