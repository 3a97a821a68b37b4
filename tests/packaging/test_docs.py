"""The install guide and the troubleshooting table say what the packaging and the operator do."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from clickhouse_privatelink.decisions.reasons import PROGRESSING_REASONS, TERMINAL_REASONS, Reason
from tests.packaging.support import (
    CHART,
    DEPLOY,
    DOCS,
    KUBECTL,
    KUBERNETES_VERSIONS,
    ROOT,
    kubernetes_errors,
    load_documents,
    operator_container,
    package_version,
    render_scenario,
    the_one,
)

INSTALL = DOCS / "install.md"
TROUBLESHOOTING = DOCS / "troubleshooting.md"
WALKTHROUGH = DOCS / "eks-walkthrough.md"
UPGRADING = DOCS / "upgrading.md"
COMPATIBILITY = DOCS / "compatibility.md"
FAQ = DOCS / "faq.md"
CHANGELOG = ROOT / "CHANGELOG.md"
ALL_DOCS = [INSTALL, TROUBLESHOOTING, WALKTHROUGH, UPGRADING, COMPATIBILITY, FAQ]


def table_rows(markdown: str, heading: str) -> list[list[str]]:
    """The body rows of the first table under a heading, as lists of cells."""
    section = markdown.split(f"\n{heading}\n", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_troubleshooting_table_explains_every_reason_once_with_its_kind() -> None:
    rows = table_rows(TROUBLESHOOTING.read_text(encoding="utf-8"), "## Every reason")
    reasons = [row[0].strip("`") for row in rows]
    assert sorted(reasons) == sorted(str(r) for r in Reason)
    for reason, kind, meaning, fix in rows:
        expected = "act" if reason.strip("`") in TERMINAL_REASONS else "waits"
        if reason.strip("`") not in TERMINAL_REASONS | PROGRESSING_REASONS:
            expected = "done"
        assert kind == expected, reason
        assert meaning and fix, reason


def test_troubleshooting_starts_from_the_guides_symptoms() -> None:
    rows = table_rows(
        TROUBLESHOOTING.read_text(encoding="utf-8"), "## Symptoms from ClickHouse's PrivateLink guide"
    )
    symptoms = " ".join(row[0] for row in rows)
    for symptom in (
        "times out",
        "Host not found",
        "Connection reset by peer",
        "Service name could not be verified",
    ):
        assert symptom in symptoms
    timeouts = rows[0][1] + rows[0][2]
    assert all(port in timeouts for port in ("443", "8443", "9440", "3306"))


@pytest.mark.parametrize(
    "heading",
    [
        "## Install with Helm",
        "## Install with kustomize",
        "## Install with ArgoCD",
        "### The health check",
        "## AWS permissions",
        "## The ClickHouse Cloud API key",
        "## High availability: one active replica, the others on standby",
    ],
)
def test_install_guide_has_the_section(heading: str) -> None:
    assert f"\n{heading}\n" in INSTALL.read_text(encoding="utf-8")


def test_install_guide_covers_iam_setups_and_the_keys_role() -> None:
    text = INSTALL.read_text(encoding="utf-8")
    for term in (
        "IRSA",
        "EKS Pod Identity",
        "spec.aws.roleArn",
        "deploy/iam-policy.json",
        "Admin",
        "Developer",
    ):
        assert term in text
    assert "`Forbidden`" in text


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", [*ALL_DOCS, CHANGELOG], ids=lambda p: p.name)
def test_links_between_the_docs_resolve(doc: Path) -> None:
    for target, anchor in re.findall(r"\]\(([\w./-]*\.md)?(?:#([\w-]+))?\)", doc.read_text(encoding="utf-8")):
        linked = (doc.parent / target).resolve() if target else doc
        assert linked.is_file(), target
        if anchor:
            headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.MULTILINE)
            assert anchor in {slug(h) for h in headings}, f"{doc.name} links to a missing {target}#{anchor}"


def test_operator_settings_table_matches_the_charts_environment() -> None:
    rows = table_rows(INSTALL.read_text(encoding="utf-8"), "## Operator settings")
    documented = {row[0].strip("`") for row in rows}
    set_by_chart = {e["name"] for e in operator_container(render_scenario("irsa"))["env"]}
    assert documented == set_by_chart - {"POD_ID", "POD_INDEX"}


def documented_overlay() -> str:
    text = INSTALL.read_text(encoding="utf-8")
    block = re.search(r"<!-- overlay example[^\n]*-->\n```yaml\n(.*?)```", text, re.DOTALL)
    assert block is not None
    return block.group(1)


def test_documented_kustomize_overlay_builds_and_sets_image_role_and_cluster(tmp_path: Path) -> None:
    overlay = tmp_path / "overlays" / "prod"
    overlay.mkdir(parents=True)
    # kustomize takes bases by relative path only: point the documented ../../deploy at this checkout's.
    (overlay / "kustomization.yaml").write_text(
        documented_overlay().replace("- ../../deploy", f"- {os.path.relpath(DEPLOY, overlay)}"),
        encoding="utf-8",
    )
    built = load_documents(
        subprocess.run(
            [str(KUBECTL), "kustomize", str(overlay)], capture_output=True, text=True, check=True
        ).stdout
    )
    container = operator_container(built)
    assert (
        container["image"]
        == f"111122223333.dkr.ecr.eu-west-1.amazonaws.com/clickhouse-privatelink-operator:{package_version()}"
    )
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CHPL_CLUSTER_NAME"] == "prod-eu-1"
    assert env["AWS_REGION"] == "eu-west-1"
    assert "POD_INDEX" in env and "CHPL_CLICKHOUSE_RATE_LIMIT" in env  # merged by name, not replaced
    annotations = the_one(built, "ServiceAccount")["metadata"]["annotations"]
    assert annotations["eks.amazonaws.com/role-arn"].endswith(":role/clickhouse-privatelink-operator")
    assert [e for m in built for e in kubernetes_errors(m, KUBERNETES_VERSIONS[-1])] == []


def chart_yaml() -> dict[str, str]:
    import yaml

    loaded: dict[str, str] = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    return loaded


def test_walkthrough_covers_every_step_from_iam_to_a_connection_check() -> None:
    text = WALKTHROUGH.read_text(encoding="utf-8")
    for step in (
        "file://deploy/iam-policy.json",
        "eksctl create iamserviceaccount",
        "sts:AssumeRoleWithWebIdentity",
        "system:serviceaccount:clickhouse-privatelink-operator:clickhouse-privatelink-operator",
        "docker push",
        "helm install clickhouse-privatelink-operator charts/clickhouse-privatelink-operator",
        "kubectl create namespace",
        "create secret generic clickhouse-api-key",
        "kind: ClickHousePrivateLink",
        "kubectl -n $NAMESPACE run",
        ":8443",
        ":9440",
    ):
        assert step in text, step
    # The walkthrough's resource uses the Secret name the chart lets the operator read by default.
    assert "credentialsSecretRef: {name: clickhouse-api-key}" in text
    assert (DEPLOY / "iam-policy.json").is_file()


def test_walkthrough_helm_values_exist_in_the_chart() -> None:
    import yaml

    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    keys = re.findall(r"--set(?:-string)? \"?([\w.]+?)(?:\\\.[\w\\.]+)?=", WALKTHROUGH.read_text("utf-8"))
    assert {"image.repository", "image.tag", "clusterName", "aws.region"} <= set(keys)
    for key in keys:
        node = values
        for part in key.split("."):
            assert part in node, key
            node = node[part]


def test_upgrade_notes_tell_how_helm_adopts_the_existing_crds() -> None:
    text = UPGRADING.read_text(encoding="utf-8")
    for term in (
        "app.kubernetes.io/managed-by=Helm",
        "meta.helm.sh/release-name",
        "meta.helm.sh/release-namespace",
        "crds.kopfPeering.enabled=false",
        "helm.sh/resource-policy: keep",
        "rbac.allowAllSecrets",
    ):
        assert term in text, term


def test_compatibility_matrix_lists_the_chart_and_every_tested_kubernetes_version() -> None:
    text = COMPATIBILITY.read_text(encoding="utf-8")
    chart = chart_yaml()
    (row,) = [line for line in text.splitlines() if line.startswith(f"| {chart['version']} |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == chart["appVersion"]
    assert cells[2] == ", ".join(KUBERNETES_VERSIONS)
    assert f'kubeVersion: "{chart["kubeVersion"]}"' in text


def test_faq_answers_questions() -> None:
    questions = re.findall(r"^## (.+)$", FAQ.read_text(encoding="utf-8"), re.M)
    assert len(questions) >= 5


def test_docs_name_no_module_path_from_before_the_layout_change() -> None:
    stale = re.compile(
        r"clickhouse_privatelink/(reasons|handlers|plan|models|reconciler)\.py|clickhouse-privatelink-operator sandbox"
    )
    for doc in [*ALL_DOCS, CHANGELOG, CHART / "README.md"]:
        assert not stale.search(doc.read_text(encoding="utf-8")), doc.name


# -- Statements of the docs that the code or the chart could contradict (issue: docs that contradict the code)


def test_faq_says_when_secrets_are_listed_and_watched_as_the_chart_grants_it() -> None:
    from tests.packaging.support import render

    answer = FAQ.read_text(encoding="utf-8").split("## Can the operator read my other Secrets?", 1)[1]
    answer = answer.split("\n## ", 1)[0]
    assert "never lists or watches" not in answer.replace("off (the default) it never lists or watches", "")
    assert "operator.watchSecrets" in answer
    watched = render({"operator": {"watchSecrets": True}})
    verbs = {
        verb
        for role in watched
        if role["kind"] in ("ClusterRole", "Role")
        for rule in role.get("rules", [])
        if "secrets" in rule.get("resources", [])
        for verb in rule["verbs"]
    }
    assert {"list", "watch"} <= verbs


def test_troubleshooting_gives_the_charts_secret_defaults() -> None:
    import yaml

    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    text = TROUBLESHOOTING.read_text(encoding="utf-8")
    for key, default in (
        ("rbac.secretNames", values["rbac"]["secretNames"]),
        ("clickhouse.apiKey.secretName", values["clickhouse"]["apiKey"]["secretName"]),
    ):
        for said in re.findall(rf"`{re.escape(key)}`[^(|]*\(default `([^`]*)`", text):
            assert said == (default if isinstance(default, str) else str(default)), (key, said)
    assert "`rbac.secretNames` (default `clickhouse-api-key`)" not in text


def test_install_names_the_tags_a_shared_endpoint_is_created_with() -> None:
    from clickhouse_privatelink import constants as c
    from clickhouse_privatelink.decisions.ownership import shared_endpoint_tags
    from clickhouse_privatelink.decisions.usage import EndpointKey

    sentence = (
        INSTALL.read_text(encoding="utf-8").split("(the operator also writes the", 1)[1].split(")", 1)[0]
    )
    named = set(re.findall(r"`([a-z-]+)`", sentence))
    fields = EndpointKey.__dataclass_fields__ if hasattr(EndpointKey, "__dataclass_fields__") else {}
    assert fields, "EndpointKey is no longer a dataclass: build one another way"
    key = EndpointKey(**{name: "x" for name in fields})
    tags = {tag.removeprefix(f"{c.GROUP}/") for tag in shared_endpoint_tags(key, {})} - {"managed-by", "Name"}
    assert named == tags


def test_readme_settings_the_chart_refuses_say_so() -> None:
    from tests.packaging.support import RELEASE, helm

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (row,) = [line for line in readme.splitlines() if line.startswith("| `CHPL_CLICKHOUSE_RATE_LIMIT`")]
    if "`off`" in row and helm("template", RELEASE, values={"clickhouse": {"rateLimit": "off"}}).returncode:
        assert "chart" in row, "README offers `off`, which the chart's schema refuses: say so"


def test_install_documents_pausing_with_zero_replicas_which_the_chart_accepts() -> None:
    from tests.packaging.support import RELEASE, helm

    assert "`replicaCount: 0` pauses" in INSTALL.read_text(encoding="utf-8")
    assert helm("template", RELEASE, values={"replicaCount": 0}).returncode == 0


def test_cross_region_regions_are_listed_in_the_docs_not_named_by_a_constant() -> None:
    from clickhouse_privatelink.constants import CROSS_REGION_SUPPORTED

    text = TROUBLESHOOTING.read_text(encoding="utf-8")
    section = text.split("## Cross-region consumer regions", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"`([a-z]{2}-[a-z]+-\d)`", section)) == set(CROSS_REGION_SUPPORTED)
    for doc in [*ALL_DOCS, ROOT / "README.md"]:
        assert "CROSS_REGION_SUPPORTED" not in doc.read_text(encoding="utf-8"), doc.name


def test_no_doc_reads_logs_of_the_statefulset_which_may_be_the_standby() -> None:
    for doc in [*ALL_DOCS, ROOT / "README.md", CHART / "README.md"]:
        assert not re.search(
            r"(?m)^\s*kubectl[^\n]* logs [^\n]*statefulset/", doc.read_text(encoding="utf-8")
        ), doc.name


def test_generated_files_name_a_source_that_exists() -> None:
    for path in [*sorted((ROOT / "crds").glob("*.yaml")), DEPLOY / "operator.yaml"]:
        header = "".join(
            line for line in path.read_text(encoding="utf-8").splitlines(True) if line.startswith("#")
        )
        for named in re.findall(r"\b((?:operator|charts|crds|deploy|scripts)/[\w./-]+\w)", header):
            assert (ROOT / named).exists(), f"{path.name} names {named}, which does not exist"
