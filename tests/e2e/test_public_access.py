"""spec.clickhouse.publicAccess: the service's public IP access list closed (or narrowed) by delta and restored
exactly on deletion, with an entry a person adds by hand left alone throughout; the oldest resource's setting in
force; and an operator SIGKILLed between its recorded intent and the PATCH completes it after a restart."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from clickhouse_privatelink_testkit.sandbox import Kube
from tests.e2e.conftest import Cloud, Link, LinkFactory, OperatorProcess, assert_quiet_over_drift_checks
from tests.fixtures.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.standin_only]

ANYWHERE = {"source": "0.0.0.0/0", "description": "Anywhere"}  # what the stand-in gives a new service
BY_HAND = {"source": "192.0.2.10/32", "description": "added by hand"}
TIMEOUT = 40.0


def ip_list(cloud: Cloud) -> list[dict[str, str]]:
    assert cloud.clickhouse.control is not None
    service = cloud.clickhouse.control.service(cloud.org.org_id, cloud.org.service_id)
    return [dict(e) for e in service["ip_access_list"]]


def by_hand(cloud: Cloud, access: dict[str, Any]) -> None:
    """What a person does in the console: PATCH the service's ipAccessList with the org's own key."""
    path = f"/v1/organizations/{cloud.org.org_id}/services/{cloud.org.service_id}"
    auth = (cloud.org.key_id, cloud.org.key_secret)
    response = httpx.patch(cloud.clickhouse.url + path, json={"ipAccessList": access}, auth=auth, timeout=10)
    response.raise_for_status()


def wait_list(cloud: Cloud, expected: list[dict[str, str]]) -> None:
    def key(entries: list[dict[str, str]]) -> list[tuple[str, str]]:
        return sorted((e["source"], e.get("description", "")) for e in entries)

    wait_for(
        lambda: key(ip_list(cloud)) == key(expected),
        timeout=TIMEOUT,
        interval=0.2,
        message=f"IP access list {expected}",
    )


def ours(link: Link) -> str:
    """The description the operator gives an entry it adds (CHPL_CLUSTER_NAME is e2e)."""
    return f"clickhouse-privatelink-operator e2e: {link.namespace}/{link.name}"


def restricted(link: Link, reason: str, status: str = "True") -> dict[str, Any]:
    return link.wait_condition("PublicAccessRestricted", status=status, reason=reason, timeout=TIMEOUT)


def test_private_only_closes_the_list_and_deletion_restores_it_leaving_a_hand_made_entry(
    make_link: LinkFactory, cloud: Cloud, operator: OperatorProcess, k8s: Kube
) -> None:
    assert ip_list(cloud) == [ANYWHERE]
    link = make_link(clickhouse={"publicAccess": {"mode": "PrivateOnly"}})
    link.wait_ready()
    cond = restricted(link, "PublicAccessPrivateOnly")
    assert "has no entries: only PrivateLink reaches the service" in cond["message"]
    wait_list(cloud, [])
    record = link.status()["publicAccess"]
    assert record["removed"] == [ANYWHERE] and record["added"] == [] and record["applied"] == "PrivateOnly"
    assert "intent" not in record
    link.wait_events("PublicAccessChanged")

    # A person opens the list for one address: the operator says so, and never removes it.
    assert_quiet_over_drift_checks(link, operator, k8s)  # the steady state writes nothing

    by_hand(cloud, {"add": [BY_HAND]})
    cond = restricted(link, "PublicAccessChangedByOthers", status="False")
    assert "192.0.2.10/32 listed" in cond["message"]
    writes = cloud.writes()
    assert_quiet_over_drift_checks(link, operator, k8s)
    assert cloud.writes() == writes and ip_list(cloud) == [BY_HAND]

    link.delete()
    link.wait_gone()
    # Put back exactly what the operator removed; the hand-made entry stays.
    wait_list(cloud, [BY_HAND, ANYWHERE])


def test_switching_back_to_unchanged_restores_and_an_allow_list_is_applied_by_delta(
    make_link: LinkFactory, cloud: Cloud
) -> None:
    link = make_link(clickhouse={"publicAccess": {"mode": "AllowList", "sources": ["198.51.100.0/24"]}})
    restricted(link, "PublicAccessAllowList")
    wait_list(cloud, [{"source": "198.51.100.0/24", "description": ours(link)}])
    # (A merge patch keeps the sources: they go with the mode, or the API server refuses the change.)
    link.patch_spec({"clickhouse": {"publicAccess": {"mode": "Unchanged", "sources": None}}})
    restricted(link, "PublicAccessUnchanged", status="False")
    wait_list(cloud, [ANYWHERE])
    wait_for(lambda: "publicAccess" not in link.status(), timeout=TIMEOUT, message="record dropped")


def test_the_oldest_resource_is_in_force_and_the_last_to_leave_restores(
    make_link: LinkFactory, cloud: Cloud
) -> None:
    first = make_link(name="first", clickhouse={"publicAccess": {"mode": "PrivateOnly"}})
    restricted(first, "PublicAccessPrivateOnly")
    second = make_link(
        name="second", clickhouse={"publicAccess": {"mode": "AllowList", "sources": ["198.51.100.7/32"]}}
    )
    cond = restricted(second, "PublicAccessSettingOfOtherResource", status="False")
    assert f"{first.namespace}/first" in cond["message"]
    wait_list(cloud, [])

    # The first goes: its record passes to the second, whose setting is in force now (by delta).
    first.delete()
    first.wait_gone()
    restricted(second, "PublicAccessAllowList")
    wait_list(cloud, [{"source": "198.51.100.7/32", "description": ours(second)}])
    assert second.status()["publicAccess"]["removed"] == [ANYWHERE]

    second.delete()
    second.wait_gone()
    wait_list(cloud, [ANYWHERE])


def test_a_kill_between_the_intent_and_the_patch_is_completed_after_a_restart(
    make_link: LinkFactory, cloud: Cloud, operator: OperatorProcess
) -> None:
    control = cloud.clickhouse.control
    assert control is not None
    by_hand(cloud, {"add": [BY_HAND]})
    link = make_link()
    link.wait_ready()  # its allow-list PATCH is done: the only PATCH from here on is the IP access list's
    # Every PATCH of the service fails at the connection: the intent is written, the PATCH never lands.
    control.add_fault("drop", rate=1.0, method="PATCH", path=f"/services/{cloud.org.service_id}$")
    try:
        link.patch_spec({"clickhouse": {"publicAccess": {"mode": "PrivateOnly"}}})
        wait_for(
            lambda: (link.status().get("publicAccess") or {}).get("intent") is not None,
            timeout=TIMEOUT,
            message="the intent written",
        )
        operator.kill()
    finally:
        control.set_faults([])
    assert sorted(e["source"] for e in ip_list(cloud)) == ["0.0.0.0/0", "192.0.2.10/32"]  # nothing sent yet
    operator.start()
    restricted(link, "PublicAccessPrivateOnly")
    wait_list(cloud, [])
    record = link.status()["publicAccess"]
    assert "intent" not in record
    assert sorted(e["source"] for e in record["removed"]) == ["0.0.0.0/0", "192.0.2.10/32"]

    link.delete()
    link.wait_gone()
    wait_list(cloud, [ANYWHERE, BY_HAND])
