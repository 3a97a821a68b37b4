"""What one pass works with and produces: the resource, its outcome, and the calls' error translation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from clickhouse_privatelink.adapters.clickhouse.client import (
    ClickHouseApiError,
    Forbidden,
    NotFound,
    PrivateEndpointConfig,
    Service,
    Unauthorized,
)
from clickhouse_privatelink.adapters.kubernetes.api import KubernetesApiError
from clickhouse_privatelink.api.models import ClickHousePrivateLinkSpec
from clickhouse_privatelink.decisions.ownership import ResourceRef
from clickhouse_privatelink.decisions.plan import ObservedEndpoint
from clickhouse_privatelink.decisions.reasons import ConditionType, Reason
from clickhouse_privatelink.decisions.status import Event, StepResult, summarise_ready
from clickhouse_privatelink.decisions.tenancy import Verdict
from clickhouse_privatelink.decisions.usage import Usage, joined
from clickhouse_privatelink.engine.allow_list_worker import AllowListWorkers
from clickhouse_privatelink.engine.crash_points import Wrote
from clickhouse_privatelink.engine.endpoint_worker import EndpointWorkers
from clickhouse_privatelink.engine.ports import AwsError, AwsPort, ClickHousePort
from clickhouse_privatelink.engine.status import EngineStatus
from clickhouse_privatelink.engine.usage_book import UsageBook
from clickhouse_privatelink.engine.zone_worker import ZoneWorkers

T = TypeVar("T")


@dataclass
class Outcome:
    """What a pass found and did: status fields, conditions, Events, and when to look again."""

    status: EngineStatus = field(default_factory=EngineStatus)
    steps: list[StepResult] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    done: bool = False  # cleanup finished (deletion) / everything Ready (reconcile)
    changes: list[str] = field(default_factory=list)  # what this pass changed, for drift metrics

    def ready(self) -> StepResult:
        return summarise_ready(self.steps)

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        self.events.append(Event("Warning" if warning else "Normal", reason, message))


@dataclass(frozen=True)
class Resource:
    """The parts of a ClickHousePrivateLink a pass needs."""

    ref: ResourceRef
    spec: ClickHousePrivateLinkSpec
    generation: int
    status: Mapping[str, Any]
    usage: Usage  # what it uses, as its spec and status say (the same record the index holds)
    # Whether the resource is being deleted now (its live object, not the snapshot a pass began with): a pass
    # that began before a deletion never creates what the deletion is about to remove.
    deleting: Callable[[], bool] = lambda: False
    # The tenancy policy's verdict on it (wiring/handlers.py decides it from the policy index for every pass;
    # the default, everything permitted, serves only tests that drive the engine directly).
    verdict: Verdict = field(default_factory=lambda: Verdict(True, "", require_opt_in=False))
    # Whether the operator's finalizer is on the resource now. A new resource's first pass adds it with its
    # first intent (``Pass.before_write``), one PATCH for both, before anything outside is made for it.
    held: Callable[[], bool] = lambda: True


# Write the present status fields on the resource now, mid-pass (wiring/state.py: a merge patch of /status), with
# the operator's finalizer first where the resource does not hold it yet (then in one PATCH of the resource,
# the fields in its intent annotation: decisions/intent.py). No fields: the finalizer alone.
Intend = Callable[[Resource, EngineStatus], Awaitable[None]]

# The status fields that say what a resource uses (decisions.usage reads them): written before an external
# write whenever the pass has learned one the resource does not show yet.
INTENT_FIELDS: tuple[str, ...] = (
    "service_id",
    "service_region",
    "endpoint_service_id",
    "private_dns_hostname",
    "vpc_endpoint_id",
    "vpc_endpoint_owned",
    "hosted_zone_id",
)


async def no_intent(res: Resource, fields: EngineStatus) -> None:
    """Where nothing is durable (in-process engine tests): the pass goes on."""


class StepFailed(Exception):
    """A step cannot go on this pass: why, and whether to look again soon or slowly."""

    def __init__(
        self,
        step: ConditionType,
        reason: Reason,
        message: str,
        *,
        retry_after: float | None = None,
        upstream_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.step = step
        self.reason = reason
        self.message = message
        self.retry_after = retry_after
        self.upstream_status = upstream_status


@dataclass(frozen=True, slots=True)
class ResolvedService:
    """The service and its PrivateLink configuration (ServiceComponent)."""

    service: Service
    config: PrivateEndpointConfig


@dataclass(frozen=True, slots=True)
class EndpointResult:
    """The VPC endpoint in use, as AWS showed it (EndpointComponent)."""

    observed: ObservedEndpoint


@dataclass(frozen=True, slots=True)
class ZoneResult:
    """The private zone that holds the hostname's record (NamedZoneComponent, ZoneComponent)."""

    zone_id: str


# What a forward component found for the components after it (None: nothing).
Found = ResolvedService | EndpointResult | ZoneResult | None


@dataclass(frozen=True, slots=True)
class Resolved:
    """What the forward components have found so far in a pass: the reconciler adds each one's result and
    hands the whole to the next (a field is None until its component has found it)."""

    service: ResolvedService | None = None
    endpoint: EndpointResult | None = None
    zone: ZoneResult | None = None

    def adding(self, found: Found) -> Resolved:
        """These results with ``found`` added (a later result of a kind replaces an earlier one)."""
        if found is None:
            return self
        if isinstance(found, ResolvedService):
            return replace(self, service=found)
        if isinstance(found, EndpointResult):
            return replace(self, endpoint=found)
        return replace(self, zone=found)


@dataclass
class Pass:
    """One reconcile or cleanup pass of one resource: its inputs, shared services, and the outcome."""

    res: Resource
    out: Outcome
    aws: AwsPort
    book: UsageBook
    indexed: Iterable[Usage]  # the durable users of this resource's VPC (the index's, as they are when read)
    me: Usage
    clickhouse: Callable[[], Awaitable[ClickHousePort]]
    read_age: float  # how old a shared read (services list, endpoints) may be for this pass
    recorded: EngineStatus  # the resource's status as the pass began (``out.status`` starts as a copy)
    zone_indexed: Iterable[Usage] = ()  # the durable users of this resource's zone (any VPC)
    # The status as written (its intent included): what ``before_write`` need not write again.
    durable: EngineStatus = field(default_factory=EngineStatus)
    intend: Intend = no_intent
    wrote: Wrote = lambda point: None  # told after each external write (engine/crash_points.py)
    # The process's zone workers: a zone's records are written only in its worker's rounds.
    zones: ZoneWorkers = field(default_factory=ZoneWorkers)
    # The process's allow-list workers: a service's allow list is changed only in its worker's rounds.
    allow_lists: AllowListWorkers = field(default_factory=AllowListWorkers)
    # The process's endpoint workers: a shared endpoint is made, changed and deleted only in its key's rounds.
    endpoints: EndpointWorkers = field(default_factory=EndpointWorkers)
    # One intent write at a time: parts of a pass that run side by side (Together) write it once between them.
    _intent_turn: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    @property
    def cluster(self) -> str:
        return self.res.ref.cluster

    def users(self) -> list[Usage]:
        """Everyone using objects in this VPC now: the index, fresher claims, and this pass's own view."""
        return self.book.users(self.indexed, self.me.region, self.me.vpc_id)

    def zone_users(self) -> list[Usage]:
        """Everyone writing into this resource's zone: its VPC's users, and the zone's from other VPCs.

        When no other VPC writes into the zone, the VPC's users as the book hands them out, with their lookups
        (every leaving pass of a mass deletion asks, of a thousand users: nothing here calls Python per user).
        """
        return joined(self.users(), self.zone_indexed)

    async def before_write(self, step: ConditionType, *, also: tuple[str, ...] = ()) -> None:
        """Intent before a side effect (crossplane's create-pending): what the pass has learned that the
        resource does not show yet is written on it before an external write, so a process killed right
        after that write leaves a status that names what it was making (and counts this resource as a user).

        A pass whose status already names it all writes nothing here: only first passes pay this write. A
        resource without the operator's finalizer gets it in the same write (``Resource.held``), fields or not.
        ``also``: fields this write needs durable besides (an adopted endpoint's ``allow_list_entry_added``).
        Parts of the pass running side by side take turns: the second finds written what the first wrote.
        """
        async with self._intent_turn:
            names = [
                name
                for name in INTENT_FIELDS + also
                if (value := getattr(self.out.status, name)) is not None
                and getattr(self.durable, name) != value
            ]
            holding = not self.res.held()
            if not names and not holding:
                return
            wanted = EngineStatus()  # only the fields to write are present
            for name in names:
                setattr(wanted, name, getattr(self.out.status, name))
            try:
                await self.intend(self.res, wanted)
            except KubernetesApiError as exc:
                if holding and exc.status == 404:
                    raise StepFailed(
                        step, Reason.DELETING, "deleted before anything was made for it"
                    ) from None
                if holding and exc.status in (409, 422):
                    # The finalizer is added to the resource as the pass read it (kopf's own is, too).
                    raise StepFailed(
                        step,
                        Reason.UPSTREAM_UNAVAILABLE,
                        "the resource changed since this pass read it: passed again from its newer version",
                        retry_after=1.0,
                    ) from None
                raise StepFailed(
                    step, Reason.UPSTREAM_UNAVAILABLE, f"could not record intent on the resource first: {exc}"
                ) from None
            for name in names:
                setattr(self.durable, name, getattr(wanted, name))

    def learn(self, **values: Any) -> None:
        """Update what this resource uses (and claim it) as the pass discovers it."""
        self.me = replace(self.me, **values)
        self.book.claim(self.me)

    async def managed_endpoints(self, *, fresh: bool = False) -> list[ObservedEndpoint]:
        """The operator's endpoints in this VPC: one DescribeVpcEndpoints per VPC, shared by its resources."""
        return await aws_await(
            ConditionType.VPC_ENDPOINT_READY,
            self.aws.endpoints(self.res.spec.aws.vpc_id, max_age=0.0 if fresh else self.read_age),
        )


def aws_failure(step: ConditionType, exc: AwsError) -> StepFailed:
    """The failed step an AWS error means (reason and message from the error's classification)."""
    return StepFailed(step, exc.reason, f"AWS {exc.message}")


async def aws_await(step: ConditionType, call: Awaitable[T]) -> T:
    """Await an AWS call (through the gateway); turn AWS errors into a failed step."""
    try:
        return await call
    except AwsError as exc:
        raise aws_failure(step, exc) from None


async def clickhouse_call(
    step: ConditionType, call: Awaitable[T], *, private_link: bool = False, write: bool = False
) -> T:
    """Await a ClickHouse API call; turn its errors into a failed step with the upstream message."""
    try:
        return await call
    except Unauthorized as exc:
        raise StepFailed(
            step,
            Reason.UNAUTHORIZED,
            f"ClickHouse rejected the API key (401 {exc.message}): check keyId and keySecret",
        ) from None
    except Forbidden as exc:
        if private_link:
            raise StepFailed(
                step,
                Reason.PRIVATE_LINK_NOT_AVAILABLE,
                f"PrivateLink is not available to this service (403 {exc.message})",
            ) from None
        hint = ": writing needs an Admin key (a Developer key is read-only)" if write else ""
        raise StepFailed(
            step, Reason.FORBIDDEN, f"ClickHouse refused the request (403 {exc.message}){hint}"
        ) from None
    except NotFound as exc:
        raise StepFailed(
            step,
            Reason.SERVICE_NOT_FOUND,
            f"the service was not found (404 {exc.message})",
            upstream_status=404,
        ) from None
    except ClickHouseApiError as exc:
        if exc.retryable:
            reason = Reason.THROTTLED if exc.status == 429 else Reason.UPSTREAM_UNAVAILABLE
            raise StepFailed(step, reason, f"ClickHouse API: {exc}", retry_after=exc.retry_after) from None
        if private_link and 400 <= exc.status < 500:
            raise StepFailed(
                step,
                Reason.PRIVATE_LINK_NOT_AVAILABLE,
                f"PrivateLink is not available ({exc.status} {exc.message})",
            ) from None
        raise StepFailed(step, Reason.CLICKHOUSE_REQUEST_REJECTED, f"ClickHouse API: {exc}") from None
