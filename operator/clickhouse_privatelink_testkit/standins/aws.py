"""AWS stand-in: moto's server (EC2 and Route 53 over the real AWS wire protocol) with a few fixes.

boto3 reaches it through ``AWS_ENDPOINT_URL``. Where moto differs from AWS in a way the operator's
correctness depends on, this module patches moto so tests exercise the real behaviour:

- ``CreateVpcEndpoint`` ``ClientToken``: AWS returns the endpoint first created with the same token
  (idempotent create); moto ignores the token and creates a duplicate. Patched to be idempotent.
- ``CreateVpcEndpoint`` ``ServiceRegion`` (cross-region PrivateLink): moto drops it. Patched to keep it
  and return it from Describe, as AWS does.
- Endpoint life cycle: AWS creates an Interface endpoint in ``pending`` and moves it to ``available``
  after a minute or two, and deletes through ``deleting``. moto is instantly ``available``/``deleted``.
  Patched: ``--endpoint-pending-seconds`` keeps new endpoints ``pending`` (and deleted ones ``deleting``)
  for that long, so the operator's waiting is tested.
- Security groups: AWS refuses ``CreateVpcEndpoint`` naming a group that does not exist; moto accepts it.
- Hosted zone IDs: AWS's start with ``Z``; moto's are random letters and digits. Patched to AWS's shape.
- Endpoint service names: AWS refuses ``CreateVpcEndpoint`` for a service name it cannot verify
  ("InvalidServiceName"); moto accepts any. Patched: names listed with ``--reject-service`` are refused.

Not patched (the operator must be safe either way): moto applies no API rate limits, does not validate
that subnets are in distinct availability zones, and its Route 53 changes are instantly ``INSYNC``.

Run it alone with ``clickhouse-privatelink-testkit standin aws --port 5000 [--seed-network us-east-1]``.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_ACCESS_KEY = "testing"
DEFAULT_SECRET_KEY = "testing"


@dataclass
class _Behaviour:
    endpoint_pending_seconds: float = 0.0
    rejected_services: set[str] = field(default_factory=set)


_behaviour = _Behaviour()
_patched = False


def _apply_patches() -> None:
    """Make moto's VPC endpoints behave like AWS's where the operator depends on it (see module doc)."""
    global _patched
    if _patched:
        return
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.vpcs import VPCBackend
    from moto.ec2.responses.vpcs import VPCs
    from moto.route53 import models as route53_models

    original_create: Callable[..., Any] = VPCBackend.create_vpc_endpoint
    original_delete: Callable[..., Any] = VPCBackend.delete_vpc_endpoints
    original_describe: Callable[..., Any] = VPCBackend.describe_vpc_endpoints
    original_response: Callable[..., Any] = VPCs.create_vpc_endpoint

    def advance(endpoints: Any) -> None:
        now = time.monotonic()
        for ep in endpoints:
            due = getattr(ep, "_standin_due", None)
            if due is not None and now >= due:
                ep.state = {"pending": "available", "deleting": "deleted"}.get(ep.state, ep.state)
                ep._standin_due = None

    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        token = kwargs.get("client_token")
        if token:
            for ep in self.vpc_end_points.values():
                if ep.client_token == token and ep.state not in ("deleted", "deleting"):
                    return ep
        for group_id in kwargs.get("security_group_ids") or []:
            if self.get_security_group_from_id(group_id) is None:
                raise EC2ClientError(
                    "InvalidGroup.NotFound", f"The security group '{group_id}' does not exist"
                )
        service_name = kwargs.get("service_name") or (args[1] if len(args) > 1 else "")
        if service_name in _behaviour.rejected_services:
            raise EC2ClientError(
                "InvalidServiceName", f"The Vpc Endpoint Service '{service_name}' does not exist"
            )
        ep = original_create(self, *args, **kwargs)
        ep.service_region = getattr(self, "_standin_service_region", None) or self.region_name
        if _behaviour.endpoint_pending_seconds > 0:
            ep.state = "pending"
            ep._standin_due = time.monotonic() + _behaviour.endpoint_pending_seconds
        return ep

    def delete(self: Any, vpce_ids: list[str] | None = None) -> Any:
        result = original_delete(self, vpce_ids)
        if _behaviour.endpoint_pending_seconds > 0:
            for vpce_id in vpce_ids or []:
                ep = self.vpc_end_points.get(vpce_id)
                if ep is not None and ep.state == "deleted":
                    ep.state = "deleting"
                    ep._standin_due = time.monotonic() + _behaviour.endpoint_pending_seconds
        return result

    def describe(self: Any, vpc_end_point_ids: list[str] | None, filters: Any = None) -> Any:
        advance(self.vpc_end_points.values())
        return original_describe(self, vpc_end_point_ids, filters)

    def response(self: Any) -> Any:
        # The backend signature has no ServiceRegion: hand it over on the backend for this one call.
        self.ec2_backend._standin_service_region = self._get_param("ServiceRegion")
        try:
            return original_response(self)
        finally:
            self.ec2_backend._standin_service_region = None

    def zone_id(*_: Any, **__: Any) -> str:
        # AWS's shape: "Z" and upper-case letters and digits (moto leaves out the Z).
        return "Z" + "".join(random.choice(route53_models.ROUTE53_ID_CHOICE) for _ in range(20))

    route53_models.create_route53_zone_id = zone_id
    VPCBackend.create_vpc_endpoint = create  # type: ignore[method-assign]
    VPCBackend.delete_vpc_endpoints = delete  # type: ignore[method-assign]
    VPCBackend.describe_vpc_endpoints = describe  # type: ignore[method-assign]
    VPCs.create_vpc_endpoint = response  # type: ignore[method-assign]
    _patched = True


@dataclass(frozen=True)
class Network:
    """A VPC with subnets in two availability zones and a security group, seeded for the operator."""

    region: str
    vpc_id: str
    subnet_ids: list[str]
    security_group_id: str


def seed_network(endpoint_url: str, region: str, *, cidr: str = "10.42.0.0/16") -> Network:
    """Create a VPC, two subnets and a security group allowing the ClickHouse ports."""
    import boto3

    ec2 = boto3.client(
        "ec2",
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=DEFAULT_ACCESS_KEY,
        aws_secret_access_key=DEFAULT_SECRET_KEY,
    )
    vpc_id = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    prefix = cidr.split(".")[:2]
    subnets = [
        ec2.create_subnet(
            VpcId=vpc_id, CidrBlock=f"{prefix[0]}.{prefix[1]}.{i + 1}.0/24", AvailabilityZone=f"{region}{az}"
        )["Subnet"]["SubnetId"]
        for i, az in enumerate("ab")
    ]
    sg = ec2.create_security_group(GroupName=f"clickhouse-{vpc_id}", Description="ClickHouse", VpcId=vpc_id)[
        "GroupId"
    ]
    ec2.authorize_security_group_ingress(
        GroupId=sg,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": cidr}]}
            for port in (443, 8443, 9440, 3306)
        ],
    )
    return Network(region=region, vpc_id=vpc_id, subnet_ids=subnets, security_group_id=sg)


class AwsStandIn:
    """moto's server on a loopback port, in a background thread of this process."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        endpoint_pending_seconds: float = 0.0,
        rejected_services: set[str] | None = None,
    ) -> None:
        _apply_patches()
        _behaviour.endpoint_pending_seconds = endpoint_pending_seconds
        _behaviour.rejected_services = set(rejected_services or ())
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._url = ""

    @property
    def url(self) -> str:
        return self._url

    def start(self) -> None:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self._url = f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.stop()


def main(*, host: str, port: int, argv: list[str]) -> int:
    """Serve the AWS stand-in in the foreground until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="clickhouse-privatelink-testkit standin aws")
    parser.add_argument("--endpoint-pending-seconds", type=float, default=0.0)
    parser.add_argument(
        "--reject-service", action="append", default=[], help="service name AWS cannot verify"
    )
    parser.add_argument(
        "--seed-network", metavar="REGION", action="append", default=[], help="seed a VPC there"
    )
    args = parser.parse_args(argv)

    standin = AwsStandIn(
        host=host,
        port=port,
        endpoint_pending_seconds=args.endpoint_pending_seconds,
        rejected_services=set(args.reject_service),
    )
    standin.start()
    print(f"aws stand-in serving on {standin.url}", flush=True)
    for region in args.seed_network:
        print(json.dumps({"seeded_network": asdict(seed_network(standin.url, region))}), flush=True)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    standin.stop()
    sys.stdout.flush()
    return 0
