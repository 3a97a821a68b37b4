"""Who owns what: the tags and markers that tie cloud resources to one ClickHousePrivateLink."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.decisions.usage import EndpointKey


@dataclass(frozen=True)
class ResourceRef:
    """The Kubernetes object a cloud resource belongs to, and the cluster the operator runs in."""

    namespace: str
    name: str
    uid: str
    cluster: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def ownership_tags(ref: ResourceRef) -> dict[str, str]:
    """Tags that mark an AWS resource as created by the operator for ``ref``."""
    return {
        c.TAG_MANAGED_BY: c.OPERATOR_NAME,
        c.TAG_CLUSTER: ref.cluster,
        c.TAG_RESOURCE: ref.key,
        c.TAG_RESOURCE_UID: ref.uid,
    }


def resource_tags(ref: ResourceRef, user_tags: Mapping[str, str]) -> dict[str, str]:
    """All tags for a created resource: the user's, then ours (ours win: they cannot be overridden)."""
    name = {c.TAG_NAME: f"clickhouse-{ref.namespace}-{ref.name}"[:255]}
    return {**name, **dict(user_tags), **ownership_tags(ref)}


def shared_endpoint_tags(key: EndpointKey, user_tags: Mapping[str, str]) -> dict[str, str]:
    """Tags of a shared endpoint: named by its key, not by any one resource (ours win over the user's)."""
    name = {c.TAG_NAME: f"clickhouse-privatelink-{key.vpc_id}-{key.service_name.rsplit('.', 1)[-1]}"[:255]}
    return {
        **name,
        **dict(user_tags),
        c.TAG_MANAGED_BY: c.OPERATOR_NAME,
        c.TAG_CLUSTER: key.cluster,
        c.TAG_ENDPOINT_KEY: key.digest,
        c.TAG_ENDPOINT_SERVICE: key.service_name,
    }


def zone_tags(cluster: str, vpc_id: str) -> dict[str, str]:
    """Tags of a private zone the operator creates for a VPC (shared by every resource in that VPC)."""
    return {c.TAG_MANAGED_BY: c.OPERATOR_NAME, c.TAG_CLUSTER: cluster, c.TAG_VPC: vpc_id}


def is_managed_zone(tags: Mapping[str, str], comment_tags: Mapping[str, str], cluster: str) -> bool:
    """Whether the operator of this cluster created the zone: by its tags, or, for a zone with none of ours (a
    process killed between creating it and tagging it), by the tags its comment was created with."""
    if is_managed(tags, cluster):
        return True
    return c.TAG_MANAGED_BY not in tags and is_managed(comment_tags, cluster)


def is_shared_endpoint_for(tags: Mapping[str, str], key: EndpointKey) -> bool:
    """Whether the endpoint carrying ``tags`` is this cluster's shared endpoint for ``key``."""
    return is_managed(tags, key.cluster) and tags.get(c.TAG_ENDPOINT_KEY) == key.digest


def is_managed(tags: Mapping[str, str], cluster: str) -> bool:
    """Whether the operator of this cluster created the resource carrying ``tags``."""
    return tags.get(c.TAG_MANAGED_BY) == c.OPERATOR_NAME and tags.get(c.TAG_CLUSTER) == cluster


def is_owned_by(tags: Mapping[str, str], ref: ResourceRef) -> bool:
    """Whether the resource carrying ``tags`` was created for exactly this Kubernetes object."""
    return is_managed(tags, ref.cluster) and tags.get(c.TAG_RESOURCE_UID) == ref.uid


def client_token(ref: ResourceRef, purpose: str) -> str:
    """An idempotency token stable for this object and purpose (AWS allows 64 ASCII characters)."""
    digest = hashlib.sha256(f"{ref.cluster}/{ref.uid}/{purpose}".encode()).hexdigest()
    return f"chpl-{digest[:59]}"


DNS_OWNER_PREFIX = f"heritage={c.OPERATOR_NAME}"


def dns_owner_value(cluster: str, vpc_id: str) -> str:
    """The TXT record value that marks a DNS name as written by this cluster's operator for a VPC.

    It names no resource: every resource of the cluster for the same service shares the record.
    """
    return f'"{DNS_OWNER_PREFIX},cluster={cluster},vpc={vpc_id}"'


@dataclass(frozen=True)
class DnsOwner:
    cluster: str
    resource: str = ""  # only in markers written before records were shared
    uid: str = ""
    vpc: str = ""


def parse_dns_owner(txt_values: list[str]) -> DnsOwner | None:
    """The operator's ownership marker among a TXT record's values, if there is one."""
    for raw in txt_values:
        value = raw.strip('"')
        if not value.startswith(DNS_OWNER_PREFIX + ","):
            continue
        fields = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
        return DnsOwner(
            cluster=fields.get("cluster", ""),
            resource=fields.get("resource", ""),
            uid=fields.get("uid", ""),
            vpc=fields.get("vpc", ""),
        )
    return None


def dns_owner_is(owner: DnsOwner | None, cluster: str, vpc_id: str, uid: str) -> bool:
    """Whether a record's marker makes it ours to delete: this cluster and this VPC (or, in the marker
    format from before records were shared, which names no VPC, this very resource)."""
    if owner is None or owner.cluster != cluster:
        return False
    return owner.vpc == vpc_id if owner.vpc else owner.uid == uid
