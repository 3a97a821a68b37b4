"""One operator process's settings and state, built once at start-up and carried in kopf's memo.

wiring/runner.py reads the settings, builds a ``ProcessState`` from them and hands it to ``kopf.run`` as
``memo.state``; every handler takes what it needs from there. Nothing here is kept in module globals, so two
states (two operators in one test process) share nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from clickhouse_privatelink import constants as c
from clickhouse_privatelink import metrics
from clickhouse_privatelink.adapters.aws.clients import AwsClients, AwsModels
from clickhouse_privatelink.adapters.aws.gateway import AwsGateways
from clickhouse_privatelink.adapters.clickhouse.client import RetryPolicy
from clickhouse_privatelink.adapters.clickhouse.gateway import ClickHouseGateway, Gateways
from clickhouse_privatelink.adapters.kubernetes.api import (
    ConnectionHolder,
    custom_object_path,
    json_patch,
    merge_patch,
)
from clickhouse_privatelink.adapters.kubernetes.secrets import ApiKey, SecretReader
from clickhouse_privatelink.adapters.network.probe import PlacementFinder, ProbeConfig, Prober
from clickhouse_privatelink.decisions import public_access
from clickhouse_privatelink.decisions.intent import encode_intent
from clickhouse_privatelink.decisions.reachability import Placement
from clickhouse_privatelink.decisions.status import WrittenStatus
from clickhouse_privatelink.engine.allow_list_worker import AllowListWorkers
from clickhouse_privatelink.engine.components import FORWARD
from clickhouse_privatelink.engine.endpoint_worker import EndpointWorkers
from clickhouse_privatelink.engine.public_access_component import PublicAccessComponent
from clickhouse_privatelink.engine.reachability_component import ReachabilityComponent
from clickhouse_privatelink.engine.reconciler import Reconciler, Resource
from clickhouse_privatelink.engine.status import EngineStatus
from clickhouse_privatelink.engine.zone_worker import ZoneWorkers
from clickhouse_privatelink.settings import Settings
from clickhouse_privatelink.wiring import index
from clickhouse_privatelink.wiring.drift import DriftScheduler

# Above this many create, update and delete passes in flight, drift checks step aside until the next
# interval: they are the least urgent work, and a thousand resources created or deleted at once should not
# share the event loop and the API budget with the drift checks of everything else.
DRIFT_STEPS_ASIDE_AT = 50


log = logging.getLogger(__name__)


@dataclass
class Hold:
    """A resource a pass has in hand without the operator's finalizer: as the pass read it, to add the
    finalizer to (conditional on that version) before the pass's first write (``ProcessState.hold_first``)."""

    version: str
    finalizers: list[str]
    annotated: bool  # the resource has annotations (the JSON patch adds to them, or adds the map)
    first: bool  # no pass has ended yet (no observedGeneration): the first intent can go in the annotation
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)


def hold_operations(hold: Hold, uid: str, intent: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The JSON patch that adds the finalizer to the resource as ``hold`` read it, with ``intent`` (status
    fields) in its intent annotation when given."""
    operations: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": hold.version},
        {"op": "add", "path": "/metadata/finalizers", "value": [*hold.finalizers, c.FINALIZER]},
    ]
    if intent is not None:
        value = encode_intent(uid, intent)
        if hold.annotated:
            key = c.ANNOTATION_INTENT.replace("~", "~0").replace("/", "~1")  # a JSON pointer's escapes
            operations.append({"op": "add", "path": f"/metadata/annotations/{key}", "value": value})
        else:
            operations.append(
                {"op": "add", "path": "/metadata/annotations", "value": {c.ANNOTATION_INTENT: value}}
            )
    return operations


def _warmed(loading: asyncio.Future[None]) -> None:
    """botocore's models could not be loaded ahead: each region's first clients load them (and fail alike)."""
    if not loading.cancelled() and (exc := loading.exception()) is not None:
        log.warning("could not load botocore's service models at start: %s", exc)


class ServiceUsers:
    """The resources with a publicAccess setting, from the resource index as kopf hands it to handlers (the same
    live object every time: wiring/index.py)."""

    def __init__(self) -> None:
        self.index: index.Index = {}

    def of(self, service_id: str) -> list[public_access.User]:
        return index.public_access_users(self.index, service_id)

    def follow(self, handler_kwargs: Mapping[str, Any]) -> None:
        resources = handler_kwargs.get(index.NAME)
        if resources is not None:  # kopf always passes it; unit tests of other handlers may not
            self.index = resources


class ProcessState:
    """The settings, the reconciler with its gateways, and what the handlers remember between calls."""

    def __init__(self, settings: Settings, *, metrics_port: int = 0) -> None:
        self.settings = settings
        self.metrics_port = metrics_port
        # One pass at a time per resource (by UID).
        self.locks: dict[str, asyncio.Lock] = {}
        # The Events a resource's cleanup posted: said once, though cleanup may take several passes.
        self.posted: dict[str, set[tuple[str, str, str]]] = {}
        # Resources whose create/update handler is done, and when each one's drift check is due.
        self.drift = DriftScheduler(settings.drift_interval)
        # Create, update and delete passes in flight (waiting their turn included).
        self.busy = 0
        # Our status writes the watch has not brought back yet.
        self.written = WrittenStatus()
        # Resources whose pass has them in hand without the finalizer yet (by UID): it goes on with the pass's
        # first write (``hold_first``).
        self.holds: dict[str, Hold] = {}
        # Each resource's Ready status and deletion for the resource gauges (the Prometheus registry itself
        # is process-wide).
        self.resource_book = metrics.ResourceBook()
        self.public_users = ServiceUsers()
        # The Kubernetes connection kopf logged in with (the login handler keeps it here), for the Secret
        # reads and our own status and annotation writes.
        self.connection = ConnectionHolder()
        self.clickhouse = Gateways(
            retry=RetryPolicy(
                backoff_base=settings.clickhouse_backoff_base,
                backoff_max=settings.clickhouse_backoff_max,
                reset_padding=settings.clickhouse_reset_padding,
            ),
            batch_window=settings.clickhouse_batch_window,
            on_call=metrics.record_clickhouse_call,
            rate_limit=settings.clickhouse_rate_limit,
        )
        # botocore's service models, loaded once for every region's and role's clients (at start: ``start``).
        self.aws_models = AwsModels()
        self.aws = AwsGateways(functools.partial(AwsClients, models=self.aws_models))
        self._warming: asyncio.Future[None] | None = None
        # One worker per (gateway, zone) writes the zone's records, in rounds gathered by the Route 53 windows.
        self.zones = ZoneWorkers(
            batch_window=settings.route53_batch_window, max_window=settings.route53_max_batch_window
        )
        # One worker per (gateway, service) changes the service's allow list, in rounds gathered by the
        # ClickHouse write window.
        self.allow_lists = AllowListWorkers(write_window=settings.clickhouse_batch_window)
        # One worker per (gateway, endpoint key) makes, changes and deletes the key's shared VPC endpoint.
        self.endpoints = EndpointWorkers()
        self.placement = PlacementFinder(settings)
        self._placement_lookup: asyncio.Future[Placement] | None = None
        # The Reachable check runs last, after every other component (engine/reachability_component.py).
        reachability = ReachabilityComponent(
            Prober(ProbeConfig.from_settings(settings)),
            self.placement,
            required=settings.reachability_required,
        )
        # The service's IP access list (spec.clickhouse.publicAccess) after the allow-list entry; nothing for
        # resources left at Unchanged (engine/public_access_component.py).
        public = PublicAccessComponent(
            self.public_users.of,
            self._write_public_access,
            retry_after=settings.poll_interval,
            error_retry_after=settings.error_retry_interval,
        )
        self.reconciler = Reconciler(
            settings,
            SecretReader(self.connection),
            self._clickhouse_gateway,
            self.aws.get,
            components=(*FORWARD, public, reachability),
            intend=self._intend,
            zones=self.zones,
            allow_lists=self.allow_lists,
            endpoints=self.endpoints,
        )

    def start(self) -> None:
        """What needs the running loop, at kopf's start-up: the metrics server, where the operator runs (at most
        a second's look at the instance metadata service) and botocore's models (in a thread), now rather than
        by the first pass."""
        self._placement_lookup = asyncio.ensure_future(self.placement.placement())
        self._warming = asyncio.get_running_loop().run_in_executor(None, self.aws_models.warm)
        self._warming.add_done_callback(_warmed)
        if self.metrics_port:
            metrics.serve(self.metrics_port)

    async def close(self) -> None:
        """Stop the drift checks and close the ClickHouse clients and the Kubernetes session (kopf's cleanup at
        exit)."""
        await self.drift.stop()
        await self.clickhouse.close()
        await self.connection.aclose()

    def lock(self, uid: str) -> asyncio.Lock:
        """The resource's own lock: one pass at a time."""
        return self.locks.setdefault(uid, asyncio.Lock())

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        """Count a create, update or delete pass while it runs (drift checks step aside when there are many)."""
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1

    def drift_steps_aside(self) -> bool:
        """Whether drift checks wait for the next interval: too many other passes are in flight."""
        return self.busy > DRIFT_STEPS_ASIDE_AT

    def forget(self, uid: str) -> None:
        """The resource is gone: nothing of it is kept."""
        self.locks.pop(uid, None)
        self.posted.pop(uid, None)
        self.written.drop(uid)
        self.drift.forget(uid)

    async def write_status_now(
        self, namespace: str, name: str, uid: str, fields: dict[str, Any], shown: dict[str, Any] | None = None
    ) -> None:
        """Write status fields now, mid-pass: an intent before the external write it announces (the pass's own
        status write comes later). ``shown``: the status as it reads afterwards, where it differs from ``fields``."""
        path = custom_object_path(c.GROUP, c.VERSION, namespace, c.PLURAL, name) + "/status"
        await merge_patch(path, {"status": fields}, connection=self.connection)
        self.written.record(uid, fields if shown is None else shown)

    async def hold_first(
        self, namespace: str, name: str, uid: str, intent: Mapping[str, Any] | None = None
    ) -> bool:
        """Add the operator's finalizer to a resource a pass has in hand without it (``holds``), conditional on
        the version the pass read (refused with 409 or 422 if it has changed since, as kopf's own finalizer
        patch is; 404 once it is gone). ``intent``: status fields to write with it. True when they went with
        it, in the intent annotation (decisions/intent.py), in the same PATCH: only before the first pass has
        ended. False when the resource holds the finalizer already, or the fields are still to be written.
        """
        hold = self.holds.get(uid)
        if hold is None:
            return False
        async with hold.turn:  # parts of a pass side by side: one adds it, the others find it done
            if self.holds.get(uid) is not hold:
                return False
            annotate = bool(intent) and hold.first
            path = custom_object_path(c.GROUP, c.VERSION, namespace, c.PLURAL, name)
            await json_patch(
                path, hold_operations(hold, uid, intent if annotate else None), connection=self.connection
            )
            del self.holds[uid]
        # Not among the status's writes (``written``): the pass's end writes them there (the next pass reads
        # them from the annotation, on a body at least as new as this PATCH: kopf's own PATCH came after it).
        return annotate

    async def annotate(self, namespace: str, name: str, key: str, value: str) -> None:
        """Set one annotation on a resource (a changed Secret or policy: kopf sees an update and passes it)."""
        path = custom_object_path(c.GROUP, c.VERSION, namespace, c.PLURAL, name)
        await merge_patch(path, {"metadata": {"annotations": {key: value}}}, connection=self.connection)

    def _clickhouse_gateway(self, api_url: str, key: ApiKey, org_id: str) -> ClickHouseGateway:
        return self.clickhouse.get(api_url, key.key_id, key.key_secret, org_id)

    async def _intend(self, res: Resource, fields: EngineStatus) -> None:
        """What a pass has learned, before its next external write (engine: Pass.intend); the finalizer first
        on a resource that does not hold it yet, in the same PATCH as the fields on a new one."""
        ref = res.ref
        written = fields.to_json()
        if await self.hold_first(ref.namespace, ref.name, ref.uid, written) or not written:
            return
        await self.write_status_now(ref.namespace, ref.name, ref.uid, written)

    async def _write_public_access(self, key: str, uid: str, record: dict[str, Any] | None) -> None:
        """``status.publicAccess`` before its PATCH (a merge patch of null removes it), on a resource holding
        the finalizer (a pass's own resource may get it now)."""
        namespace, name = key.split("/", 1)
        await self.hold_first(namespace, name, uid)
        shown = None if record is None else {k: v for k, v in record.items() if v is not None}
        await self.write_status_now(namespace, name, uid, {"publicAccess": record}, {"publicAccess": shown})
