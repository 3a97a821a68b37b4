"""The engine: one pass runs the components forward (reconcile) or releases them in reverse (cleanup).

The reconciler knows nothing of kopf: it takes a typed resource and the durable users of its VPC, and returns
an ``Outcome`` (the status to write, the Events to post, when to look again). wiring/handlers.py carries
outcomes to Kubernetes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from clickhouse_privatelink.adapters.kubernetes.secrets import ApiKey, CredentialsError
from clickhouse_privatelink.api.models import DeletionPolicy
from clickhouse_privatelink.decisions.endpoints import (
    EndpointKind,
    EndpointOutcome,
    EndpointRequest,
)
from clickhouse_privatelink.decisions.ownership import is_owned_by, is_shared_endpoint_for
from clickhouse_privatelink.decisions.plan import pick_owned_endpoint, zone_name_for
from clickhouse_privatelink.decisions.reasons import (
    PROGRESSING_REASONS,
    TERMINAL_REASONS,
    ConditionType,
    Reason,
)
from clickhouse_privatelink.decisions.status import Event, StepResult
from clickhouse_privatelink.decisions.tenancy import api_url_allowed
from clickhouse_privatelink.decisions.usage import Usage
from clickhouse_privatelink.engine import crash_points
from clickhouse_privatelink.engine.allow_list_worker import AllowListWorkers
from clickhouse_privatelink.engine.components import FORWARD, Component, ReleasePending
from clickhouse_privatelink.engine.context import (
    Intend,
    Outcome,
    Pass,
    Resolved,
    Resource,
    StepFailed,
    aws_await,
    no_intent,
)
from clickhouse_privatelink.engine.crash_points import Wrote
from clickhouse_privatelink.engine.endpoint_worker import EndpointWorkers
from clickhouse_privatelink.engine.ports import AwsPort, ClickHousePort, SecretsPort
from clickhouse_privatelink.engine.status import EngineStatus
from clickhouse_privatelink.engine.usage_book import UsageBook
from clickhouse_privatelink.engine.zone_worker import ZoneWorkers
from clickhouse_privatelink.settings import Settings

log = logging.getLogger(__name__)

# The gateway of (API URL, key, organization).
ClickHouseFactory = Callable[[str, ApiKey, str], ClickHousePort]
# The AWS gateway of (region, role).
AwsFactory = Callable[[str, str | None], AwsPort]


class Reconciler:
    """Carries one resource toward its desired state, one idempotent pass at a time."""

    def __init__(
        self,
        settings: Settings,
        secrets: SecretsPort,
        clickhouse: ClickHouseFactory,
        aws: AwsFactory,
        *,
        components: Sequence[Component] = FORWARD,
        book: UsageBook | None = None,
        intend: Intend = no_intent,
        wrote: Wrote | None = None,
        zones: ZoneWorkers | None = None,
        allow_lists: AllowListWorkers | None = None,
        endpoints: EndpointWorkers | None = None,
    ) -> None:
        """``wrote``: told after each external write (engine/crash_points.py); by default the test hook that
        ``settings.test_crash_after`` arms (a SIGKILL), or nothing. ``zones``: the process's zone workers
        (by default this reconciler's own, with the settings' Route 53 windows); ``allow_lists``: its
        allow-list workers (by default its own, with the settings' ClickHouse write window); ``endpoints``:
        its endpoint workers (by default its own)."""
        self.settings = settings
        self.secrets = secrets
        self._clickhouse = clickhouse
        self._aws = aws
        self._components = tuple(components)
        self.book = book or UsageBook()
        self._intend = intend
        if wrote is None:
            crash = settings.test_crash_after
            wrote = crash_points.kill_after(crash) if crash else crash_points.never
        self._wrote = wrote
        self.zones = zones or ZoneWorkers(
            batch_window=settings.route53_batch_window, max_window=settings.route53_max_batch_window
        )
        self.allow_lists = allow_lists or AllowListWorkers(write_window=settings.clickhouse_batch_window)
        self.endpoints = endpoints or EndpointWorkers()

    def _pass(
        self,
        res: Resource,
        indexed: Iterable[Usage],
        zone_indexed: Iterable[Usage],
        *,
        read_age: float,
        key_age: float,
    ) -> Pass:
        gateway: ClickHousePort | None = None

        async def clickhouse() -> ClickHousePort:
            nonlocal gateway
            if gateway is None:
                gateway = await self._gateway(res, key_age=key_age)
            return gateway

        aws_spec = res.spec.aws
        me = res.usage
        earlier = self.book.claimed(res.ref.uid)
        if earlier is not None and earlier.allow_list_added and not me.allow_list_added:
            # A handler may hold a body from before the status write that recorded this: never lose it.
            me = replace(me, allow_list_added=True)
        recorded = EngineStatus.from_status(res.status)
        return Pass(
            res=res,
            out=Outcome(status=recorded.copy()),
            aws=self._aws(aws_spec.region, aws_spec.role_arn),
            book=self.book,
            indexed=indexed,
            me=me,
            clickhouse=clickhouse,
            read_age=read_age,
            recorded=recorded,
            zone_indexed=zone_indexed,
            durable=recorded.copy(),
            intend=self._intend,
            wrote=self._wrote,
            zones=self.zones,
            allow_lists=self.allow_lists,
            endpoints=self.endpoints,
        )

    async def reconcile(
        self,
        res: Resource,
        *,
        indexed: Iterable[Usage] = (),
        zone_indexed: Iterable[Usage] = (),
        attempt: int = 0,
        drift: bool = False,
    ) -> Outcome:
        """Run every component forward: service, endpoint, zone, record, allow-list entry.

        A drift check (``drift``) accepts shared reads up to half a drift interval old.
        """
        read_age = self.settings.drift_interval / 2 if drift else self.settings.read_window
        # A drift check reuses the API key read within a drift interval; a changed Secret is picked up at
        # once when Secrets are watched, and whenever ClickHouse refuses the key (see _fail).
        key_age = self.settings.drift_interval if drift else self.settings.read_window
        if not res.verdict.permitted:
            # Refused before anything else: no AWS or ClickHouse call, no Secret read, no claim on shared objects.
            out = Outcome(status=EngineStatus.from_status(res.status))
            refused = StepFailed(ConditionType.READY, Reason.NOT_PERMITTED, res.verdict.message)
            self._fail(res, out, refused, attempt)
            if not res.verdict.settled:  # the namespace's labels are not known yet: look again soon
                out.requeue_after = self.settings.poll_interval
            return out
        p = self._pass(res, indexed, zone_indexed, read_age=read_age, key_age=key_age)
        self.book.claim(p.me)
        try:
            resolved = Resolved()
            for component in self._components:
                resolved = resolved.adding(await component.apply(p, resolved))
            if not res.held():
                # Everything it uses was there (others made it): its status is about to name them, so the
                # finalizer goes on first, as it does with the first write of a pass that makes something.
                await p.before_write(ConditionType.READY)
        except StepFailed as failed:
            self._fail(res, p.out, failed, attempt)
        if not res.held():
            # It made nothing and holds nothing; gone, it would go without a cleanup pass to drop its claim.
            self.book.drop(res.ref.uid)
        out = p.out
        out.done = out.ready().ok
        if not out.done and out.requeue_after is None:
            out.requeue_after = self.settings.poll_interval  # e.g. an endpoint still pending or modifying
        return out

    async def cleanup(
        self,
        res: Resource,
        *,
        indexed: Iterable[Usage] = (),
        zone_indexed: Iterable[Usage] = (),
        attempt: int = 0,
    ) -> Outcome:
        """Release every component in reverse; ``done`` once nothing of ours that only we use is left."""
        if not res.verdict.permitted and not any(res.status.get(k) for k in MADE_FIELDS):
            # Refused from the start: nothing was made, so nothing is looked for (no call with what it names).
            self.book.drop(res.ref.uid)
            return Outcome(done=True)
        # Cleanup reads the Secret as it is now: a Secret deleted first means the key is gone (said in an Event).
        p = self._pass(res, indexed, zone_indexed, read_age=self.settings.read_window, key_age=0.0)
        p.learn(deleting=True)
        out = p.out
        try:
            await _discover(p)
            retained = res.spec.deletion_policy is DeletionPolicy.RETAIN and await self._retain(p)
        except StepFailed as failed:
            self._fail(res, out, failed, attempt)
            return out
        if not retained:
            try:
                for component in reversed(self._components):
                    await component.release(p)
            except ReleasePending:
                out.requeue_after = self.settings.poll_interval
                return out
            except StepFailed as failed:
                self._fail(res, out, failed, attempt)
                return out
        out.done = True
        self.book.drop(res.ref.uid)
        return out

    async def _retain(self, p: Pass) -> bool:
        """deletionPolicy Retain: keep what this resource is the last user of; True when that is all it does.

        A Retain never pins what another user is responsible for: while other resources use the endpoint, this
        one lets go as on Delete (its own record and allow-list entry go, the shared ones stay with their
        users), so that nothing is left pointing at an endpoint they will delete one day.
        """
        res = p.res
        endpoint_id = p.out.status.vpc_endpoint_id
        # None for an adopted endpoint: never marked, nobody else's to hold.
        key = p.me.endpoint_key(p.cluster)
        if key is not None:
            # The key's round decides it with every other request of the key (a new user joining, another
            # leaving) and puts the mark on: nothing is read or written here.
            request = EndpointRequest(EndpointKind.RETAIN, p.me)
            answer = await aws_await(
                ConditionType.VPC_ENDPOINT_READY,
                p.endpoints.get(p.aws, key).ask(request, max_age=p.read_age, users=p.users),
            )
            if answer.outcome is EndpointOutcome.NOT_RETAINED:
                who = (
                    f"also used by {', '.join(u.resource for u in answer.holders)}, who are responsible for it"
                    if answer.holders
                    else answer.message
                )
                p.out.event(
                    "RetainNotApplied",
                    f"deletionPolicy is Retain, but endpoint {endpoint_id} is {who}: this resource's own record "
                    "and allow-list entry are removed",
                )
                return False
            legacy = answer.endpoint is None and bool(p.out.status.vpc_endpoint_owned) and endpoint_id
            if answer.endpoint is not None:  # the key's, marked by the round whatever the status names
                endpoint_id = answer.endpoint.id
        else:
            legacy = False
        if legacy:
            # An endpoint made for this resource alone before endpoints were shared: its own to mark.
            managed = await p.managed_endpoints()
            if any(e.id == endpoint_id and is_owned_by(e.tags, res.ref) for e in managed):
                await aws_await(
                    ConditionType.VPC_ENDPOINT_READY,
                    p.aws.mark_retained(res.spec.aws.vpc_id, str(endpoint_id), res.ref.key),
                )
        left = f"{endpoint_id or 'no endpoint'}, its DNS record and allow-list entry"
        if res.status.get("publicAccess"):
            # Its publicAccess change is part of the connection it leaves: not undone, and no longer recorded.
            left += ", and the service's IP access list as publicAccess set it"
        p.out.event("Retained", f"deletionPolicy is Retain: left {left}")
        return True

    async def _gateway(self, res: Resource, *, key_age: float) -> ClickHousePort:
        spec = res.spec.clickhouse
        if not api_url_allowed(spec.api_url, self.settings.clickhouse_api_urls):
            raise StepFailed(
                ConditionType.SERVICE_RESOLVED,
                Reason.API_URL_NOT_ALLOWED,
                f"apiUrl {spec.api_url} is not one of the ClickHouse API URLs this operator may call "
                f"({', '.join(self.settings.clickhouse_api_urls)}): its administrator can allow it "
                "(CHPL_CLICKHOUSE_API_URLS, the chart's clickhouse.allowedApiUrls)",
            )
        try:
            key = await self.secrets.api_key(
                res.ref.namespace,
                spec.credentials_secret_ref,
                max_age=key_age,
                require_opt_in=res.verdict.require_opt_in,
            )
        except CredentialsError as exc:
            reason = Reason.CREDENTIALS_SECRET_NOT_FOUND if exc.missing else Reason.CREDENTIALS_INVALID
            raise StepFailed(ConditionType.SERVICE_RESOLVED, reason, str(exc)) from None
        return self._clickhouse(spec.api_url, key, spec.organization_id)

    def _fail(self, res: Resource, out: Outcome, failed: StepFailed, attempt: int) -> None:
        out.steps.append(StepResult(failed.step, False, failed.reason, failed.message))
        if failed.reason is Reason.UNAUTHORIZED:  # perhaps rotated: read the Secret again next time
            self.secrets.forget(res.ref.namespace, res.spec.clickhouse.credentials_secret_ref.name)
        if failed.reason in TERMINAL_REASONS:
            # Backs off (doubling, up to four intervals); a fix never waits for it: a new generation, a changed
            # Secret or policy, or a restart starts a pass at once (wiring/progress.py).
            out.requeue_after = self.settings.error_retry_interval * 2 ** min(attempt, 2)
            out.events.append(Event("Warning", failed.reason.value, failed.message))
        elif failed.retry_after is not None:
            out.requeue_after = min(failed.retry_after, self.settings.max_backoff)
        elif failed.reason in (Reason.THROTTLED, Reason.UPSTREAM_UNAVAILABLE):
            out.requeue_after = self.settings.backoff(attempt)
        else:
            out.requeue_after = self.settings.poll_interval
        if failed.reason not in PROGRESSING_REASONS and failed.reason not in TERMINAL_REASONS:
            log.warning("unclassified failure reason %s", failed.reason)


# Status fields that say the resource made or found something outside: cleanup must look for it.
MADE_FIELDS = ("vpcEndpointId", "hostedZoneId", "serviceId", "allowListEntryAdded")


async def _discover(p: Pass) -> None:
    """Find by tags what the status does not name: the endpoint of this resource's key, its VPC's zone.

    The status names the service (written before any external write), but a process killed right after
    creating the endpoint or the zone had not written their IDs yet. Shared reads only (one per VPC), and
    only for such a resource: the mass deletion of resources whose status names everything reads nothing.
    """
    me = p.me
    key = me.endpoint_key(p.cluster)
    if key is not None and me.endpoint_id is None:
        found = pick_owned_endpoint(
            [
                e
                for e in await p.managed_endpoints()
                if is_shared_endpoint_for(e.tags, key) and e.state != "deleted"
            ]
        )
        if found is not None:
            p.learn(endpoint_id=found.id)
            p.out.status.vpc_endpoint_id, p.out.status.vpc_endpoint_owned = found.id, True
    if me.dns_route53 and me.hostname and not me.hosted_zone_id:
        aws_spec = p.res.spec.aws
        zone = await aws_await(
            ConditionType.DNS_READY,
            p.aws.private_zone(
                zone_name_for(me.hostname),
                vpc_id=aws_spec.vpc_id,
                vpc_region=aws_spec.region,
                max_age=p.read_age,
            ),
        )
        if zone is not None:
            p.learn(hosted_zone_id=zone.id)
            p.out.status.hosted_zone_id = zone.id


__all__ = ["AwsFactory", "ClickHouseFactory", "Event", "Outcome", "Reconciler", "Resource", "StepFailed"]
