#!/usr/bin/env python3
"""Regenerate the packaging files that are derived from another file (`make packaging`).

- argocd-health: health.lua's table of progressing reasons, from reasons.PROGRESSING_REASONS; the argocd-cm
  snippet carrying health.lua in deploy/argocd/argocd-cm.yaml, docs/install.md and the chart's README.md.
- chart-crds: the chart's files/crds/, byte-identical copies of the repository's crds/ (Helm cannot read
  files outside the chart); templates/crds.yaml renders them.
- chart-readme: the values table of the chart's README.md, from the `# --` comments of values.yaml
  (scripts/chart_readme.py).
- deploy-manifests: deploy/operator.yaml, the Helm chart rendered with its default values for the
  kustomize base (without the CRDs: the base takes crds/ itself), so that the chart stays the one
  definition of the operator's manifests.

tests/packaging checks that the committed files equal what this script writes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "scripts"))

import chart_readme  # noqa: E402

from clickhouse_privatelink.constants import GROUP, KIND, OPERATOR_NAME  # noqa: E402
from clickhouse_privatelink.decisions.reasons import PROGRESSING_REASONS  # noqa: E402

CHART = ROOT / "charts/clickhouse-privatelink-operator"
HEALTH_LUA = ROOT / "deploy/argocd/health.lua"
ARGOCD_CM = ROOT / "deploy/argocd/argocd-cm.yaml"
DOCS_WITH_SNIPPET = [ROOT / "docs/install.md", CHART / "README.md"]
DEPLOY_OPERATOR = ROOT / "deploy/operator.yaml"
CRDS = ROOT / "crds"
CHART_CRDS = CHART / "files/crds"
DEPLOY_NAMESPACE = OPERATOR_NAME
ARGOCD_CM_KEY = f"resource.customizations.health.{GROUP}_{KIND}"
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")

LUA_BLOCK = re.compile(
    r"(-- BEGIN PROGRESSING_REASONS[^\n]*\n)(.*?)(-- END PROGRESSING_REASONS\n)", re.DOTALL
)
DOC_BLOCK = re.compile(r"(<!-- BEGIN argocd-cm[^\n]*-->\n)(.*?)(<!-- END argocd-cm -->)", re.DOTALL)


def lua_progressing_reasons() -> str:
    """The Lua table of the reasons that resolve by themselves, one per line, sorted."""
    lines = "".join(f"  {reason} = true,\n" for reason in sorted(str(r) for r in PROGRESSING_REASONS))
    return "local progressing_reasons = {\n" + lines + "}\n"


def health_lua(current: str) -> str:
    """health.lua with its progressing-reasons block rewritten from reasons.py."""
    text, count = LUA_BLOCK.subn(lambda m: m.group(1) + lua_progressing_reasons() + m.group(3), current)
    if count != 1:
        raise ValueError(f"expected one PROGRESSING_REASONS block in health.lua, found {count}")
    return text


def argocd_cm(health: str) -> str:
    """The argocd-cm ConfigMap snippet that installs the health check."""
    body = "".join(f"    {line}".rstrip() + "\n" for line in health.splitlines())
    return (
        "# Generated from deploy/argocd/health.lua by `make packaging`. Merge it into ArgoCD's ConfigMap:\n"
        "#   kubectl -n argocd patch configmap argocd-cm --patch-file deploy/argocd/argocd-cm.yaml\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: argocd-cm\n"
        "  namespace: argocd\n"
        "data:\n"
        f"  {ARGOCD_CM_KEY}: |\n" + body
    )


def doc_with_snippet(current: str, snippet: str) -> str:
    """A markdown document with the fenced argocd-cm snippet between its markers."""
    block = "```yaml\n" + snippet + "```\n"
    text, count = DOC_BLOCK.subn(lambda m: m.group(1) + block + m.group(3), current)
    if count != 1:
        raise ValueError(f"expected one argocd-cm block, found {count}")
    return text


def helm() -> str:
    return os.environ.get("HELM", str(ROOT / ".tools/bin/helm"))


def _strip_helm_labels(node: Any) -> None:
    if isinstance(node, dict):
        labels = node.get("labels")
        if isinstance(labels, dict):
            for key in HELM_ONLY_LABELS:
                labels.pop(key, None)
        for value in node.values():
            _strip_helm_labels(value)
    elif isinstance(node, list):
        for item in node:
            _strip_helm_labels(item)


def crd_files() -> list[Path]:
    """The repository's CRD files (crds/kustomization.yaml is kustomize's index of them)."""
    return sorted(p for p in CRDS.glob("*.yaml") if p.name != "kustomization.yaml")


def copy_chart_crds() -> None:
    """Make the chart's files/crds/ hold exactly the repository's CRD files."""
    CHART_CRDS.mkdir(parents=True, exist_ok=True)
    for stale in CHART_CRDS.glob("*.yaml"):
        stale.unlink()
    for source in crd_files():
        shutil.copyfile(source, CHART_CRDS / source.name)


def deploy_operator_manifest() -> str:
    """The chart rendered with default values, without Helm's own labels, as one multi-document file.
    The CRDs are left out (the kustomize base installs crds/ itself), so the peering object is plain; so is
    the `helm test` Pod."""
    rendered = subprocess.run(
        [
            helm(),
            "template",
            OPERATOR_NAME,
            str(CHART),
            "--namespace",
            DEPLOY_NAMESPACE,
            "--set",
            "crds.enabled=false",
            # `helm test`'s Pod is Helm's to run: plain YAML has no use for it.
            "--skip-tests",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    documents = [doc for doc in yaml.safe_load_all(rendered) if doc]
    for doc in documents:
        _strip_helm_labels(doc)
    header = (
        "# Generated by `make packaging` from charts/clickhouse-privatelink-operator with its default values\n"
        "# (helm template, Helm's own labels removed). Do not edit: change the chart, or patch this in an overlay.\n"
    )
    return header + "".join("---\n" + yaml.safe_dump(doc, sort_keys=False, width=120) for doc in documents)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what",
        choices=["argocd-health", "chart-crds", "chart-readme", "deploy-manifests", "all"],
        nargs="?",
        default="all",
    )
    what = parser.parse_args(argv).what

    if what in ("argocd-health", "all"):
        health = health_lua(HEALTH_LUA.read_text(encoding="utf-8"))
        HEALTH_LUA.write_text(health, encoding="utf-8")
        snippet = argocd_cm(health)
        ARGOCD_CM.write_text(snippet, encoding="utf-8")
        for doc in DOCS_WITH_SNIPPET:
            doc.write_text(doc_with_snippet(doc.read_text(encoding="utf-8"), snippet), encoding="utf-8")
    if what in ("chart-crds", "all"):
        copy_chart_crds()
    if what in ("chart-readme", "all"):
        chart_readme.main()
    if what in ("deploy-manifests", "all"):
        DEPLOY_OPERATOR.write_text(deploy_operator_manifest(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
