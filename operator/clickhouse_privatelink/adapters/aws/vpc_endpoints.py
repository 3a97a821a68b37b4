"""EC2 VPC endpoints: read, create, modify and delete. No business rules (see plan.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.adapters.aws.clients import error_code
from clickhouse_privatelink.decisions.plan import DesiredEndpoint, EndpointDecision, ObservedEndpoint

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client


def _observed(raw: Mapping[str, Any]) -> ObservedEndpoint:
    return ObservedEndpoint(
        id=raw["VpcEndpointId"],
        vpc_id=raw["VpcId"],
        service_name=raw["ServiceName"],
        state=raw["State"],
        subnet_ids=frozenset(raw.get("SubnetIds", [])),
        security_group_ids=frozenset(g["GroupId"] for g in raw.get("Groups", [])),
        dns_entries=tuple((d["DnsName"], d["HostedZoneId"]) for d in raw.get("DnsEntries", [])),
        tags={t["Key"]: t["Value"] for t in raw.get("Tags", [])},
        service_region=raw.get("ServiceRegion"),
    )


def get(ec2: EC2Client, endpoint_id: str) -> ObservedEndpoint | None:
    """The endpoint with this ID, or None when AWS does not know it (or only as deleted)."""
    try:
        found = ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"]
    except ClientError as exc:
        if error_code(exc) in ("InvalidVpcEndpointId.NotFound", "InvalidVpcEndpointId.Malformed"):
            return None
        raise
    live = [_observed(e) for e in found if e["State"] not in ("deleted",)]
    return live[0] if live else None


def find_managed(ec2: EC2Client, vpc_id: str) -> list[ObservedEndpoint]:
    """Every endpoint in the VPC carrying the operator's managed-by tag (any cluster), oldest first.

    One call per VPC and pass serves every resource there; callers check the full ownership in code.
    """
    pages = ec2.get_paginator("describe_vpc_endpoints").paginate(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": f"tag:{c.TAG_MANAGED_BY}", "Values": [c.OPERATOR_NAME]},
        ]
    )
    raws = [e for page in pages for e in page["VpcEndpoints"]]
    raws.sort(key=lambda e: (e.get("CreationTimestamp") or 0, e["VpcEndpointId"]))
    return [_observed(e) for e in raws]


def create(
    ec2: EC2Client, desired: DesiredEndpoint, *, tags: Mapping[str, str], client_token: str
) -> ObservedEndpoint:
    """Create the Interface endpoint, tagged at creation, idempotent through ``client_token``.

    AWS returns the first endpoint for a repeated ClientToken; moto ignores the token (our stand-in
    patches that), so callers must still look for a tagged endpoint before creating one.
    """
    params: dict[str, Any] = {
        "VpcEndpointType": "Interface",
        "VpcId": desired.vpc_id,
        "ServiceName": desired.service_name,
        "SubnetIds": sorted(desired.subnet_ids),
        "PrivateDnsEnabled": False,
        "ClientToken": client_token,
        "TagSpecifications": [
            {
                "ResourceType": "vpc-endpoint",
                "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
            }
        ],
    }
    if desired.security_group_ids:
        params["SecurityGroupIds"] = sorted(desired.security_group_ids)
    if desired.cross_region:
        params["ServiceRegion"] = desired.service_region
    return _observed(ec2.create_vpc_endpoint(**params)["VpcEndpoint"])


def modify(ec2: EC2Client, endpoint_id: str, decision: EndpointDecision) -> None:
    """Apply subnet and security group changes in place (the endpoint and its ID stay)."""
    params: dict[str, Any] = {"VpcEndpointId": endpoint_id}
    for key, value in (
        ("AddSubnetIds", decision.add_subnet_ids),
        ("RemoveSubnetIds", decision.remove_subnet_ids),
        ("AddSecurityGroupIds", decision.add_security_group_ids),
        ("RemoveSecurityGroupIds", decision.remove_security_group_ids),
    ):
        if value:
            params[key] = list(value)
    ec2.modify_vpc_endpoint(**params)


def delete(ec2: EC2Client, endpoint_id: str) -> None:
    """Ask AWS to delete the endpoint; an endpoint already gone counts as deleted."""
    try:
        result = ec2.delete_vpc_endpoints(VpcEndpointIds=[endpoint_id])
    except ClientError as exc:
        if error_code(exc) == "InvalidVpcEndpointId.NotFound":
            return
        raise
    for failure in result.get("Unsuccessful", []):
        err = failure.get("Error", {})
        if err.get("Code") != "InvalidVpcEndpointId.NotFound":
            raise ClientError(
                {"Error": {"Code": str(err.get("Code", "")), "Message": str(err.get("Message", ""))}},
                "DeleteVpcEndpoints",
            )


def mark_retained(ec2: EC2Client, endpoint_id: str, resource: str) -> None:
    """Tag the endpoint as kept by a resource with deletionPolicy Retain (the operator then never deletes it)."""
    ec2.create_tags(Resources=[endpoint_id], Tags=[{"Key": c.TAG_RETAINED, "Value": resource}])


def interface_addresses(ec2: EC2Client, endpoint_id: str) -> tuple[str, ...]:
    """The private IPv4 addresses of the endpoint's network interfaces (one per subnet), sorted."""
    found = ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"]
    eni_ids = [eni for e in found for eni in e.get("NetworkInterfaceIds", [])]
    if not eni_ids:
        return ()
    interfaces = ec2.describe_network_interfaces(NetworkInterfaceIds=eni_ids)["NetworkInterfaces"]
    addresses = {
        a["PrivateIpAddress"]
        for eni in interfaces
        for a in eni.get("PrivateIpAddresses", [])
        if "PrivateIpAddress" in a
    }
    addresses |= {eni["PrivateIpAddress"] for eni in interfaces if eni.get("PrivateIpAddress")}
    return tuple(sorted(addresses))


def unmark_retained(ec2: EC2Client, endpoint_id: str) -> None:
    """Take the Retain mark off an endpoint a resource uses again (its new users decide its fate)."""
    ec2.delete_tags(Resources=[endpoint_id], Tags=[{"Key": c.TAG_RETAINED}])
