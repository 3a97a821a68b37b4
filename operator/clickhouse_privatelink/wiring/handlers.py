"""kopf wiring: thin handlers that hand a resource to the reconciler and write its outcome back.

Nothing registers at import: ``register`` puts the handlers on a registry built from the settings (the drift
interval, the Secret watch), and each handler takes the process's state from kopf's memo (wiring/state.py).
"""

from __future__ import annotations

import datetime
import functools
import logging
import time
from collections.abc import Hashable, Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from clickhouse_privatelink import constants as c
from clickhouse_privatelink import metrics
from clickhouse_privatelink.adapters.kubernetes.login import login_for_kopf_and_secrets
from clickhouse_privatelink.api.models import ClickHousePrivateLinkPolicySpec, ClickHousePrivateLinkSpec
from clickhouse_privatelink.decisions.intent import reads_intent, recorded_status
from clickhouse_privatelink.decisions.ownership import ResourceRef
from clickhouse_privatelink.decisions.reasons import ConditionType, Reason
from clickhouse_privatelink.decisions.status import (
    Event,
    StepResult,
    condition,
    fold_events,
    steps_to_conditions,
)
from clickhouse_privatelink.decisions.tenancy import Policy, applies_to, decide
from clickhouse_privatelink.decisions.usage import usage_from_body
from clickhouse_privatelink.engine.reconciler import Outcome, Reconciler, Resource
from clickhouse_privatelink.settings import Settings
from clickhouse_privatelink.wiring import index
from clickhouse_privatelink.wiring.progress import (
    DIFF_BASE_ANNOTATION_KEY,
    DIFF_BASE_FIELD,
    KOPF_STATUS_FIELDS,
    StatusEssenceDiffBaseStorage,
    StatusProgressStorage,
)
from clickhouse_privatelink.wiring.state import Hold, ProcessState

RESOURCE = (c.GROUP, c.VERSION, c.PLURAL)
POLICY = (c.GROUP, c.VERSION, c.POLICY_PLURAL)
SECRETS = ("", "v1", "secrets")
log = logging.getLogger(__name__)


def _state(memo: kopf.Memo) -> ProcessState:
    """The process's settings and state (wiring/state.py), put in kopf's memo by wiring/runner.py."""
    state: ProcessState = memo.state
    return state


def log_in(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo | None:
    """kopf's own login, kept for the process's Secret reads and status writes too."""
    return login_for_kopf_and_secrets(settings, _state(memo).connection)


async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    """kopf's own settings, and what the process's state needs the running loop for."""
    settings.persistence.finalizer = c.FINALIZER
    # A fix (new generation, changed Secret or policy, restart) starts a pass at once, whatever retry time a
    # failed pass stored; the records in the status, so a retrying pass writes one status PATCH
    # (wiring/progress.py).
    settings.persistence.progress_storage = StatusProgressStorage()
    # The diff-base in the status: a pass's last write is one status PATCH (wiring/progress.py).
    settings.persistence.diffbase_storage = StatusEssenceDiffBaseStorage()
    # Our own Events are posted explicitly; kopf's logs become Events only from warnings up (no "Handler
    # succeeded" or "Timer succeeded" Event on every pass: a steady state writes nothing).
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.execution.max_workers = 20
    state = _state(memo)
    state.start()
    # The indices are live objects: the ones handed to this start-up handler are those every handler gets.
    state.drift.start(functools.partial(check_drift, state, dict(kwargs)))


async def close_clients(memo: kopf.Memo, **_: Any) -> None:
    await _state(memo).close()


async def watch_opted_in_secrets_only(settings: kopf.OperatorSettings, **_: Any) -> None:
    """The Secret watch asks the API server for opted-in Secrets only (a server-side label selector): no
    other Secret is ever sent to the operator."""
    settings.watching.label_selectors[SECRETS] = f"{c.LABEL_API_KEY}=true"


async def secret_changed(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """A used API-key Secret changed: read it again and reconcile the resources that use it now."""
    namespace, name = body.metadata.namespace or "", body.metadata.name or ""
    users = index.secret_users(index.of(kwargs), namespace, name)
    if not users or kwargs["event"].get("type") is None:
        return  # not used, or the listing at start-up (the resume handlers reconcile everything then)
    state = _state(memo)
    state.reconciler.secrets.forget(namespace, name)
    version = body.metadata.get("resourceVersion") or ""
    for resource in users:
        await state.annotate(namespace, resource, c.ANNOTATION_SECRET_VERSION, version)


def _policy(body: kopf.Body) -> Policy | None:
    """The policy as the operator reads it; None (it grants nothing) when its spec is invalid."""
    name = body.metadata.name or ""
    try:
        return Policy(name, ClickHousePrivateLinkPolicySpec.model_validate(dict(body.spec)))
    except ValidationError as exc:
        # The CRD's schema refuses such specs; one that slipped through grants nothing.
        log.warning("ignoring %s %s: %s", c.POLICY_KIND, name, exc.errors()[0]["msg"])
        return None


# The index functions are coroutines, though they never await: kopf runs a plain function in its thread pool,
# a hop there and back for every index on every watch event (at N=1000, more CPU than the indexing itself).
async def chpl_policies(body: kopf.Body, **_: Any) -> dict[str, Policy]:
    """Every ClickHousePrivateLinkPolicy (cluster-scoped), validated: one key, read by every pass."""
    policy = _policy(body)
    return {"all": policy} if policy is not None else {}


async def chpl_namespace_labels(body: kopf.Body, **_: Any) -> dict[str, dict[str, str]]:
    """Every namespace's labels, for the policies that select namespaces by label."""
    return {body.metadata.name or "": dict(body.metadata.labels or {})}


async def _look_again(
    state: ProcessState, resources: index.Index, namespaces: list[str], version: str
) -> None:
    """Stamp the refused resources of ``namespaces`` so that each gets a pass now, under the new policy."""
    for namespace in namespaces:
        for resource in index.refused_in(resources, namespace):
            await state.annotate(namespace, resource, c.ANNOTATION_POLICY_VERSION, version)


async def policy_changed(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """A policy was created or changed: the resources it may now permit are looked at again at once.

    (A policy deleted or narrowed permits nothing new: the resources it no longer permits are refused at
    their next pass or drift check.)
    """
    if kwargs["event"].get("type") in (None, "DELETED"):
        return  # the listing at start-up (every resource gets a pass then anyway), or a deletion
    policy = _policy(body)
    if policy is None:
        return
    resources = index.of(kwargs)
    labels: kopf.Index[str, dict[str, str]] = kwargs["chpl_namespace_labels"]
    selected = [
        namespace
        for namespace in index.refused_namespaces(resources)
        if applies_to(policy, namespace, next(iter(labels.get(namespace, [])), None))
    ]
    version = f"{policy.name}@{body.metadata.get('resourceVersion') or ''}"
    await _look_again(_state(memo), resources, selected, version)


async def namespace_changed(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """A namespace's labels may now match a policy's selector: look again at its refused resources."""
    resources = index.of(kwargs)
    name = body.metadata.name or ""
    if kwargs["event"].get("type") is None or not index.refused_in(resources, name):
        return
    await _look_again(
        _state(memo), resources, [name], f"namespace@{body.metadata.get('resourceVersion') or ''}"
    )


def _resource(state: ProcessState, body: kopf.Body, indices: Mapping[str, Any]) -> Resource:
    meta = body.metadata
    ref = ResourceRef(
        namespace=meta.namespace or "",
        name=meta.name or "",
        uid=meta.uid or "",
        cluster=state.settings.cluster_name,
    )
    spec = ClickHousePrivateLinkSpec.model_validate(dict(body.spec))
    status = recorded_status(body, state.written.view(ref.uid, body.status))
    labels = list(indices["chpl_namespace_labels"].get(ref.namespace, []))
    policies = list(indices["chpl_policies"].get("all", []))
    return Resource(
        ref=ref,
        spec=spec,
        generation=int(meta.get("generation") or 0),
        status=status,
        usage=usage_from_body(body, status=status),
        deleting=lambda: bool(body.metadata.get("deletionTimestamp")),
        verdict=decide(ref.namespace, labels[0] if labels else None, spec, policies),
        held=lambda: ref.uid not in state.holds,
    )


def _invalid_spec(state: ProcessState, body: kopf.Body, patch: kopf.Patch, error: ValidationError) -> None:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
    step = StepResult(ConditionType.READY, False, Reason.INVALID_SPEC, f"invalid spec: {problems}")
    generation = int(body.metadata.get("generation") or 0)
    conditions = steps_to_conditions(list(body.status.get("conditions", [])), [step], generation=generation)
    patch.status["conditions"] = conditions
    patch.status["observedGeneration"] = generation
    kopf.warn(body, reason=Reason.INVALID_SPEC.value, message=step.message)
    state.resource_book.record(body.metadata.uid or "", ready=False, reason=Reason.INVALID_SPEC.value)


def _write(
    state: ProcessState, body: kopf.Body, patch: kopf.Patch, res: Resource, outcome: Outcome, *, kind: str
) -> None:
    """Put the outcome on the resource: only the status fields that changed, and Events posted once.

    A pass that finds everything as it was writes nothing: no status PATCH, no Event. What it compares with is
    the status as written (``res.status`` reads a new resource's first intent from its annotation too, which
    nobody reads once this write has set ``observedGeneration``: decisions/intent.py).
    """
    shown = state.written.view(res.ref.uid, body.status)
    previous = condition(list(shown.get("conditions", [])), ConditionType.READY)
    status = outcome.status.to_json()
    if "hostedZoneId" in shown and "hostedZoneId" not in status:
        patch.status["hostedZoneId"] = None  # merge-patch null removes it: dns.mode is None now
    conditions = steps_to_conditions(
        list(shown.get("conditions", [])), outcome.steps, generation=res.generation
    )
    wanted = {**status, "conditions": conditions, "observedGeneration": res.generation}
    if kind == "cleanup" and outcome.done:
        wanted = {}  # the resource goes now: its last status would only be one more write
    for key, value in wanted.items():
        if shown.get(key) != value:
            patch.status[key] = value
    # kopf's own fields (progress records it may have purged before the handler ran) are not ours to believe.
    state.written.record(res.ref.uid, {k: v for k, v in patch.status.items() if k not in KOPF_STATUS_FIELDS})
    ready = condition(conditions, ConditionType.READY)
    posted = state.posted.setdefault(res.ref.uid, set())
    normal: list[Event] = []
    for event in outcome.events:
        repeated = previous is not None and event.type == "Warning" and event.reason == previous.get("reason")
        # Cleanup may take several passes (AWS deletes an endpoint in minutes): say each thing once.
        said = kind == "cleanup" and (event.type, event.reason, event.message) in posted
        if repeated or said:
            continue
        if event.type == "Warning":
            kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        else:
            normal.append(event)
        # Also in the log, each on its own: a namespace being torn down refuses new Events, and the log
        # outlives them.
        level = logging.WARNING if event.type == "Warning" else logging.INFO
        log.log(level, "%s %s: %s", res.ref.key, event.reason, event.message)
        if kind == "cleanup":
            posted.add((event.type, event.reason, event.message))
    became_ready = (
        ready is not None
        and ready.get("status") == "True"
        and (previous is None or previous.get("status") != "True")
    )
    message = str(ready.get("message")) if ready is not None and became_ready else None
    repaired = outcome.changes if kind == "drift" else []
    folded = fold_events(normal, message, cleanup=kind == "cleanup", repaired=repaired)
    if folded is not None:
        kopf.event(body, type=folded.type, reason=folded.reason, message=folded.message)
    state.resource_book.record(
        res.ref.uid,
        ready=bool(ready and ready.get("status") == "True"),
        reason=str((ready or {}).get("reason") or "Unknown"),
        deleting_since=_deletion_time(body) if kind == "cleanup" else None,
    )


def _deletion_time(body: kopf.Body) -> float | None:
    """When the resource's deletion was asked for (epoch seconds), from its deletionTimestamp."""
    stamp = body.metadata.get("deletionTimestamp")
    if not stamp:
        return None
    try:
        return datetime.datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return time.time()


async def _run(
    kind: str,
    body: kopf.Body,
    patch: kopf.Patch,
    retry: int,
    state: ProcessState,
    indices: Mapping[str, Any],
) -> Outcome | None:
    # One pass at a time per resource, and each builds its view inside the lock: a pass that waited sees
    # the status the one before it wrote (the body it was handed may be older than that write).
    uid = body.metadata.uid or ""
    lock = state.lock(uid)
    await lock.acquire()
    try:
        if kind == "drift":
            newest = state.drift.body(uid)
            if newest is None:
                return (
                    None  # a pass began while the check waited its turn (cleanup, an update): it has it now
                )
            body = newest
        try:
            res = _resource(state, body, indices)
        except ValidationError as exc:
            _invalid_spec(state, body, patch, exc)
            metrics.RECONCILES.labels(kind, "invalid").inc()
            return None
        started = time.monotonic()
        reconciler: Reconciler = state.reconciler
        resources = index.of(indices)
        indexed = index.vpc_users(resources, res.usage)
        zone_indexed = index.zone_users(resources, res.usage)
        if kind == "cleanup":
            outcome = await reconciler.cleanup(res, indexed=indexed, zone_indexed=zone_indexed, attempt=retry)
        else:
            outcome = await reconciler.reconcile(
                res, indexed=indexed, zone_indexed=zone_indexed, attempt=retry, drift=kind == "drift"
            )
        metrics.RECONCILE_DURATION.labels(kind).observe(time.monotonic() - started)
        ready = outcome.ready()
        label = "done" if outcome.done else (ready.reason.value if not ready.ok else "requeued")
        metrics.RECONCILES.labels(kind, label).inc()
        if kind == "drift":
            for change in outcome.changes:
                metrics.DRIFT_REPAIRS.labels(change).inc()
        _write(state, body, patch, res, outcome, kind=kind)
        if kind == "drift" and patch.status:
            # Not a kopf handler: its status goes now, before another pass of the resource may write.
            meta = body.metadata
            await state.write_status_now(meta.namespace or "", meta.name or "", uid, dict(patch.status))
    finally:
        lock.release()
    return outcome


def kopf_keeps_the_finalizer(body: kopf.Body, **_: Any) -> bool:
    """Whether kopf holds the resource with the finalizer (adds it back if it went): once it has it, or once a
    pass has handled the resource (kopf's diff-base is stored; an older version's in an annotation).

    A new resource's first pass adds it itself, with its first write (``hold``), in the cycle of the
    resource's creation event. kopf's own would take a cycle of its own: a PATCH, then the pass on that
    PATCH's watch event, one kopf cycle (and a round trip before the pass starts) more for every resource.
    """
    if c.FINALIZER in (body.metadata.get("finalizers") or []):
        return True
    annotations = body.metadata.get("annotations") or {}
    return (
        DIFF_BASE_FIELD in (body.get("status") or {})
        or f"{c.GROUP}/{DIFF_BASE_ANNOTATION_KEY}" in annotations
    )


def hold(body: kopf.Body) -> Hold | None:
    """The resource in the pass's hands, when it does not have the operator's finalizer: the pass adds it with
    its first write (engine: ``Pass.before_write``; a pass that writes nothing, before it ends), in one PATCH
    with the first intent on a new resource, so that nothing is made for a resource that could go without a
    cleanup pass. None when it has the finalizer.
    """
    meta = body.metadata
    finalizers = list(meta.get("finalizers") or [])
    if c.FINALIZER in finalizers:
        return None
    return Hold(
        version=str(meta.get("resourceVersion") or ""),
        finalizers=finalizers,
        annotated=bool(meta.get("annotations")),
        first=reads_intent(body.get("status") or {}),
    )


async def reconcile(
    body: kopf.Body,
    patch: kopf.Patch,
    retry: int,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    uid = body.metadata.uid or ""
    state = _state(memo)
    state.drift.unsettle(uid)
    state.public_users.follow(kwargs)
    held = hold(body)
    if held is not None:
        state.holds[uid] = held
    try:
        with state.in_flight():
            outcome = await _run("reconcile", body, patch, retry, state, kwargs)
    finally:
        if held is not None:
            state.holds.pop(uid, None)
    if outcome is not None and outcome.requeue_after is not None:
        ready = outcome.ready()
        raise kopf.TemporaryError(f"{ready.reason.value}: {ready.message}", delay=outcome.requeue_after)
    # Drift checks run once the create/update handler is done (Ready, or an invalid spec), not before it has
    # run (a pass may wait its turn at the rate limit for a while) nor between its retries. A resume pass
    # settles it too: after a restart, checks begin again though that pass found nothing to write.
    state.drift.settle(uid, body)


async def check_drift(state: ProcessState, indices: Mapping[str, Any], body: kopf.Body) -> None:
    """One drift check of a settled resource (wiring/drift.py), deferred to the next interval while more than
    ``DRIFT_STEPS_ASIDE_AT`` (wiring/state.py) create, update and delete passes are in flight.

    The check reads the newest body the watch brought once it has the resource's turn.
    """
    if state.drift_steps_aside():
        metrics.RECONCILES.labels("drift", "deferred").inc()
        return
    state.public_users.follow(indices)
    await _run("drift", body, kopf.Patch(), 0, state, indices)


async def cleanup(
    body: kopf.Body,
    patch: kopf.Patch,
    retry: int,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    state = _state(memo)
    state.drift.unsettle(body.metadata.uid or "")
    state.public_users.follow(kwargs)
    with state.in_flight():
        outcome = await _run("cleanup", body, patch, retry, state, kwargs)
    if outcome is None:
        state.resource_book.forget(body.metadata.uid or "")
        return  # an invalid spec never created anything
    if not outcome.done:
        ready = outcome.ready()
        raise kopf.TemporaryError(f"{ready.reason.value}: {ready.message}", delay=outcome.requeue_after or 1)
    uid = body.metadata.uid or ""
    state.resource_book.forget(uid)
    state.forget(uid)


def register(registry: kopf.OperatorRegistry, settings: Settings) -> kopf.OperatorRegistry:
    """Put every handler on ``registry``, the Secret watch only with ``settings.watch_secrets`` (drift checks
    are not kopf's: wiring/drift.py). Returns ``registry``, for ``kopf.run(registry=...)``."""
    kopf.on.login(registry=registry)(log_in)
    kopf.on.startup(registry=registry)(configure)
    kopf.on.cleanup(registry=registry)(close_clients)
    kopf.index(*POLICY, registry=registry)(chpl_policies)
    kopf.index("", "v1", "namespaces", registry=registry)(chpl_namespace_labels)
    # One index of the resources (wiring/index.py): kopf runs every index on every event. Resources are filed
    # under the Secret they name only while Secrets are watched (its one reader).
    resources = index.index_function(secrets=settings.watch_secrets)

    async def chpl_resources(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> dict[Hashable, Any]:
        _state(memo).drift.seen(body)  # every watch event of a resource passes here: its newest body
        return await resources(body=body, **kwargs)

    kopf.index(*RESOURCE, id=index.NAME, registry=registry)(chpl_resources)
    if settings.watch_secrets:
        kopf.on.startup(registry=registry)(watch_opted_in_secrets_only)
        kopf.on.event(*SECRETS, labels={c.LABEL_API_KEY: "true"}, registry=registry)(secret_changed)
    kopf.on.event(*POLICY, registry=registry)(policy_changed)
    kopf.on.event("", "v1", "namespaces", registry=registry)(namespace_changed)
    # One handler for every cause of a pass; the ids (keys of each resource's progress records) are
    # the ones the decorators gave before. The unfiltered ones come first: on every watch event kopf asks
    # whether any handler could match (its prematch, in this order, stopping at the first yes), and each
    # field or ``when`` filter it tries on the way builds the whole set of handler kwargs first.
    kopf.on.create(*RESOURCE, registry=registry)(reconcile)
    kopf.on.resume(*RESOURCE, registry=registry)(reconcile)
    kopf.on.update(
        *RESOURCE,
        field=("metadata", "annotations", c.ANNOTATION_POLICY_VERSION),
        id="policy-changed",
        registry=registry,
    )(reconcile)
    kopf.on.update(
        *RESOURCE,
        field=("metadata", "annotations", c.ANNOTATION_SECRET_VERSION),
        id="secret-changed",
        registry=registry,
    )(reconcile)
    kopf.on.update(*RESOURCE, field="spec", registry=registry)(reconcile)
    kopf.on.delete(*RESOURCE, when=kopf_keeps_the_finalizer, registry=registry)(cleanup)
    return registry
