"""What the engine needs from AWS and ClickHouse, as Protocols: the gateways implement them, and so do the
in-memory fakes of the engine's tests (tests/engine/fakes.py).

Every AWS call of a pass goes through ``AwsPort``: its writes drop the cached reads they make stale, and its
errors arrive as ``AwsError`` (code and meaning), never as botocore exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from clickhouse_privatelink.adapters.aws.clients import AwsError
from clickhouse_privatelink.adapters.aws.route53 import ObservedZone
from clickhouse_privatelink.adapters.clickhouse.client import IpAccessEntry, PrivateEndpointConfig, Service
from clickhouse_privatelink.adapters.kubernetes.secrets import ApiKey
from clickhouse_privatelink.api.models import SecretKeyRef
from clickhouse_privatelink.decisions.plan import (
    DesiredEndpoint,
    EndpointDecision,
    ObservedEndpoint,
    ObservedRecords,
)
from clickhouse_privatelink.decisions.security_groups import SecurityGroup


class AwsPort(Protocol):
    """One region's (and role's) EC2 and Route 53, as the engine uses them (adapters/aws/gateway.py)."""

    # ---- EC2: endpoints

    async def endpoints(self, vpc_id: str, *, max_age: float) -> list[ObservedEndpoint]:
        """The operator's endpoints in the VPC (any cluster), oldest first, read at most ``max_age`` ago."""
        ...

    async def endpoint(self, endpoint_id: str) -> ObservedEndpoint | None:
        """The endpoint with this ID, read now; None when AWS does not know it."""
        ...

    async def create_endpoint(
        self, desired: DesiredEndpoint, *, tags: dict[str, str], client_token: str
    ) -> ObservedEndpoint: ...

    async def modify_endpoint(
        self, endpoint: ObservedEndpoint, decision: EndpointDecision
    ) -> ObservedEndpoint | None:
        """Apply the changes; the endpoint as read after (None when it vanished)."""
        ...

    async def delete_endpoint(self, vpc_id: str, endpoint_id: str) -> None: ...

    async def mark_retained(self, vpc_id: str, endpoint_id: str, by: str) -> None: ...

    async def unmark_retained(self, vpc_id: str, endpoint_id: str) -> None: ...

    # ---- EC2: reads for the checks

    async def security_groups(self, ids: Sequence[str], *, max_age: float) -> list[SecurityGroup]: ...

    async def default_group(self, vpc_id: str, *, max_age: float) -> list[SecurityGroup]: ...

    async def vpc_cidrs(self, vpc_id: str, *, max_age: float) -> list[str]: ...

    async def interface_addresses(self, endpoint_id: str, *, max_age: float) -> tuple[str, ...]: ...

    # ---- Route 53

    async def private_zone(
        self, name: str, *, vpc_id: str, vpc_region: str, max_age: float
    ) -> ObservedZone | None:
        """The private zone ``name`` associated with the VPC, if any."""
        ...

    async def zone(self, zone_id: str, *, with_tags: bool = False) -> ObservedZone | None: ...

    async def create_private_zone(
        self,
        name: str,
        *,
        vpc_id: str,
        vpc_region: str,
        tags: dict[str, str],
        caller_reference: str,
        created: Callable[[], None] | None = None,
    ) -> ObservedZone:
        """Create the zone, tagged; ``created`` is told once it exists, before its tags are written."""
        ...

    async def delete_zone_if_empty(self, zone_id: str, *, vpc_id: str, name: str) -> bool: ...

    async def zone_sets(self, zone_id: str, *, max_age: float) -> list[dict[str, Any]] | None:
        """Every record set of the zone (None when the zone is gone), read at most ``max_age`` ago."""
        ...

    async def zone_names(self, zone_id: str, *, max_age: float) -> Mapping[str, list[dict[str, Any]]] | None:
        """The same listing by name (``route53.name_key``); None when the zone is gone."""
        ...

    async def records(
        self, zone_id: str, hostname: str, *, max_age: float
    ) -> tuple[ObservedRecords, list[dict[str, Any]]]: ...

    async def read_records(self, zone_id: str, hostname: str) -> tuple[ObservedRecords, list[dict[str, Any]]]:
        """What is at ``hostname``, read now on its own."""
        ...

    def reading_records(self, zone_id: str) -> bool:
        """Whether the zone's shared listing is being read now (passes waiting for it have not asked yet)."""
        ...

    async def submit_records(
        self, zone_id: str, groups: Sequence[Sequence[dict[str, Any]]]
    ) -> list[AwsError | None]:
        """Apply each group of changes atomically, now, in as few ChangeResourceRecordSets as Route 53's
        limits allow (a failed request split until the bad groups stand alone); each group's error or None."""
        ...


class ClickHousePort(Protocol):
    """One organization's ClickHouse Cloud API, as the engine uses it (adapters/clickhouse/gateway.py)."""

    async def services(self, *, max_age: float) -> list[Service]: ...

    async def service(self, service_id: str, *, max_age: float) -> Service: ...

    async def private_endpoint_config(self, service_id: str) -> PrivateEndpointConfig: ...

    async def update_private_endpoint_ids(
        self, service_id: str, *, add: Sequence[str], remove: Sequence[str]
    ) -> Service:
        """Change the service's allow list by delta in one PATCH, now; the shared list takes in the result
        (only the service's allow-list worker calls it: engine/allow_list_worker.py)."""
        ...

    async def update_ip_access_list(
        self, service_id: str, *, add: Sequence[IpAccessEntry], remove: Sequence[IpAccessEntry]
    ) -> Service: ...

    async def remove_organization_entries(
        self, endpoint_ids: Sequence[str], *, max_age: float
    ) -> list[str]: ...


class SecretsPort(Protocol):
    """The API-key Secrets, as the engine reads them (adapters/kubernetes/secrets.py SecretReader)."""

    async def api_key(
        self, namespace: str, ref: SecretKeyRef, *, max_age: float = 0.0, require_opt_in: bool = True
    ) -> ApiKey:
        """The key ``ref`` names, or ``CredentialsError`` saying what is wrong."""
        ...

    def forget(self, namespace: str, name: str) -> None: ...


__all__ = ["AwsError", "AwsPort", "ClickHousePort", "SecretsPort"]
