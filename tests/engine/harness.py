"""The operator's process, played in memory: what wiring/handlers.py does around the engine, over the fakes.

``Harness`` holds the resources' bodies (the Kubernetes API: durable), builds each pass's ``Resource`` and
usage index from them as the handlers do, writes intent at once (the finalizer with the first, as wiring does:
a resource without it is deleted at once, without a cleanup pass) and the outcome's status after a pass, and
posts Events to a list. ``crash_after(point)`` makes the next external write of that kind the process's last:
a ``Crash`` is raised from the engine's ``wrote`` hook, and everything held in memory (Reconciler, UsageBook,
the gateways' kept reads) is dropped; the cloud and the bodies stay, as they would after a SIGKILL.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clickhouse_privatelink.api.models import ClickHousePrivateLinkSpec
from clickhouse_privatelink.constants import ANNOTATION_INTENT, FINALIZER
from clickhouse_privatelink.decisions.intent import encode_intent, reads_intent, recorded_status
from clickhouse_privatelink.decisions.ownership import ResourceRef
from clickhouse_privatelink.decisions.reasons import ConditionType
from clickhouse_privatelink.decisions.status import condition, steps_to_conditions
from clickhouse_privatelink.decisions.usage import Usage, usage_from_body, vpc_index_key, zone_index_key
from clickhouse_privatelink.engine.allow_list_worker import AllowListWorkers
from clickhouse_privatelink.engine.components import FORWARD
from clickhouse_privatelink.engine.context import Outcome, Pass, Resource
from clickhouse_privatelink.engine.endpoint_worker import EndpointWorkers
from clickhouse_privatelink.engine.reconciler import Reconciler
from clickhouse_privatelink.engine.status import EngineStatus
from clickhouse_privatelink.engine.zone_worker import ZoneWorkers
from clickhouse_privatelink.settings import Settings
from tests.engine.fakes import AwsCloud, ClickHouseCloud, Clock, FakeAws, FakeClickHouse, FakeSecrets

CLUSTER = "prod"
REGION = "us-east-1"
VPC_A = "vpc-0a0a0a0a0a0a0a0a0"
VPC_B = "vpc-0b0b0b0b0b0b0b0b0"
SUBNETS = ("subnet-0a1a1a1a1a1a1a1a1", "subnet-0a2a2a2a2a2a2a2a2")
GROUP = "sg-0a3a3a3a3a3a3a3a3"
ENDPOINT_SERVICE = "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0"
OTHER_ENDPOINT_SERVICE = "com.amazonaws.vpce.us-east-1.vpce-svc-0fedcba9876543210"
SERVICE_A = "5b1c2d3e-4f50-4a61-8b72-93a4b5c6d7e8"
SERVICE_B = "6c2d3e4f-5061-4b72-9c83-a4b5c6d7e8f9"
SERVICE_C = "7d3e4f50-6172-4c83-ad94-b5c6d7e8f9a0"
SERVICES = {
    SERVICE_A: ("alpha", ENDPOINT_SERVICE, "alpha123.us-east-1.vpce.aws.clickhouse.cloud"),
    SERVICE_B: ("beta", ENDPOINT_SERVICE, "beta4567.us-east-1.vpce.aws.clickhouse.cloud"),
    SERVICE_C: ("gamma", OTHER_ENDPOINT_SERVICE, "gamma890.us-east-1.vpce.aws.clickhouse.cloud"),
}
ZONE_NAME = "us-east-1.vpce.aws.clickhouse.cloud"
PASS_INTERVAL = 20.0  # seconds of the fake clock between rounds (beyond the read window: reads are fresh)


class Crash(BaseException):
    """The operator process died right after an external write (a SIGKILL: nothing in it runs on)."""


@dataclass(frozen=True)
class Posted:
    resource: str  # namespace/name
    type: str
    reason: str
    message: str


class Harness:
    """The cloud, the resources, and one operator process at a time (see the module docstring)."""

    def __init__(self, *, cluster: str = CLUSTER, batch_window: float = 0.0) -> None:
        self.cluster = cluster
        # A zone worker's quiet gap and an allow-list worker's write window (real seconds: passes side by side).
        self.batch_window = batch_window
        self.clock = Clock()
        self.aws = AwsCloud()
        self.clickhouse = ClickHouseCloud()
        for service_id, (name, endpoint_service, hostname) in SERVICES.items():
            self.clickhouse.add_service(
                service_id, name, endpoint_service=endpoint_service, hostname=hostname
            )
        self.secrets = FakeSecrets()
        self.secrets.put("ns", "key")
        self.secrets.put("other", "key")
        self.bodies: dict[str, dict[str, Any]] = {}
        self.events: list[Posted] = []
        # The passes' own writes to the resources before their ends, in order: (uid, "hold+intent", "hold" or
        # "status").
        self.kube_writes: list[tuple[str, str]] = []
        self.crashes: list[str] = []
        self._armed: str | None = None
        self._settled: set[str] = set()  # resources whose create handler is done (kopf: until a restart)
        self._uids = itertools.count(1)
        self.restart()

    # ---- the process

    def restart(self) -> None:
        """A new operator process: nothing of the old one's memory, the same cloud and resources."""
        self.aws_view = FakeAws(self.aws, self.clock)
        self.clickhouse_view = FakeClickHouse(self.clickhouse, self.clock)
        self.reconciler = Reconciler(
            Settings(cluster_name=self.cluster),
            self.secrets,
            lambda url, key, org: self.clickhouse_view,
            lambda region, role: self.aws_view,
            components=FORWARD,
            intend=self._intend,
            wrote=self._wrote,
            zones=ZoneWorkers(batch_window=self.batch_window, max_window=max(self.batch_window, 1.0)),
            allow_lists=AllowListWorkers(write_window=self.batch_window),
            endpoints=EndpointWorkers(),
        )
        self._settled.clear()  # kopf resumes every resource in a new process

    def crash_after(self, point: str) -> None:
        """The next external write of this kind (engine/crash_points.py) is the process's last."""
        self._armed = point

    def _wrote(self, point: str) -> None:
        if point == self._armed:
            self._armed = None
            raise Crash(point)

    async def _intend(self, res: Resource, fields: EngineStatus) -> None:
        """What wiring/state.py does: the finalizer first on a resource without it (the fields in its intent
        annotation, in the same PATCH, on a new one), else a merge patch of /status, now."""
        body = self.bodies[res.ref.uid]
        meta, status, written = body["metadata"], body["status"], fields.to_json()
        if FINALIZER not in meta.setdefault("finalizers", []):
            meta["finalizers"].append(FINALIZER)
            if written and reads_intent(status):
                meta.setdefault("annotations", {})[ANNOTATION_INTENT] = encode_intent(res.ref.uid, written)
                self.kube_writes.append((res.ref.uid, "hold+intent"))
                return
            self.kube_writes.append((res.ref.uid, "hold"))
            if not written:
                return
        status.update(written)
        self.kube_writes.append((res.ref.uid, "status"))

    # ---- the resources (the Kubernetes API)

    def create(
        self,
        name: str,
        *,
        namespace: str = "ns",
        service_id: str = SERVICE_A,
        vpc_id: str = VPC_A,
        retain: bool = False,
        hosted_zone_id: str | None = None,
        endpoint_id: str | None = None,
        uid: str | None = None,
    ) -> str:
        n = next(self._uids)
        uid = uid or f"uid-{n:04d}"
        aws: dict[str, Any] = {
            "region": REGION,
            "vpcId": vpc_id,
            "subnetIds": list(SUBNETS),
            "securityGroupIds": [GROUP],
        }
        if endpoint_id is not None:
            aws["vpcEndpointId"] = endpoint_id
        spec: dict[str, Any] = {
            "clickhouse": {
                "organizationId": self.clickhouse.org_id,
                "serviceId": service_id,
                "credentialsSecretRef": {"name": "key"},
            },
            "aws": aws,
            "deletionPolicy": "Retain" if retain else "Delete",
        }
        if hosted_zone_id is not None:
            spec["dns"] = {"hostedZoneId": hosted_zone_id}
        self.bodies[uid] = {
            "metadata": {
                "namespace": namespace,
                "name": name,
                "uid": uid,
                "generation": 1,
                "creationTimestamp": f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z",
            },
            "spec": spec,
            "status": {},
        }
        return uid

    def delete(self, uid: str) -> None:
        """A resource without the operator's finalizer goes at once, without a cleanup pass (as kube-apiserver
        deletes it): a pass must hold it before making anything for it."""
        meta = self.bodies[uid]["metadata"]
        if FINALIZER not in meta.get("finalizers", []):
            del self.bodies[uid]
            return
        meta["deletionTimestamp"] = "2026-01-02T00:00:00Z"
        self._settled.discard(uid)  # kopf's cleanup handler runs now

    def held(self, uid: str) -> bool:
        return uid in self.bodies and FINALIZER in self.bodies[uid]["metadata"].get("finalizers", [])

    def status(self, uid: str) -> dict[str, Any]:
        status: dict[str, Any] = self.bodies[uid]["status"]
        return status

    def ready(self, uid: str) -> Mapping[str, Any] | None:
        return condition(list(self.status(uid).get("conditions", [])), ConditionType.READY)

    def reason(self, uid: str, kind: ConditionType = ConditionType.READY) -> str | None:
        found = condition(list(self.status(uid).get("conditions", [])), kind)
        return None if found is None else str(found.get("reason"))

    def posted(self, reason: str) -> list[Posted]:
        return [e for e in self.events if e.reason == reason]

    def resource(self, uid: str) -> Resource:
        """What wiring/handlers.py ``_resource`` builds from a body."""
        body = self.bodies[uid]
        meta = body["metadata"]
        status = dict(recorded_status(body))
        return Resource(
            ref=ResourceRef(meta["namespace"], meta["name"], uid, self.cluster),
            spec=ClickHousePrivateLinkSpec.model_validate(body["spec"]),
            generation=int(meta["generation"]),
            status=status,
            usage=usage_from_body(body, status=status),
            deleting=lambda: (
                uid not in self.bodies or bool(self.bodies[uid]["metadata"].get("deletionTimestamp"))
            ),
            held=lambda: self.held(uid),
        )

    def _indexed(self, usage: Usage) -> tuple[list[Usage], list[Usage]]:
        """The kopf indices: every resource's usage by (region, VPC), and by the zone it writes into."""
        usages = [usage_from_body(b) for b in self.bodies.values()]
        by_vpc = [u for u in usages if vpc_index_key(u) == vpc_index_key(usage)]
        zone = zone_index_key(usage)
        by_zone = [u for u in usages if zone and zone_index_key(u) == zone]
        return by_vpc, by_zone

    # ---- passes

    def pass_of(self, uid: str) -> Pass:
        """The pass the reconciler would begin for the resource now (its indices as ``run`` gives them)."""
        res = self.resource(uid)
        indexed, zone_indexed = self._indexed(res.usage)
        return self.reconciler._pass(res, indexed, zone_indexed, read_age=0.0, key_age=0.0)

    async def run(self, uid: str) -> Outcome | None:
        """One pass of the resource (cleanup when it is being deleted); None when the process died in it."""
        res = self.resource(uid)
        indexed, zone_indexed = self._indexed(res.usage)
        deleting = bool(self.bodies[uid]["metadata"].get("deletionTimestamp"))
        try:
            if deleting:
                out = await self.reconciler.cleanup(res, indexed=indexed, zone_indexed=zone_indexed)
            else:
                out = await self.reconciler.reconcile(res, indexed=indexed, zone_indexed=zone_indexed)
        except Crash as crash:
            self.crashes.append(str(crash))
            self.restart()
            return None
        self._write(res, out, cleanup=deleting)
        return out

    def _write(self, res: Resource, out: Outcome, *, cleanup: bool) -> None:
        """What wiring/handlers.py ``_write`` does: the status fields, conditions, Events (each change the pass
        reports, as the engine said it: wiring folds a pass's Normal ones into one Event, decisions/status.py
        ``fold_events``, and logs each); a finished cleanup lets the resource go (its finalizer is removed)."""
        uid = res.ref.uid
        self.events.extend(Posted(res.ref.key, e.type, e.reason, e.message) for e in out.events)
        if cleanup and out.done:
            del self.bodies[uid]
            return
        status = self.bodies[uid]["status"]
        written = out.status.to_json()
        if "hostedZoneId" in status and "hostedZoneId" not in written:
            del status["hostedZoneId"]
        status.update(written)
        status["conditions"] = steps_to_conditions(
            list(status.get("conditions", [])), out.steps, generation=res.generation
        )
        status["observedGeneration"] = res.generation
        if not cleanup and out.done:
            self._settled.add(uid)

    async def settle(self, *, rounds: int = 12, together: bool = False) -> None:
        """Rounds of passes (AWS moving on and the clock past the read window between them) until every
        resource is Ready and every deleted one is gone; a crash armed before is taken on the way.

        ``together``: the passes of a round run side by side (as kopf runs them), not one after the other.
        """
        for _ in range(rounds):
            self.clock.advance(PASS_INTERVAL)
            self.aws.settle()
            if all(uid in self._settled for uid in self.bodies) and self._armed is None:
                return
            due = [uid for uid in self.bodies if uid not in self._settled]
            if together:
                await asyncio.gather(*(self.run(uid) for uid in due))
                continue
            for uid in due:
                if uid in self.bodies:
                    await self.run(uid)
        unsettled = {uid: self.reason(uid) for uid in self.bodies if uid not in self._settled}
        raise AssertionError(f"not settled after {rounds} rounds: {unsettled}")
