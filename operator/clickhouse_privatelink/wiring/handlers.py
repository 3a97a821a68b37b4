"""kopf wiring: thin handlers that hand a resource to the reconciler and write its outcome back."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from clickhouse_privatelink import constants as c
from clickhouse_privatelink import metrics
from clickhouse_privatelink.adapters.aws.clients import clients_for
from clickhouse_privatelink.adapters.clickhouse.client import ClickHouseCloudClient, RetryPolicy
from clickhouse_privatelink.adapters.kubernetes.secrets import ApiKey, SecretReader
from clickhouse_privatelink.api.models import ClickHousePrivateLinkSpec
from clickhouse_privatelink.decisions.ownership import ResourceRef
from clickhouse_privatelink.decisions.reasons import ConditionType, Reason
from clickhouse_privatelink.decisions.status import StepResult, condition, steps_to_conditions
from clickhouse_privatelink.decisions.usage import Usage, usage_from_body, vpc_index_key
from clickhouse_privatelink.engine.reconciler import Outcome, Reconciler, Resource
from clickhouse_privatelink.settings import Settings

RESOURCE = (c.GROUP, c.VERSION, c.PLURAL)
SETTINGS = Settings.from_env()


class ClickHouseClients:
    """One API client per (URL, key): clients of the same key share its connection pool."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str, str], ClickHouseCloudClient] = {}

    def get(self, api_url: str, key: ApiKey) -> ClickHouseCloudClient:
        # The secret's digest is part of the key so a rotated secret gets a fresh client.
        ident = (api_url, key.key_id, hashlib.sha256(key.key_secret.encode()).hexdigest())
        client = self._clients.get(ident)
        if client is None:
            client = ClickHouseCloudClient(
                api_url,
                key.key_id,
                key.key_secret,
                retry=RetryPolicy(
                    backoff_base=SETTINGS.clickhouse_backoff_base,
                    backoff_max=SETTINGS.clickhouse_backoff_max,
                    reset_padding=SETTINGS.clickhouse_reset_padding,
                ),
                on_call=metrics.record_clickhouse_call,
            )
            self._clients[ident] = client
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


_locks: dict[str, asyncio.Lock] = {}
_ready: dict[str, bool] = {}


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Operator-wide objects, built once here and handed to every handler through kopf's memo."""
    settings.persistence.finalizer = c.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=c.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=c.GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.execution.max_workers = 20
    memo.clickhouse_clients = ClickHouseClients()
    memo.reconciler = Reconciler(SETTINGS, SecretReader(), memo.clickhouse_clients.get, clients_for)
    port = int(memo.get("metrics_port", 0) or 0)
    if port:
        metrics.serve(port)


@kopf.on.cleanup()
async def close_clients(memo: kopf.Memo, **_: Any) -> None:
    clients = memo.get("clickhouse_clients")
    if clients is not None:
        await clients.close()


@kopf.index(*RESOURCE)
def chpl_usages(body: kopf.Body, **_: Any) -> dict[tuple[str, str], Usage]:
    """Every resource's usage of shared objects, by (region, VPC): the durable count of their users."""
    usage = usage_from_body(body)
    return {vpc_index_key(usage): usage}


def _resource(body: kopf.Body) -> Resource:
    meta = body.metadata
    ref = ResourceRef(
        namespace=meta.namespace or "",
        name=meta.name or "",
        uid=meta.uid or "",
        cluster=SETTINGS.cluster_name,
    )
    spec = ClickHousePrivateLinkSpec.model_validate(dict(body.spec))
    return Resource(
        ref=ref,
        spec=spec,
        generation=int(meta.get("generation") or 0),
        status=dict(body.status),
        usage=usage_from_body(body),
    )


def _invalid_spec(body: kopf.Body, patch: kopf.Patch, error: ValidationError) -> None:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
    step = StepResult(ConditionType.READY, False, Reason.INVALID_SPEC, f"invalid spec: {problems}")
    generation = int(body.metadata.get("generation") or 0)
    conditions = steps_to_conditions(list(body.status.get("conditions", [])), [step], generation=generation)
    patch.status["conditions"] = conditions
    patch.status["observedGeneration"] = generation
    kopf.warn(body, reason=Reason.INVALID_SPEC.value, message=step.message)


def _write(body: kopf.Body, patch: kopf.Patch, res: Resource, outcome: Outcome) -> None:
    """Put the outcome on the resource: status fields, conditions, Events (repeated warnings once)."""
    previous = condition(list(res.status.get("conditions", [])), ConditionType.READY)
    if "hostedZoneId" in res.status and "hostedZoneId" not in outcome.status:
        patch.status["hostedZoneId"] = None  # merge-patch null removes it: dns.mode is None now
    for key, value in outcome.status.items():
        patch.status[key] = value
    conditions = steps_to_conditions(
        list(res.status.get("conditions", [])), outcome.steps, generation=res.generation
    )
    patch.status["conditions"] = conditions
    patch.status["observedGeneration"] = res.generation
    ready = condition(conditions, ConditionType.READY)
    for event in outcome.events:
        repeated = previous is not None and event.type == "Warning" and event.reason == previous.get("reason")
        if not repeated:
            kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    if (
        ready is not None
        and ready.get("status") == "True"
        and (previous is None or previous.get("status") != "True")
    ):
        kopf.info(body, reason="Ready", message=str(ready.get("message")))
    _ready[res.ref.uid] = bool(ready and ready.get("status") == "True")
    _update_gauge()


def _update_gauge() -> None:
    ready = sum(1 for v in _ready.values() if v)
    metrics.RESOURCES.labels("true").set(ready)
    metrics.RESOURCES.labels("false").set(len(_ready) - ready)


async def _run(
    kind: str,
    body: kopf.Body,
    patch: kopf.Patch,
    retry: int,
    memo: kopf.Memo,
    usages: kopf.Index[tuple[str, str], Usage],
) -> Outcome | None:
    try:
        res = _resource(body)
    except ValidationError as exc:
        _invalid_spec(body, patch, exc)
        metrics.RECONCILES.labels(kind, "invalid").inc()
        return None
    lock = _locks.setdefault(res.ref.uid, asyncio.Lock())
    started = time.monotonic()
    reconciler: Reconciler = memo.reconciler
    indexed = list(usages.get(vpc_index_key(res.usage), []))
    async with lock:
        if kind == "cleanup":
            outcome = await reconciler.cleanup(res, indexed=indexed, attempt=retry)
        else:
            outcome = await reconciler.reconcile(res, indexed=indexed, attempt=retry)
    metrics.RECONCILE_DURATION.labels(kind).observe(time.monotonic() - started)
    ready = outcome.ready()
    label = "done" if outcome.done else (ready.reason.value if not ready.ok else "requeued")
    metrics.RECONCILES.labels(kind, label).inc()
    if kind == "drift":
        for change in outcome.changes:
            metrics.DRIFT_REPAIRS.labels(change).inc()
        if outcome.changes:
            kopf.info(body, reason="DriftRepaired", message=f"repaired: {', '.join(outcome.changes)}")
    _write(body, patch, res, outcome)
    return outcome


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
async def reconcile(
    body: kopf.Body,
    patch: kopf.Patch,
    retry: int,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    outcome = await _run("reconcile", body, patch, retry, memo, kwargs["chpl_usages"])
    if outcome is not None and outcome.requeue_after is not None:
        ready = outcome.ready()
        raise kopf.TemporaryError(f"{ready.reason.value}: {ready.message}", delay=outcome.requeue_after)


@kopf.timer(*RESOURCE, interval=SETTINGS.drift_interval, initial_delay=SETTINGS.drift_interval)
async def repair_drift(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
    await _run("drift", body, patch, 0, memo, kwargs["chpl_usages"])


@kopf.on.delete(*RESOURCE)
async def cleanup(
    body: kopf.Body,
    patch: kopf.Patch,
    retry: int,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    outcome = await _run("cleanup", body, patch, retry, memo, kwargs["chpl_usages"])
    if outcome is None:
        return  # an invalid spec never created anything
    if not outcome.done:
        ready = outcome.ready()
        raise kopf.TemporaryError(f"{ready.reason.value}: {ready.message}", delay=outcome.requeue_after or 1)
    uid = body.metadata.uid or ""
    _ready.pop(uid, None)
    _locks.pop(uid, None)
    _update_gauge()


def metrics_memo(port: int) -> Mapping[str, Any]:
    """What ``kopf.run`` carries into the start-up handler."""
    return {"metrics_port": port}
