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
  for that long, so the operator's waiting is tested; ``PUT /_standin/endpoints`` changes it at run time.
- Security groups: AWS refuses ``CreateVpcEndpoint`` naming a group that does not exist; moto accepts it.
- Hosted zone IDs: AWS's start with ``Z``; moto's are random letters and digits. Patched to AWS's shape.
- Endpoint service names: AWS refuses ``CreateVpcEndpoint`` for a service name it cannot verify
  ("InvalidServiceName"); moto accepts any. Patched: names listed with ``--reject-service`` are refused.

- Private hosted zones: AWS refuses ``CreateHostedZone`` (and ``AssociateVPCWithHostedZone``) for a zone name
  already associated with the same VPC, with ``ConflictingDomainExists`` (HTTP 400); moto creates another zone
  of the same name. Patched, atomically (a lock): concurrent creations of one name for one VPC make exactly one
  zone, the others get ``ConflictingDomainExists``.
- ``CreateHostedZone`` ``CallerReference``: AWS refuses a reference already used by an existing zone with
  ``HostedZoneAlreadyExists`` (HTTP 409); moto ignores it. Patched; the reference check comes first (a retried
  creation gets ``HostedZoneAlreadyExists``, not ``ConflictingDomainExists``). Only zones that still exist
  count (AWS may remember the references of deleted zones too: do not depend on either).
- ``ChangeResourceRecordSets`` keeps AWS's request limits: more than 1,000 ResourceRecord elements or 32,000
  characters of Value elements (an UPSERT's counted twice) is ``InvalidChangeBatch``; moto takes any size.
- ``ChangeResourceRecordSets`` is atomic, as on AWS: the changes are validated in order against the zone as
  the earlier changes of the batch leave it; if any fails, nothing is applied and the call fails with
  ``InvalidChangeBatch`` (HTTP 400), the message listing every problem in AWS's words, e.g. ``[Tried to
  delete resource record set [name='a.example.com.', type='A'] but it was not found]``. Problems: CREATE of a
  set that exists ("... but it already exists"); DELETE of a set that does not exist ("... but it was not
  found") or whose values (TTL, records, alias target, routing fields) differ from the current ones ("... but
  the values provided do not match the current values"); a name outside the zone ("RRSet with DNS name ... is
  not permitted in zone ..."). moto checked DELETE against its change journal (answering ``InvalidInput``),
  deleted by name and type whatever the values, and could apply part of a batch before failing.
- Route 53 change IDs: moto answers every change with the same fixed ID and ``INSYNC``. Patched: each change
  (``CreateHostedZone``, ``DeleteHostedZone``, ``ChangeResourceRecordSets``, VPC association changes) gets its
  own ID, and with ``--change-pending-seconds S`` (default 0: ``INSYNC`` at once, as before) it is ``PENDING``
  in the answer and in ``GetChange`` for S seconds, then ``INSYNC``. ``GetChange`` of an ID the stand-in never
  issued answers ``INSYNC`` (moto's behaviour; AWS answers ``NoSuchChange``).

Failures on demand (:mod:`.aws_faults`, whose docstring is the reference): ``RequestLimitExceeded``,
``Throttling``, ``PriorRequestNotComplete``, 500/503 errors, dropped connections and latency, by count or by
rate (seeded RNG), per service and operation; set with ``--fault SPEC`` (repeatable) and ``--fault-seed N`` at
start, or at run time through ``/_standin/faults``; and optional token-bucket throttling per service and
access key (``--throttle route53=5``, ``--throttle ec2=20/40``; ``/_standin/throttle``). None by default.

Not patched (the operator must be safe either way): moto applies no API rate limits of its own and does not
validate that subnets are in distinct availability zones.

Run it alone with ``clickhouse-privatelink-testkit standin aws --port 5000 [--seed-network us-east-1]
[--endpoint-pending-seconds S] [--change-pending-seconds S] [--reject-service NAME] [--fault SPEC]
[--fault-seed N] [--throttle SERVICE=RATE[/BURST]]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .aws_faults import Fault, FaultInjector, FaultMiddleware, Throttle

DEFAULT_ACCESS_KEY = "testing"
DEFAULT_SECRET_KEY = "testing"


@dataclass
class _Behaviour:
    pending_seconds: float = 0.0  # endpoints stay pending and deleting this long (aws_faults.EndpointTiming)
    rejected_services: set[str] = field(default_factory=set)
    change_pending_seconds: float = 0.0


_behaviour = _Behaviour()
_patched = False
# Route 53 changes are checked and applied under one lock: moto's server answers on many threads.
_route53_lock = threading.RLock()
# Change ID -> monotonic time it becomes INSYNC.
_changes: dict[str, float] = {}


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
            since = getattr(ep, "_standin_since", None)
            if since is not None and now >= since + _behaviour.pending_seconds:
                ep.state = {"pending": "available", "deleting": "deleted"}.get(ep.state, ep.state)
                ep._standin_since = None

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
        if _behaviour.pending_seconds > 0:
            ep.state = "pending"
            ep._standin_since = time.monotonic()
        return ep

    def delete(self: Any, vpce_ids: list[str] | None = None) -> Any:
        result = original_delete(self, vpce_ids)
        if _behaviour.pending_seconds > 0:
            for vpce_id in vpce_ids or []:
                ep = self.vpc_end_points.get(vpce_id)
                if ep is not None and ep.state == "deleted":
                    ep.state = "deleting"
                    ep._standin_since = time.monotonic()
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
    _apply_route53_patches()
    VPCBackend.create_vpc_endpoint = create  # type: ignore[method-assign]
    VPCBackend.delete_vpc_endpoints = delete  # type: ignore[method-assign]
    VPCBackend.describe_vpc_endpoints = describe  # type: ignore[method-assign]
    VPCs.create_vpc_endpoint = response  # type: ignore[method-assign]
    _patched = True


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _same_name(a: str, b: str) -> bool:
    return _fqdn(a).lower() == _fqdn(b).lower()


def _rrset_identity(rs: dict[str, Any]) -> tuple[str, str, str | None]:
    return _fqdn(str(rs.get("Name", ""))).lower(), str(rs.get("Type")), rs.get("SetIdentifier")


def _rrset_values(rs: dict[str, Any]) -> dict[str, Any]:
    """What must match exactly for a DELETE, normalized (records as strings, TTL as a number)."""
    records = [r["Value"] if isinstance(r, dict) else r for r in rs.get("ResourceRecords") or []]
    alias = rs.get("AliasTarget")
    out: dict[str, Any] = {
        "TTL": None if rs.get("TTL") is None else int(rs["TTL"]),
        "ResourceRecords": sorted(str(r) for r in records),
        "AliasTarget": None
        if not alias
        else (
            _fqdn(str(alias.get("DNSName", ""))).lower(),
            str(alias.get("HostedZoneId")),
            str(alias.get("EvaluateTargetHealth", False)).lower() in ("true", "1"),
        ),
    }
    for name in ("Weight", "Region", "Failover", "GeoLocation", "MultiValueAnswer", "HealthCheckId"):
        value = rs.get(name)
        out[name] = None if value is None else str(value).lower()
    return out


def _stored(record: Any) -> dict[str, Any]:
    """A moto RecordSet as a change's ResourceRecordSet."""
    return {
        "Name": record.name,
        "Type": record.type,
        "TTL": record.ttl,
        "ResourceRecords": list(record.records or []),
        "SetIdentifier": record.set_identifier,
        "Weight": record.weight,
        "Region": record.region,
        "Failover": record.failover,
        "GeoLocation": record.geo_location,
        "MultiValueAnswer": record.multi_value_answer,
        "HealthCheckId": record.health_check_id,
        "AliasTarget": record.alias_target,
    }


def _new_change(info: Any) -> None:
    """Give a ChangeInfo its own ID, PENDING for ``change_pending_seconds`` (see the module doc)."""
    if not isinstance(info, dict):
        return
    change_id = "C" + "".join(random.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(20))
    pending = _behaviour.change_pending_seconds
    with _route53_lock:
        _changes[change_id] = time.monotonic() + pending
    info["Id"] = f"/change/{change_id}"
    info["Status"] = "PENDING" if pending > 0 else "INSYNC"


def _change_status(change_id: str) -> str:
    due = _changes.get(change_id.rsplit("/", 1)[-1])
    return "PENDING" if due is not None and time.monotonic() < due else "INSYNC"


def _apply_route53_patches() -> None:
    from moto.core.responses import ActionResult

    # Route 53's own exception class: moto finds the error's shape (HTTP status) in its module's service.
    from moto.route53.exceptions import InvalidActionValue
    from moto.route53.exceptions import Route53ClientError as ServiceException
    from moto.route53.models import Route53Backend
    from moto.route53.responses import Route53
    from moto.route53.utils import validate_domain_name

    original_create_zone: Callable[..., Any] = Route53Backend.create_hosted_zone
    original_associate: Callable[..., Any] = Route53Backend.associate_vpc_with_hosted_zone

    def conflicting_zone(backend: Any, name: str, vpc_id: str, exclude: Any = None) -> Any:
        for zone in backend.zones.values():
            if zone is exclude or not zone.private_zone or not _same_name(zone.name, name):
                continue
            if any(vpc.get("vpc_id") == vpc_id for vpc in zone.vpcs):
                return zone
        return None

    def conflict(name: str, vpc_id: str, region: str | None, zone: Any) -> Exception:
        return ServiceException(
            "ConflictingDomainExists",
            f"The VPC {vpc_id} in region {region} has already been associated with the hosted zone "
            f"{zone.resource_id} with the same domain name {name.rstrip('.')}.",
        )

    def create_zone(self: Any, name: str, private_zone: bool, *args: Any, **kwargs: Any) -> Any:
        caller_reference = kwargs.get("caller_reference")
        vpc_id, vpc_region = kwargs.get("vpcid"), kwargs.get("vpcregion")
        with _route53_lock:
            if caller_reference and any(z.caller_reference == caller_reference for z in self.zones.values()):
                raise ServiceException(
                    "HostedZoneAlreadyExists",
                    "A hosted zone has already been created with the specified caller reference.",
                )
            if private_zone and vpc_id:
                existing = conflicting_zone(self, name, vpc_id)
                if existing is not None:
                    raise conflict(name, vpc_id, vpc_region, existing)
            return original_create_zone(self, name, private_zone, *args, **kwargs)

    def associate(self: Any, zone_id: str, vpcid: str, vpcregion: str) -> Any:
        with _route53_lock:
            zone = self.get_hosted_zone(zone_id)
            existing = conflicting_zone(self, zone.name, vpcid, exclude=zone)
            if existing is not None:
                raise conflict(zone.name, vpcid, vpcregion, existing)
            return original_associate(self, zone_id, vpcid, vpcregion)

    def change_records(self: Any, zoneid: str, change_list: list[dict[str, Any]]) -> None:
        records = characters = 0
        for change in change_list:  # counted as AWS counts them (the stand-in's own arithmetic)
            weight = 2 if change.get("Action") == "UPSERT" else 1
            values = [
                str(v.get("Value", "")) for v in change["ResourceRecordSet"].get("ResourceRecords") or []
            ]
            records += weight * len(values)
            characters += weight * sum(len(v) for v in values)
        if records > 1000:
            raise ServiceException(
                "InvalidChangeBatch", f"Number of records limit of 1000 exceeded ({records})."
            )
        if characters > 32000:
            raise ServiceException(
                "InvalidChangeBatch", f"Number of characters limit of 32000 exceeded ({characters})."
            )
        with _route53_lock:
            zone = self.get_hosted_zone(zoneid)
            current = [_stored(r) for r in zone.rrsets]
            problems: list[str] = []
            for change in change_list:
                action = change.get("Action")
                rs = change["ResourceRecordSet"]
                name = _fqdn(str(rs.get("Name", "")))
                validate_domain_name(name, code="InvalidChangeBatch")
                if action not in ("CREATE", "UPSERT", "DELETE"):
                    raise InvalidActionValue(str(action))
                zone_name = zone.name.strip(".").lower()
                bare = name.strip(".").lower()
                if bare != zone_name and not bare.endswith("." + zone_name):
                    problems.append(f"RRSet with DNS name {name} is not permitted in zone {zone.name}")
                    continue
                what = f"resource record set [name='{name}', type='{rs.get('Type')}'"
                what += f", set-identifier='{rs['SetIdentifier']}']" if rs.get("SetIdentifier") else "]"
                found = [i for i, c in enumerate(current) if _rrset_identity(c) == _rrset_identity(rs)]
                if action == "CREATE":
                    if found:
                        problems.append(f"Tried to create {what} but it already exists")
                    else:
                        current.append(rs)
                elif action == "DELETE":
                    if not found:
                        problems.append(f"Tried to delete {what} but it was not found")
                    elif _rrset_values(current[found[0]]) != _rrset_values(rs):
                        problems.append(
                            f"Tried to delete {what} but the values provided do not match the current values"
                        )
                    else:
                        del current[found[0]]
                else:
                    if found:
                        current[found[0]] = rs
                    else:
                        current.append(rs)
            if problems:
                raise ServiceException("InvalidChangeBatch", "[" + ", ".join(problems) + "]")
            for change in change_list:
                original_change = copy.deepcopy(change)
                rs = copy.deepcopy(change["ResourceRecordSet"])
                rs["Name"] = _fqdn(rs["Name"])
                if change["Action"] == "DELETE":
                    zone.rrsets = [
                        r for r in zone.rrsets if _rrset_identity(_stored(r)) != _rrset_identity(rs)
                    ]
                else:
                    if "ResourceRecords" in rs:
                        rs["ResourceRecords"] = [
                            r["Value"] if isinstance(r, dict) else r for r in rs["ResourceRecords"]
                        ]
                    if change["Action"] == "CREATE":
                        zone.add_rrset(rs)
                    else:
                        zone.rrsets = [
                            r for r in zone.rrsets if _rrset_identity(_stored(r)) != _rrset_identity(rs)
                        ]
                        zone.add_rrset(rs)
                zone.rr_changes.append(original_change)

    def with_new_change(original: Callable[..., Any]) -> Callable[..., Any]:
        def respond(self: Any) -> Any:
            result = original(self)
            if isinstance(result, ActionResult) and isinstance(result.result, dict):
                _new_change(result.result.get("ChangeInfo"))
            return result

        return respond

    original_get_change: Callable[..., Any] = Route53.get_change

    def get_change(self: Any) -> Any:
        result = original_get_change(self)
        if isinstance(result, ActionResult) and isinstance(result.result, dict):
            info = result.result.get("ChangeInfo")
            if isinstance(info, dict):
                info["Status"] = _change_status(str(info.get("Id", "")))
        return result

    for method in (
        "create_hosted_zone",
        "delete_hosted_zone",
        "change_resource_record_sets",
        "associate_vpc_with_hosted_zone",
        "disassociate_vpc_from_hosted_zone",
    ):
        setattr(Route53, method, with_new_change(getattr(Route53, method)))
    Route53.get_change = get_change  # type: ignore[method-assign]
    Route53Backend.create_hosted_zone = create_zone  # type: ignore[method-assign]
    Route53Backend.associate_vpc_with_hosted_zone = associate  # type: ignore[method-assign]
    Route53Backend.change_resource_record_sets = change_records  # type: ignore[method-assign]


@dataclass(frozen=True)
class Network:
    """A VPC with subnets in two availability zones and a security group, seeded for the operator."""

    region: str
    vpc_id: str
    subnet_ids: list[str]
    security_group_id: str


def seed_network(
    endpoint_url: str,
    region: str,
    *,
    cidr: str = "10.42.0.0/16",
    ports: tuple[int, ...] = (443, 8443, 9440, 3306),
) -> Network:
    """Create a VPC, two subnets and a security group admitting TCP ``ports`` (ClickHouse's four by default)
    from the VPC's CIDR, so that the operator's SecurityGroupReady check finds them open."""
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
    if ports:
        ec2.authorize_security_group_ingress(
            GroupId=sg,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": cidr}]}
                for port in ports
            ],
        )
    return Network(region=region, vpc_id=vpc_id, subnet_ids=subnets, security_group_id=sg)


class AwsStandIn:
    """moto's server on a loopback port, in a background thread of this process, behind the fault layer."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        endpoint_pending_seconds: float = 0.0,
        rejected_services: set[str] | None = None,
        change_pending_seconds: float = 0.0,
        faults: list[Fault] | None = None,
        fault_seed: int | None = None,
        throttles: dict[str, Throttle] | None = None,
    ) -> None:
        _apply_patches()
        _behaviour.pending_seconds = endpoint_pending_seconds
        _behaviour.rejected_services = set(rejected_services or ())
        _behaviour.change_pending_seconds = change_pending_seconds
        self.faults = FaultInjector(
            faults=list(faults or ()), throttles=dict(throttles or {}), seed=fault_seed
        )
        self._host = host
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._url = ""

    @property
    def url(self) -> str:
        return self._url

    def start(self) -> None:
        # What moto's ThreadedMotoServer does, with the fault middleware in front of moto's app.
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        app = FaultMiddleware(
            DomainDispatcherApplication(create_backend_app), self.faults, endpoints=_behaviour
        )
        self._server = make_server(
            self._host, self._port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self._url = f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None


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
    parser.add_argument(
        "--change-pending-seconds", type=float, default=0.0, help="Route 53 changes PENDING this long"
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        type=Fault.parse,
        help="a fault: JSON or kind=throttle,service=ec2,operation=X,rate=P,count=N (see aws_faults)",
    )
    parser.add_argument("--fault-seed", type=int, default=None, help="seed of the faults' RNG")
    parser.add_argument(
        "--throttle",
        action="append",
        default=[],
        type=Throttle.parse,
        help="token bucket per access key: SERVICE=RATE[/BURST], e.g. route53=5",
    )
    args = parser.parse_args(argv)

    standin = AwsStandIn(
        host=host,
        port=port,
        endpoint_pending_seconds=args.endpoint_pending_seconds,
        rejected_services=set(args.reject_service),
        change_pending_seconds=args.change_pending_seconds,
        faults=list(args.fault),
        fault_seed=args.fault_seed,
        throttles=dict(args.throttle),
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
