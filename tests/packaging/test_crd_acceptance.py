"""Every CRD the project ships passes kube-apiserver's CRD validation, without a server (issue 16).

A real API server once refused the CRD on every install path (a description on the root ``metadata``) while
the stand-in and all tests accepted it. These checks run each CRD we ship through the Kubernetes stand-in's
``crd_validation`` (structural schema, defaults, list types, printer columns, CEL compilation and cost, with
kube-apiserver's messages) so such a mistake fails in ``make test``: the CRD as ``api/crd.py`` renders it,
the files in ``crds/``, the chart rendered in every scenario, and ``deploy/`` built by kustomize.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from clickhouse_privatelink.api.crd import render_crd
from clickhouse_privatelink_testkit.standins.kubernetes.crd_validation import validate_crd
from tests.packaging.support import (
    SCENARIOS,
    Manifest,
    crd_files,
    kustomize_build,
    load_documents,
    of_kind,
    render_scenario,
)


def _refusals(crd: Manifest) -> list[str]:
    """What kube-apiserver would answer to creating this CRD, one line per field error."""
    return [str(error) for error in validate_crd(copy.deepcopy(crd))]


def _crds(documents: list[Manifest]) -> list[Manifest]:
    crds = of_kind(documents, "CustomResourceDefinition")
    assert crds, "no CustomResourceDefinition found"
    return crds


def test_rendered_crd_is_accepted() -> None:
    crd: dict[str, Any] = render_crd()
    assert _refusals(crd) == []


@pytest.mark.parametrize("path", crd_files(), ids=lambda p: p.name)
def test_crd_files_are_accepted(path: Any) -> None:
    for crd in _crds(load_documents(path.read_text(encoding="utf-8"))):
        assert _refusals(crd) == [], crd["metadata"]["name"]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_chart_crds_are_accepted(scenario: str) -> None:
    for crd in _crds(render_scenario(scenario)):
        assert _refusals(crd) == [], crd["metadata"]["name"]


def test_kustomize_crds_are_accepted() -> None:
    for crd in _crds(load_documents(kustomize_build())):
        assert _refusals(crd) == [], crd["metadata"]["name"]


def test_the_check_refuses_what_the_real_server_refused() -> None:
    """The mistake of issue 16, put back into the rendered CRD: the check must fail, with the real message."""
    crd = render_crd()
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["metadata"] = {"type": "object", "description": "Standard object metadata."}
    assert _refusals(crd) == [
        "spec.validation.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other "
        "than name and generateName, but metadata is implicitly specified"
    ]
