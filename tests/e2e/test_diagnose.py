"""``clickhouse-privatelink-operator diagnose NAMESPACE/NAME``: the guide's checklist, run as a command beside a
stopped operator (so nothing is repaired under it), names the first thing to fix for each failure mode."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.e2e.conftest import Cloud, DataPlane, Link, LinkFactory, OperatorProcess
from tests.e2e.test_reachability import CHECK_TIMEOUT, _ingress_9440, _link_in
from tests.fixtures.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.standin_only]


def diagnose(operator: OperatorProcess, link: Link, *, output: str = "json") -> tuple[int, str]:
    cmd = [sys.executable, "-m", "clickhouse_privatelink", "diagnose", f"{link.namespace}/{link.name}"]
    done = subprocess.run(
        [*cmd, "--output", output], env=operator.env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, done.stdout


def first_to_fix(operator: OperatorProcess, link: Link) -> dict[str, Any]:
    code, out = diagnose(operator, link)
    report = json.loads(out)
    assert code == 1, report
    first: dict[str, Any] = report["firstToFix"]
    return first


def test_diagnose_names_the_first_thing_to_fix_for_each_failure_mode(
    plane: DataPlane, make_link: LinkFactory, cloud: Cloud, operator: OperatorProcess
) -> None:
    link = _link_in(plane, make_link)
    status = link.wait_ready()
    link.wait_condition("Reachable", status="True", timeout=CHECK_TIMEOUT)
    endpoint_id, host, zone_id = status["vpcEndpointId"], status["privateDnsHostname"], status["hostedZoneId"]

    code, out = diagnose(operator, link)
    report = json.loads(out)
    assert code == 0 and report["firstToFix"] is None, report
    assert [c["name"] for c in report["checks"]] == [
        "resource",
        "clickhouse service",
        "endpoint",
        "allow list",
        "security groups",
        "dns zone",
        "dns record",
        "reachability",
        "public access",
    ]
    assert all(c["status"] == "ok" for c in report["checks"][:-1]), report
    public = report["checks"][-1]
    assert public["status"] == "skip" and public["detail"].startswith("publicAccess is Unchanged"), public

    operator.stop()  # nothing repairs what is broken below until it starts again
    try:
        sg, cidr = plane.network.security_group_id, "10.48.0.0/16"
        cloud.ec2.revoke_security_group_ingress(GroupId=sg, IpPermissions=_ingress_9440(cidr))
        first = first_to_fix(operator, link)
        assert first["name"] == "security groups" and first["reason"] == "ConnectTimeout"
        assert f"admits no inbound TCP from the VPC ({cidr}) on 9440" in first["detail"]
        cloud.ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=_ingress_9440(cidr))

        records = cloud.records(zone_id, host)
        change = [{"Action": "DELETE", "ResourceRecordSet": rs} for rs in records]
        cloud.r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": change})
        first = first_to_fix(operator, link)
        assert first["name"] == "dns record" and first["reason"] == "DnsNotResolving"
        assert first["detail"] == f"no record for {host} in {zone_id}"
        change = [{"Action": "CREATE", "ResourceRecordSet": rs} for rs in records]
        cloud.r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": change})

        cloud.remove_from_allow_list(endpoint_id)
        first = first_to_fix(operator, link)
        assert first["name"] == "allow list" and first["reason"] == "ConnectionReset"
        assert f"{endpoint_id} is not in privateEndpointIds" in first["detail"]
        code, text = diagnose(operator, link, output="text")
        assert (
            code == 1
            and f"first thing to fix: allow list: {endpoint_id} is not in privateEndpointIds" in text
        )
    finally:
        operator.start()
    # Started again, the operator puts the entry back; the checklist passes again.
    wait_for(lambda: endpoint_id in cloud.allow_list(), timeout=CHECK_TIMEOUT, message="the entry back")
    wait_for(lambda: diagnose(operator, link)[0] == 0, timeout=CHECK_TIMEOUT, message="nothing to fix")

    # publicAccess set: the last line says whether the IP access list stands as the resource asks.
    link.patch_spec({"clickhouse": {"publicAccess": {"mode": "PrivateOnly"}}})
    link.wait_condition("PublicAccessRestricted", status="True", timeout=CHECK_TIMEOUT)
    code, out = diagnose(operator, link)
    public = json.loads(out)["checks"][-1]
    assert code == 0 and public["name"] == "public access" and public["status"] == "ok", out
    assert public["detail"].endswith("is as publicAccess asks: no public entry (PrivateLink only)"), public
