"""Which namespace may make the operator use which cloud objects: the platform team's policies, decided.

Pure: the policies (ClickHousePrivateLinkPolicy objects, from a kopf index), a namespace's labels (another
index) and a resource's spec in, a verdict out. A resource is acted on only when one policy that selects
its namespace allows everything it names; otherwise it is refused before any AWS or ClickHouse call, with
reason NotPermitted and a message naming the policy and the field. No policy selecting the namespace (a
fresh install has none) refuses everything: the operator holds every namespace's trust, so access to a VPC,
an AWS account or a ClickHouse organization is granted, never assumed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.api.models import (
    ClickHousePrivateLinkPolicySpec,
    ClickHousePrivateLinkSpec,
    LabelSelector,
    SelectorOperator,
    strip_api_version,
)

ANY = "*"
DOCUMENTED_KEYS = (c.DEFAULT_KEY_ID_KEY, c.DEFAULT_KEY_SECRET_KEY)


@dataclass(frozen=True)
class Policy:
    """One ClickHousePrivateLinkPolicy: its name and its validated spec."""

    name: str
    spec: ClickHousePrivateLinkPolicySpec


@dataclass(frozen=True)
class Verdict:
    """Whether a resource may be acted on; if not, why (naming the policy and field); how to read its Secret."""

    permitted: bool
    message: str
    require_opt_in: bool = True
    # False while the namespace's labels are not known yet (a namespace made a moment ago) and a policy
    # selects by label: the refusal may not last, so it is looked at again soon, not after the error interval.
    settled: bool = True


def normal_api_url(url: str) -> tuple[str, str, int | None, str]:
    """An API URL as compared: scheme and host in lower case, the default port made explicit, no trailing
    / or /v1 (ClickHouse's docs write the base URL with the version; the client adds it)."""
    parts = urlsplit(strip_api_version(url))
    try:
        port = parts.port
    except ValueError:
        port = -1
    default_port = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return (
        parts.scheme.lower(),
        (parts.hostname or "").lower(),
        port or default_port,
        parts.path.rstrip("/"),
    )


def api_url_allowed(url: str, allowed: Iterable[str]) -> bool:
    """Whether ``url`` is one of ``allowed`` (scheme, host, port and path equal once normalized).

    A tenant must not make the operator send requests (with an API key) to an address of their choosing,
    such as the cloud metadata service or the Kubernetes API.
    """
    return normal_api_url(url) in {normal_api_url(a) for a in allowed}


def selects(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Whether a Kubernetes label selector matches ``labels`` (an empty selector matches everything)."""
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for req in selector.match_expressions:
        present = req.key in labels
        if req.operator is SelectorOperator.IN and not (present and labels[req.key] in req.values):
            return False
        if req.operator is SelectorOperator.NOT_IN and present and labels[req.key] in req.values:
            return False
        if req.operator is SelectorOperator.EXISTS and not present:
            return False
        if req.operator is SelectorOperator.DOES_NOT_EXIST and present:
            return False
    return True


def applies_to(policy: Policy, namespace: str, labels: Mapping[str, str] | None) -> bool:
    """Whether ``policy`` selects ``namespace`` (by name or glob, or by its labels when they are known)."""
    scope = policy.spec.namespaces
    if any(fnmatchcase(namespace, pattern) for pattern in scope.names):
        return True
    selector = _label_selector(policy)
    return selector is not None and labels is not None and selects(selector, labels)


def _label_selector(policy: Policy) -> LabelSelector | None:
    """The policy's namespace selector, if it selects anything: an empty one selects nothing here (the API
    server defaults an absent selector to {}); every namespace is names: ["*"], said explicitly."""
    selector = policy.spec.namespaces.selector
    if selector is None or not (selector.match_labels or selector.match_expressions):
        return None
    return selector


def _listed(value: str, allowed: Sequence[str]) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in allowed)


def refusal(policy: Policy, spec: ClickHousePrivateLinkSpec) -> str | None:
    """The first thing in ``spec`` that ``policy`` does not allow, naming the field; None when it allows all."""
    allow, name = policy.spec.allow, f"policy {policy.name}"
    aws, ch, dns = spec.aws, spec.clickhouse, spec.dns
    if not _listed(aws.vpc_id, allow.vpc_ids):
        return f"{name}: spec.aws.vpcId {aws.vpc_id} is not in allow.vpcIds"
    if aws.role_arn is not None and not _listed(aws.role_arn, allow.role_arns):
        return f"{name}: spec.aws.roleArn {aws.role_arn} is not in allow.roleArns"
    if dns.hosted_zone_id is not None and not _listed(dns.hosted_zone_id, allow.hosted_zone_ids):
        return f"{name}: spec.dns.hostedZoneId {dns.hosted_zone_id} is not in allow.hostedZoneIds"
    if not _listed(ch.organization_id, allow.organization_ids):
        return f"{name}: spec.clickhouse.organizationId {ch.organization_id} is not in allow.organizationIds"
    if ANY not in allow.api_urls and not api_url_allowed(ch.api_url, allow.api_urls):
        return f"{name}: spec.clickhouse.apiUrl {ch.api_url} is not in allow.apiUrls"
    keys = (*DOCUMENTED_KEYS, *policy.spec.secrets.keys)
    ref = ch.credentials_secret_ref
    for field, key in (("keyIdKey", ref.key_id_key), ("keySecretKey", ref.key_secret_key)):
        if key not in keys:
            return (
                f"{name}: spec.clickhouse.credentialsSecretRef.{field} {key!r} is not one of the keys the "
                f"operator reads ({', '.join(keys)}; secrets.keys adds others)"
            )
    return None


def decide(
    namespace: str,
    labels: Mapping[str, str] | None,
    spec: ClickHousePrivateLinkSpec,
    policies: Iterable[Policy],
) -> Verdict:
    """Whether a resource in ``namespace`` with ``spec`` may be acted on, under ``policies``.

    Permitted when one policy selecting the namespace allows everything the spec names (policies are not
    combined field by field: a VPC allowed to one team and an organization allowed to another never make a
    pair neither policy allows). A Secret needs the opt-in label unless every permitting policy waives it.
    """
    policies = list(policies)
    applying = sorted((p for p in policies if applies_to(p, namespace, labels)), key=lambda p: p.name)
    settled = labels is not None or all(_label_selector(p) is None for p in policies)
    if not applying:
        return Verdict(
            False,
            f"no {c.POLICY_KIND} selects namespace {namespace}: the platform team must allow this namespace "
            "its VPCs, AWS roles, zones and ClickHouse organizations first (README: Tenancy)",
            settled=settled,
        )
    refused: list[str] = []
    permitting: list[Policy] = []
    for policy in applying:
        problem = refusal(policy, spec)
        if problem is None:
            permitting.append(policy)
        else:
            refused.append(problem)
    if not permitting:
        return Verdict(False, "not permitted by the tenancy policy: " + "; ".join(refused), settled=settled)
    names = ", ".join(p.name for p in permitting)
    opt_in = any(p.spec.secrets.require_opt_in for p in permitting)
    return Verdict(True, f"permitted by policy {names}", require_opt_in=opt_in)
