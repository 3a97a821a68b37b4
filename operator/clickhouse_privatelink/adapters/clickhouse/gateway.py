"""One gateway per (API URL, organization, key): where every resource's ClickHouse calls meet.

One API key has 10 requests per 10 s for the whole organization, so the calls of many resources are
coalesced here before they reach the client (and its rate limiter):

- ``services()``: one ``GET /services`` in flight at a time; concurrent callers wait on it, and a caller
  that accepts data ``max_age`` seconds old gets the last list. The list carries each service's state,
  provider and ``privateEndpointIds``, so no per-service GET is needed.
- ``private_endpoint_config()``: read once per service and kept (it does not change while the service
  lives).
- ``update_private_endpoint_ids()``: one service's allow-list delta, sent now and taken into the list. The
  additions and removals of many resources are gathered into it by the service's allow-list worker
  (engine/allow_list_worker.py), one round at a time.
- ``update_ip_access_list()``: one PATCH per change of a ``publicAccess`` setting (rare), taken into the list.
- ``remove_organization_entries()``: the organization-entry cleanup of every deletion in the window is one
  look at the organization and the services (shared reads kept in step with our own writes); only an entry
  still listed costs a ``PATCH``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

from clickhouse_privatelink.adapters.clickhouse.client import (
    DEFAULT_RETRY_POLICY,
    ClickHouseCloudClient,
    IpAccessEntry,
    OnCall,
    Organization,
    OrganizationPrivateEndpoint,
    PrivateEndpointConfig,
    RateLimiter,
    RetryPolicy,
    Service,
    rate_limiter,
)
from clickhouse_privatelink.adapters.coalesce import SingleFlight
from clickhouse_privatelink.decisions.plan import org_entry_removable


class ClickHouseGateway:
    """The organization's calls, coalesced and batched (see the module docstring)."""

    def __init__(self, client: ClickHouseCloudClient, org_id: str, *, write_window: float = 0.2) -> None:
        self.client = client
        self.org_id = org_id
        self.write_window = write_window
        self._services: SingleFlight[list[Service]] = SingleFlight(
            lambda: self.client.list_services(self.org_id)
        )
        self._organization: SingleFlight[Organization] = SingleFlight(
            lambda: self.client.get_organization(self.org_id)
        )
        self._org_turn = asyncio.Lock()
        self._positions_of: list[Service] | None = None
        self._position: dict[str, int] = {}
        self._configs: dict[str, PrivateEndpointConfig] = {}
        self._org_batch: tuple[set[str], asyncio.Future[list[str]]] | None = None

    # ---- reads

    async def services(self, *, max_age: float) -> list[Service]:
        """The organization's services, read at most ``max_age`` seconds ago."""
        return await self._services.get(max_age)

    async def service(self, service_id: str, *, max_age: float) -> Service:
        """One service from the shared list; a service missing there is asked for directly (a 404 says why)."""
        services = await self.services(max_age=max_age)
        at = self._positions(services).get(service_id)
        if at is not None:
            return services[at]
        return await self.client.get_service(self.org_id, service_id)

    def _positions(self, services: list[Service]) -> dict[str, int]:
        """Where each service is in ``services``, by ID: worked out once per list read, kept for the lists our
        own writes derive from it (they replace services in place: the positions stay)."""
        if self._positions_of is not services:
            self._positions_of = services
            self._position = {s.id: at for at, s in enumerate(services)}
        return self._position

    async def private_endpoint_config(self, service_id: str) -> PrivateEndpointConfig:
        """The service's PrivateLink configuration, read once it is ready and kept from then on."""
        config = self._configs.get(service_id)
        if config is None:
            config = await self.client.get_private_endpoint_config(self.org_id, service_id)
            if config.ready:
                self._configs[service_id] = config
        return config

    def forget(self, service_id: str) -> None:
        """The service is gone (or changed): read its configuration again next time."""
        self._configs.pop(service_id, None)

    # ---- writes

    async def update_private_endpoint_ids(
        self, service_id: str, *, add: Sequence[str], remove: Sequence[str]
    ) -> Service:
        """Change the service's allow list by delta (the API runs ``remove`` before ``add``), now; the shared
        list takes in the result. The service's allow-list worker gathers the deltas of many resources into it.
        """
        updated = await self.client.update_private_endpoint_ids(
            self.org_id, service_id, add=add, remove=remove
        )
        self._remember(updated)
        return updated

    async def update_ip_access_list(
        self, service_id: str, *, add: Sequence[IpAccessEntry], remove: Sequence[IpAccessEntry]
    ) -> Service:
        """Change the service's public IP access list by delta; the shared list takes in the result.

        Not merged like the allow list: it changes only when a resource's publicAccess setting comes into force.
        """
        updated = await self.client.update_ip_access_list(self.org_id, service_id, add=add, remove=remove)
        self._remember(updated)
        return updated

    def _remember(self, updated: Service) -> None:
        """Keep the list in step with a write, so the next reader does not undo or repeat it."""

        def apply(services: list[Service]) -> list[Service]:
            at = self._positions(services).get(updated.id)
            if at is None:
                return services
            replaced = list(services)  # a new list: a caller may still hold the old one
            replaced[at] = updated
            self._positions_of = replaced  # the same positions
            return replaced

        self._services.wrote(apply)

    async def remove_organization_entries(self, endpoint_ids: Sequence[str], *, max_age: float) -> list[str]:
        """Drop the organization's entries for these endpoints once no service lists them; the IDs removed.

        Deletions within the window share one look at the organization and the services (reads up to
        ``max_age`` old, kept in step with our own writes): only an entry still listed costs a ``PATCH``.
        """
        loop = asyncio.get_running_loop()
        if self._org_batch is None:
            wanted: set[str] = set()
            done: asyncio.Future[list[str]] = loop.create_future()
            self._org_batch = (wanted, done)
            loop.call_later(
                self.write_window, lambda: asyncio.ensure_future(self._flush_org(wanted, done, max_age))
            )
        wanted, done = self._org_batch
        wanted.update(endpoint_ids)
        removed = await asyncio.shield(done)
        return [i for i in removed if i in endpoint_ids]

    async def _flush_org(self, wanted: set[str], done: asyncio.Future[list[str]], max_age: float) -> None:
        self._org_batch = None
        try:
            async with self._org_turn:  # one look at a time: the next sees what this one removed
                org = await self._organization.get(max_age)
                candidates = [e for e in org.private_endpoints if e.id in wanted]
                gone: list[OrganizationPrivateEndpoint] = []
                if candidates:
                    # The list as kept (our own detaches are in it): these endpoints are deleted, so an entry
                    # a service lists since is no use to it; a fresh list would wait behind every queued call.
                    services = await self.services(max_age=max_age)
                    listed = [e.id for e in org.private_endpoints]
                    used = [s.private_endpoint_ids for s in services]
                    gone = [e for e in candidates if org_entry_removable(e.id, listed, used)]
                if gone:
                    updated = await self.client.remove_organization_private_endpoints(self.org_id, gone)
                    self._organization.wrote(lambda _: updated)
        except Exception as exc:
            done.set_exception(exc)
            return
        done.set_result([e.id for e in gone])


class Gateways:
    """One client per (URL, key) and one gateway per (URL, key, organization), made on first use.

    The secret's digest is part of the identity, so a rotated secret gets a fresh client; the clients of one
    key (any secret, any organization) share one rate limiter, ``rate_limit`` (requests, seconds; None: no
    client-side limit).
    """

    def __init__(
        self,
        *,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        batch_window: float = 0.2,
        on_call: OnCall | None = None,
        rate_limit: tuple[int, float] | None = (10, 10.0),
    ) -> None:
        self._retry = retry
        self._batch_window = batch_window
        self._on_call = on_call
        self._rate_limit = rate_limit
        self._limiters: dict[tuple[str, str], RateLimiter] = {}
        self._clients: dict[tuple[str, str, str], ClickHouseCloudClient] = {}
        self._gateways: dict[tuple[str, str, str, str], ClickHouseGateway] = {}

    def get(self, api_url: str, key_id: str, key_secret: str, org_id: str) -> ClickHouseGateway:
        ident = (api_url.rstrip("/"), key_id, hashlib.sha256(key_secret.encode()).hexdigest())
        gateway = self._gateways.get((*ident, org_id))
        if gateway is None:
            client = self._clients.get(ident)
            if client is None:
                client = self._clients[ident] = ClickHouseCloudClient(
                    api_url,
                    key_id,
                    key_secret,
                    limiter=self.limiter(api_url, key_id),
                    retry=self._retry,
                    on_call=self._on_call,
                )
            gateway = self._gateways[(*ident, org_id)] = ClickHouseGateway(
                client, org_id, write_window=self._batch_window
            )
        return gateway

    def limiter(self, api_url: str, key_id: str) -> RateLimiter:
        """The one rate limiter of an API key (its budget is the key's, whatever the secret or organization)."""
        key = (api_url.rstrip("/").lower(), key_id)
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = rate_limiter(self._rate_limit)
        return limiter

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        self._gateways.clear()
