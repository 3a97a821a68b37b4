"""Reachable: the operator measures the private hostname from where it runs (the data-plane stand-in's VPC), and
names each failure of ClickHouse's troubleshooting section as a person breaks and mends things, with Ready
staying True throughout (the check is advisory by default)."""

from __future__ import annotations

from typing import Any

import pytest

from clickhouse_privatelink_testkit.sandbox import Kube
from tests.e2e.conftest import (
    Cloud,
    DataPlane,
    Link,
    LinkFactory,
    OperatorProcess,
    assert_quiet_over_drift_checks,
)
from tests.fixtures.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.standin_only]

# Looked at again at every drift check (CHPL_DRIFT_INTERVAL is 2 s in e2e); a timeout costs the probe 1 s.
CHECK_TIMEOUT = 40.0


def _link_in(plane: DataPlane, make_link: LinkFactory, **spec: Any) -> Link:
    net = plane.network
    aws = {"vpcId": net.vpc_id, "subnetIds": net.subnet_ids, "securityGroupIds": [net.security_group_id]}
    return make_link(aws=aws, **spec)


def _reachable(link: Link, reason: str, status: str = "False") -> dict[str, Any]:
    cond = link.wait_condition("Reachable", status=status, reason=reason, timeout=CHECK_TIMEOUT)
    ready = link.condition("Ready")
    assert ready is not None and ready["status"] == "True", "Reachable never holds Ready back by default"
    return cond


def _ingress_9440(cidr: str) -> list[dict[str, Any]]:
    return [{"IpProtocol": "tcp", "FromPort": 9440, "ToPort": 9440, "IpRanges": [{"CidrIp": cidr}]}]


def test_reachable_then_security_groups_allow_list_and_tls_break_and_mend(
    plane: DataPlane, make_link: LinkFactory, cloud: Cloud
) -> None:
    link = _link_in(plane, make_link)
    status = link.wait_ready()
    endpoint_id, host = status["vpcEndpointId"], status["privateDnsHostname"]
    cond = _reachable(link, "Reachable", status="True")
    assert cond["message"].startswith(f"{host} resolves to endpoint {endpoint_id} (10.")
    assert "GET /ping on 8443 answered 'Ok.'" in cond["message"]

    # The guide's "connection timed out": the endpoint's security group stops admitting 9440.
    cidr = "10.48.0.0/16"
    cloud.ec2.revoke_security_group_ingress(
        GroupId=plane.network.security_group_id, IpPermissions=_ingress_9440(cidr)
    )
    cond = _reachable(link, "ConnectTimeout")
    assert f"{host} (10." in cond["message"] and "port 9440: connect timed out" in cond["message"]
    assert f"add an inbound rule TCP 9440 from {cidr}" in cond["message"]
    link.wait_events("ConnectTimeout")
    cloud.ec2.authorize_security_group_ingress(
        GroupId=plane.network.security_group_id, IpPermissions=_ingress_9440(cidr)
    )
    _reachable(link, "Reachable", status="True")

    # The guide's "connection reset by peer": the endpoint taken off the service's allow list by hand. The
    # operator puts it back at its next pass; ClickHouse (the stand-in) honours an entry a while after it.
    cloud.remove_from_allow_list(endpoint_id)
    # False when a pass met the reset before putting the entry back, Unknown when the same pass put it back.
    cond = wait_for(
        lambda: (c := link.condition("Reachable")) and c["reason"] == "ConnectionReset" and c,
        timeout=CHECK_TIMEOUT,
        message="Reachable ConnectionReset",
    )
    assert "connection reset by peer" in cond["message"] and "privateEndpointIds" in cond["message"]
    _reachable(link, "Reachable", status="True")
    assert endpoint_id in cloud.allow_list()

    # A certificate nobody trusts on the way (a TLS-intercepting proxy): the handshake fails.
    plane.rogue_file.touch()
    try:
        cond = _reachable(link, "TlsFailed")
        assert f"TLS handshake with SNI {host} failed" in cond["message"]
    finally:
        plane.rogue_file.unlink()
    _reachable(link, "Reachable", status="True")


def test_dns_not_resolving_and_pointing_elsewhere_are_named(
    plane: DataPlane, make_link: LinkFactory, cloud: Cloud
) -> None:
    link = _link_in(plane, make_link)
    status = link.wait_ready()
    _reachable(link, "Reachable", status="True")
    host, zone_id = status["privateDnsHostname"], status["hostedZoneId"]

    # dns.mode None: the user keeps the record; they delete it.
    link.patch_spec({"dns": {"mode": "None"}})
    link.wait_condition("DnsReady", status="True", reason="DnsDisabled")
    _change(cloud, zone_id, host, "DELETE")
    cond = _reachable(link, "DnsNotResolving")
    assert f"{host} (resolver 127.0.0.1:" in cond["message"] and "NXDOMAIN" in cond["message"]
    assert "dns.mode is None: create the record" in cond["message"]

    # ... and write one that points somewhere else.
    elsewhere = {"Name": host, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "10.99.0.7"}]}
    cloud.r53.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": elsewhere}]}
    )
    cond = _reachable(link, "DnsPointsElsewhere")
    assert (
        f"resolves to 10.99.0.7, but endpoint {status['vpcEndpointId']}'s network interfaces are 10."
        in cond["message"]
    )

    # Mended: the foreign record goes, and the operator writes its own again.
    cloud.r53.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": elsewhere}]}
    )
    link.patch_spec({"dns": {"mode": "Route53"}})
    _reachable(link, "Reachable", status="True")


def _change(cloud: Cloud, zone_id: str, host: str, action: str) -> None:
    """Apply ``action`` to every record set the operator keeps for ``host`` (its alias and TXT marker)."""
    sets = cloud.records(zone_id, host)
    assert sets, f"no records for {host}"
    changes = [{"Action": action, "ResourceRecordSet": s} for s in sets]
    cloud.r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})


def test_resources_outside_the_operators_vpc_say_so_without_measuring(make_link: LinkFactory) -> None:
    link = make_link()
    link.wait_ready()
    cond = _reachable(link, "OperatorOutsideVpc", status="Unknown")
    assert "(from CHPL_OPERATOR_VPC_ID)" in cond["message"] and "diagnose" in cond["message"]


def test_a_reachable_resource_costs_no_writes_between_drift_checks(
    plane: DataPlane, make_link: LinkFactory, operator: OperatorProcess, k8s: Kube
) -> None:
    """Measured at every drift check, and a measurement that finds the same writes nothing (no status, no Event)."""
    link = _link_in(plane, make_link)
    link.wait_ready()
    _reachable(link, "Reachable", status="True")
    assert_quiet_over_drift_checks(link, operator, k8s)
