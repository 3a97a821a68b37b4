"""Route 53 private zones and the alias record for the private hostname. No business rules (see plan.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from clickhouse_privatelink.adapters.aws.clients import error_code
from clickhouse_privatelink.decisions.ownership import dns_owner_value, parse_dns_owner
from clickhouse_privatelink.decisions.plan import ObservedRecords

if TYPE_CHECKING:
    from mypy_boto3_route53 import Route53Client

TXT_TTL = 300


@dataclass(frozen=True)
class ObservedZone:
    id: str  # without the "/hostedzone/" prefix
    name: str  # without the trailing dot
    private: bool
    tags: dict[str, str] = field(default_factory=dict)
    vpc_ids: frozenset[str] = frozenset()  # the VPCs a private zone is associated with (GetHostedZone's)
    # The tags the operator gave the zone when it created it, as its comment holds them (GetHostedZone's).
    comment_tags: dict[str, str] = field(default_factory=dict)


def _zone_id(raw_id: str) -> str:
    return raw_id.rsplit("/", 1)[-1]


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


# CreateHostedZone takes no tags, and the tags go on in a second call: a process killed between the two left a
# zone nobody could attribute. The comment is set by CreateHostedZone itself, so it carries them too.
ZONE_COMMENT = "Managed by clickhouse-privatelink-operator"
COMMENT_LIMIT = 256  # Route 53's limit on a hosted zone's comment


def zone_comment(tags: Mapping[str, str]) -> str:
    """The comment a created zone gets: our words and its tags (only our words if they do not fit)."""
    comment = f"{ZONE_COMMENT} {json.dumps(dict(tags), sort_keys=True, separators=(',', ':'))}"
    return comment if len(comment) <= COMMENT_LIMIT else ZONE_COMMENT


def comment_tags(comment: str) -> dict[str, str]:
    """The tags a zone's comment holds (``zone_comment``), or none."""
    if not comment.startswith(ZONE_COMMENT + " "):
        return {}
    try:
        tags = json.loads(comment[len(ZONE_COMMENT) + 1 :])
    except ValueError:
        return {}
    if not isinstance(tags, dict):
        return {}
    return {str(k): str(v) for k, v in tags.items()}


def _tags(r53: Route53Client, zone_id: str) -> dict[str, str]:
    tags = r53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zone_id)["ResourceTagSet"].get(
        "Tags", []
    )
    return {t["Key"]: t.get("Value", "") for t in tags}


def get_zone(r53: Route53Client, zone_id: str, *, with_tags: bool = False) -> ObservedZone | None:
    """The hosted zone with this ID, or None when it does not exist; its tags only when asked."""
    try:
        found = r53.get_hosted_zone(Id=zone_id)
    except ClientError as exc:
        if error_code(exc) == "NoSuchHostedZone":
            return None
        raise
    zone = found["HostedZone"]
    return ObservedZone(
        id=_zone_id(zone["Id"]),
        name=zone["Name"].rstrip("."),
        private=bool(zone.get("Config", {}).get("PrivateZone")),
        tags=_tags(r53, _zone_id(zone["Id"])) if with_tags else {},
        vpc_ids=frozenset(v["VPCId"] for v in found.get("VPCs", []) if "VPCId" in v),
        comment_tags=comment_tags(str(zone.get("Config", {}).get("Comment") or "")),
    )


def find_private_zone(r53: Route53Client, name: str, *, vpc_id: str, vpc_region: str) -> ObservedZone | None:
    """The private zone called ``name`` associated with the VPC, if any."""
    wanted = _fqdn(name).lower()
    summaries: list[Mapping[str, Any]] = []
    kwargs: dict[str, Any] = {"VPCId": vpc_id, "VPCRegion": vpc_region}
    while True:
        page = r53.list_hosted_zones_by_vpc(**kwargs)
        summaries.extend(page.get("HostedZoneSummaries", []))
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    # Only private zones can be associated with a VPC: the summary says all the reconcile needs.
    for summary in summaries:
        if _fqdn(summary["Name"]).lower() == wanted:
            return ObservedZone(
                id=_zone_id(summary["HostedZoneId"]), name=summary["Name"].rstrip("."), private=True
            )
    return None


def create_private_zone(
    r53: Route53Client,
    name: str,
    *,
    vpc_id: str,
    vpc_region: str,
    tags: Mapping[str, str],
    caller_reference: str,
    created: Callable[[], None] | None = None,
) -> ObservedZone:
    """Create a private zone associated with the VPC and tag it; a repeated reference finds the first one.

    ``created``: told when the zone is made, before its tags are (the crash-point hook, engine/crash_points.py).
    """
    try:
        zone = r53.create_hosted_zone(
            Name=name,
            CallerReference=caller_reference,
            VPC={"VPCRegion": vpc_region, "VPCId": vpc_id},  # type: ignore[typeddict-item]
            HostedZoneConfig={"Comment": zone_comment(tags), "PrivateZone": True},
        )["HostedZone"]
    except ClientError as exc:
        # HostedZoneAlreadyExists: the reference was used (our own earlier try); ConflictingDomainExists: a
        # zone of that name is already associated with the VPC (another creator won the race). Either way
        # the zone to use is the one associated with the VPC.
        if error_code(exc) not in ("HostedZoneAlreadyExists", "ConflictingDomainExists"):
            raise
        found = find_private_zone(r53, name, vpc_id=vpc_id, vpc_region=vpc_region)
        if found is None:
            raise
        return found
    zone_id = _zone_id(zone["Id"])
    if created is not None:
        created()
    r53.change_tags_for_resource(
        ResourceType="hostedzone",
        ResourceId=zone_id,
        AddTags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )
    return ObservedZone(
        id=zone_id, name=zone["Name"].rstrip("."), private=True, tags=dict(tags), comment_tags=dict(tags)
    )


def _record_sets_at(r53: Route53Client, zone_id: str, hostname: str) -> list[dict[str, Any]]:
    fqdn = _fqdn(hostname).lower()
    page = r53.list_resource_record_sets(HostedZoneId=zone_id, StartRecordName=fqdn, MaxItems="10")
    return [dict(rs) for rs in page["ResourceRecordSets"] if _fqdn(rs["Name"]).lower() == fqdn]


def list_record_sets(r53: Route53Client, zone_id: str) -> list[dict[str, Any]]:
    """Every record set of the zone (paginated): one listing serves all the hostnames read from it."""
    sets: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"HostedZoneId": zone_id}
    while True:
        page = r53.list_resource_record_sets(**kwargs)
        sets.extend(dict(rs) for rs in page["ResourceRecordSets"])
        if not page.get("IsTruncated"):
            return sets
        kwargs.update(
            StartRecordName=page["NextRecordName"],
            StartRecordType=page["NextRecordType"],
            **(
                {"StartRecordIdentifier": page["NextRecordIdentifier"]}
                if "NextRecordIdentifier" in page
                else {}
            ),
        )


def zone_record_sets(r53: Route53Client, zone_id: str) -> list[dict[str, Any]] | None:
    """Every record set of the zone, or None when the zone does not exist (any more)."""
    try:
        return list_record_sets(r53, zone_id)
    except ClientError as exc:
        if error_code(exc) == "NoSuchHostedZone":
            return None
        raise


def only_soa_and_ns(sets: list[dict[str, Any]]) -> bool:
    """Whether a zone holds nothing but the records Route 53 made with it (it can be deleted)."""
    return all(rs["Type"] in ("SOA", "NS") for rs in sets)


def name_key(name: str) -> str:
    """A record name as Route 53 compares it (absolute, lower case)."""
    return _fqdn(name).lower()


def by_name(sets: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """A zone's record sets grouped by name (``name_key``)."""
    index: dict[str, list[dict[str, Any]]] = {}
    for rs in sets:
        index.setdefault(name_key(rs["Name"]), []).append(rs)
    return index


def records_at(sets: list[dict[str, Any]], hostname: str) -> tuple[ObservedRecords, list[dict[str, Any]]]:
    """What is at ``hostname`` among a zone's record sets: the decision input and the raw sets."""
    fqdn = name_key(hostname)
    mine = [rs for rs in sets if name_key(rs["Name"]) == fqdn]
    alias: tuple[str, str] | None = None
    other_address = False
    owner = None
    foreign_txt = False
    for rs in mine:
        kind = rs["Type"]
        if kind == "A" and "AliasTarget" in rs:
            alias = (rs["AliasTarget"]["DNSName"], rs["AliasTarget"]["HostedZoneId"])
        elif kind in ("A", "AAAA", "CNAME"):
            other_address = True
        elif kind == "TXT":
            values = [r["Value"] for r in rs.get("ResourceRecords", [])]
            owner = parse_dns_owner(values)
            foreign_txt = owner is None
    observed = ObservedRecords(alias=alias, other_address=other_address, owner=owner, foreign_txt=foreign_txt)
    return observed, mine


def read_records(
    r53: Route53Client, zone_id: str, hostname: str
) -> tuple[ObservedRecords, list[dict[str, Any]]]:
    """What is at ``hostname`` in the zone, read on its own (cleanup's fresh look)."""
    return records_at(_record_sets_at(r53, zone_id, hostname), hostname)


def record_changes(
    hostname: str, target: tuple[str, str], *, cluster: str, vpc_id: str, create: bool = False
) -> list[dict[str, Any]]:
    """The changes that point ``hostname`` at the endpoint (alias A) and mark it ours (TXT): keep together.

    ``create``: nothing was at the name when it was read, so the changes are CREATEs, which Route 53 refuses
    when a record is there after all: a record someone made since the (shared, perhaps older) read is never
    overwritten. Otherwise UPSERTs of records already ours.
    """
    action = "CREATE" if create else "UPSERT"
    return [
        {
            "Action": action,
            "ResourceRecordSet": {
                "Name": _fqdn(hostname),
                "Type": "TXT",
                "TTL": TXT_TTL,
                "ResourceRecords": [{"Value": dns_owner_value(cluster, vpc_id)}],
            },
        },
        {
            "Action": action,
            "ResourceRecordSet": {
                "Name": _fqdn(hostname),
                "Type": "A",
                "AliasTarget": {
                    "DNSName": target[0],
                    "HostedZoneId": target[1],
                    "EvaluateTargetHealth": False,
                },
            },
        },
    ]


# Route 53's limits on one ChangeResourceRecordSets request: 1,000 ResourceRecord elements and 32,000 characters
# in Value elements, an UPSERT's counted twice (an alias record has neither).
MAX_RECORD_ELEMENTS = 1000
MAX_VALUE_CHARACTERS = 32000


def change_size(change: Mapping[str, Any]) -> tuple[int, int]:
    """(ResourceRecord elements, Value characters) a change counts toward a request's limits."""
    records = change["ResourceRecordSet"].get("ResourceRecords") or []
    weight = 2 if change["Action"] == "UPSERT" else 1
    return weight * len(records), weight * sum(len(str(r.get("Value", ""))) for r in records)


def apply_changes(sets: list[dict[str, Any]], changes: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A zone's record sets after ``changes`` (as Route 53 applied them): a listing kept in step with our writes."""

    def key(rs: Mapping[str, Any]) -> tuple[str, str, str]:
        return (_fqdn(rs["Name"]).lower(), rs["Type"], str(rs.get("SetIdentifier", "")))

    by_key = {key(rs): rs for rs in sets}
    for change in changes:
        rs = change["ResourceRecordSet"]
        if change["Action"] == "DELETE":
            by_key.pop(key(rs), None)
        else:  # CREATE, UPSERT
            by_key[key(rs)] = dict(rs)
    return list(by_key.values())


def change_record_sets(r53: Route53Client, zone_id: str, changes: list[dict[str, Any]]) -> str:
    """Apply the changes in one atomic ChangeResourceRecordSets; the change ID."""
    result = r53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Comment": "clickhouse-privatelink-operator", "Changes": changes},  # type: ignore[typeddict-item]
    )
    return result["ChangeInfo"]["Id"]


def delete_zone_if_empty(r53: Route53Client, zone_id: str) -> bool:
    """Delete the zone when only its SOA and NS records are left; True when it is gone."""
    try:
        sets = r53.list_resource_record_sets(HostedZoneId=zone_id, MaxItems="10")["ResourceRecordSets"]
    except ClientError as exc:
        if error_code(exc) == "NoSuchHostedZone":
            return True
        raise
    if any(rs["Type"] not in ("SOA", "NS") for rs in sets):
        return False
    try:
        r53.delete_hosted_zone(Id=zone_id)
    except ClientError as exc:
        if error_code(exc) == "NoSuchHostedZone":
            return True
        if error_code(exc) == "HostedZoneNotEmpty":
            return False
        raise
    return True
