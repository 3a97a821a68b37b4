"""The service's public IP access list (spec.clickhouse.publicAccess): carried out by delta, undone exactly.

The decisions are in decisions/public_access.py. This component reads nothing of its own: the service and
its ``ipAccessList`` come from the pass's shared services list. It does nothing at all for a resource left
at Unchanged that holds no record (the default), and a steady state writes nothing. Every change of the
record (``status.publicAccess``) is written on the resource at once, the intent before its PATCH, through
``write`` (wiring/state.py); records another pass may be reading are changed under one lock per service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from clickhouse_privatelink.adapters.clickhouse.client import IpAccessEntry, Service
from clickhouse_privatelink.decisions import public_access as pa
from clickhouse_privatelink.decisions.reasons import TERMINAL_REASONS, ConditionType, Reason
from clickhouse_privatelink.decisions.status import StepResult, condition
from clickhouse_privatelink.engine.context import Pass, Resolved, StepFailed, clickhouse_call

STEP = ConditionType.PUBLIC_ACCESS_RESTRICTED
CREDENTIAL_REASONS = frozenset(
    {Reason.CREDENTIALS_SECRET_NOT_FOUND, Reason.CREDENTIALS_INVALID, Reason.UNAUTHORIZED}
)

# (namespace/name, uid, the record or None to remove it): a merge patch of the resource's status, now.
WriteRecord = Callable[[str, str, dict[str, Any] | None], Awaitable[None]]
# The users of a service's list, by service ID (a kopf index of the resources: survives restarts).
ServiceUsers = Callable[[str], Iterable[pa.User]]


class PublicAccessComponent:
    """Brings the service's IP access list to the setting in force, and lets go of it exactly."""

    def __init__(
        self, users: ServiceUsers, write: WriteRecord, *, retry_after: float, error_retry_after: float
    ) -> None:
        self._indexed = users
        self._write_status = write
        self.retry_after = retry_after  # something transient (throttling, the API unreachable)
        self.error_retry_after = error_retry_after  # something a person must fix (a read-only key)
        # The records this process wrote, fresher than any body or index (None: removed).
        self._written: dict[str, pa.Record | None] = {}

    # ------------------------------------------------------------------------------------------ forward

    async def apply(self, p: Pass, resolved: Resolved) -> None:
        raw = p.res.spec.clickhouse.public_access
        setting = pa.setting_from_spec(raw.model_dump() if raw is not None else None)
        own = self._record(p.res.ref.uid, p.res.status)
        if setting is None and own is None:
            previous = condition(list(p.res.status.get("conditions", [])), STEP)
            if previous is not None and previous.get("reason") != Reason.PUBLIC_ACCESS_UNCHANGED.value:
                message = "publicAccess is Unchanged: the operator does not touch the IP access list"
                p.out.steps.append(StepResult(STEP, False, Reason.PUBLIC_ACCESS_UNCHANGED, message))
            return  # the default: no lock, no call, no write
        if resolved.service is None:
            return
        service = resolved.service.service
        try:
            if own is not None and own.service_id != service.id:
                # The resource now names another service: let go of the old one's list first.
                old = await self._live_service(p, own.service_id)
                if old is not None:
                    async with p.book.lock(("public-access", old.id)):
                        await self._let_go(p, old, own, leaving=False)
                own = None
            async with p.book.lock(("public-access", service.id)):
                own = self._record(p.res.ref.uid, p.res.status)  # as the pass before this one left it
                if setting is None:
                    if own is not None:
                        await self._let_go(p, service, own, leaving=False)
                    p.out.steps.append(
                        StepResult(
                            STEP,
                            False,
                            Reason.PUBLIC_ACCESS_UNCHANGED,
                            "publicAccess is Unchanged: the operator's changes to the IP access list were "
                            "undone or handed on, and it no longer touches the list",
                        )
                    )
                    return
                await self._carry_out(p, service, setting, own)
        except StepFailed as failed:
            self._failed(p, failed)

    async def _carry_out(self, p: Pass, service: Service, setting: pa.Setting, own: pa.Record | None) -> None:
        live = pa.entries_from(service.ip_access_list)
        if own is not None and own.intent is not None:
            # A pass killed between its intent and the next write: complete it against the list as it is.
            own, live = await self._send(p, service, own, own.intent, live)
        me = self._me(p, service.id, setting, own)
        users = self._users(service.id, me)
        force = pa.in_force(users)
        if force is not None and force.uid != me.uid:
            if own is not None:
                await self._hand_over(p, service, own, force)  # a record belongs with the user in force
                await self._write(p.res.ref.key, p.res.ref.uid, None)
            self._report(p, me, force, live, service.name)
            return
        records = [own, *(u.record for u in users if u.uid != me.uid)]
        record = pa.observe(
            replace(pa.merged(service.id, records, applied=own.applied if own else None), intent=None), live
        )
        if record.applied != setting.key and not p.out.ready().ok:
            # Public access is closed only once the private way in works: no client is left with neither.
            message = f"{setting.describe()} is applied once the PrivateLink connection is Ready"
            p.out.steps.append(StepResult(STEP, False, Reason.RECONCILING, message, unknown=True))
            return
        if record.applied != setting.key:
            delta = pa.plan(setting, live, description=self._description(p))
            if delta.empty:
                record = replace(record, applied=setting.key)
                await self._write(p.res.ref.key, p.res.ref.uid, record)
            else:
                record = pa.with_intent(record, delta)
                await self._write(p.res.ref.key, p.res.ref.uid, record)  # the intent, before the PATCH
                assert record.intent is not None
                sent = record.intent
                record, live = await self._send(p, service, record, sent, live)
                p.out.event(
                    "PublicAccessChanged",
                    f"IP access list of {service.name} set to {setting.describe()}: "
                    f"removed {pa.describe_entries(sent.remove)}, added {pa.describe_entries(sent.add)}",
                )
                p.out.changes.append("public_access_changed")
        elif own is None or record != own:
            await self._write(p.res.ref.key, p.res.ref.uid, record)  # a person's change seen, or a handover
        self._report(p, me, me, live, service.name)

    def _report(
        self, p: Pass, me: pa.User, force: pa.User, live: Sequence[pa.Entry], service_name: str
    ) -> None:
        ok, reason, message = pa.verdict(me, force, live, service_name)
        previous = condition(list(p.res.status.get("conditions", [])), STEP)
        if not ok and (previous is None or previous.get("reason") != reason.value):
            p.out.event(reason.value, message, warning=True)
        p.out.steps.append(StepResult(STEP, ok, reason, message))

    def _failed(self, p: Pass, failed: StepFailed) -> None:
        """The PrivateLink connection is not held back: the condition says why, and the pass looks again."""
        previous = condition(list(p.res.status.get("conditions", [])), STEP)
        if failed.reason in TERMINAL_REASONS and (
            previous is None or previous.get("reason") != failed.reason
        ):
            p.out.event(failed.reason.value, f"publicAccess: {failed.message}", warning=True)
        p.out.steps.append(StepResult(STEP, False, failed.reason, failed.message))
        wait = failed.retry_after if failed.retry_after is not None else self.retry_after
        p.out.requeue_after = min(p.out.requeue_after or wait, wait)

    # ----------------------------------------------------------------------------------------- release

    async def release(self, p: Pass) -> None:
        own = self._record(p.res.ref.uid, p.res.status)
        if own is None:
            return  # nothing changed by the operator for this resource: nothing to undo
        service = await self._live_service(p, own.service_id)
        if service is not None:
            async with p.book.lock(("public-access", service.id)):
                await self._let_go(p, service, self._record(p.res.ref.uid, p.res.status) or own, leaving=True)
        self._written.pop(p.res.ref.uid, None)

    async def _let_go(self, p: Pass, service: Service, own: pa.Record, *, leaving: bool) -> None:
        """Hand the record to the user in force after this one, or, as the last, restore the list."""
        live = pa.entries_from(service.ip_access_list)
        if own.intent is not None:
            # Whether or not its PATCH went out, what it was to change is ours: the restore below sees the list.
            own = pa.fold(own, own.intent)
        me = replace(self._me(p, service.id, None, own), deleting=leaving)
        users = self._users(service.id, me)
        successor = pa.in_force(u for u in users if u.uid != me.uid)
        if successor is not None:
            await self._hand_over(p, service, own, successor)
        else:
            record = pa.merged(service.id, [u.record for u in users], applied=None)
            delta = pa.restore(record, live)
            if not delta.empty:
                await self._patch(p, service, delta)
            if not record.empty:
                p.out.event(
                    "PublicAccessRestored",
                    f"IP access list of {service.name} restored: put back {pa.describe_entries(delta.add)}, "
                    f"removed {pa.describe_entries(delta.remove)} (changes made since by others are kept)",
                )
        # Also while being deleted: a deletion that takes more passes (AWS deleting the endpoint) does this once.
        await self._write(p.res.ref.key, p.res.ref.uid, None)

    async def _hand_over(self, p: Pass, service: Service, own: pa.Record, to: pa.User) -> None:
        """Merge this resource's record into the next holder's, then drop it here (both hold it in between)."""
        theirs = to.record
        applied = theirs.applied if theirs is not None and theirs.applied else own.applied
        record = pa.merged(service.id, [theirs, own], applied=applied)
        record = replace(record, intent=theirs.intent if theirs is not None else None)
        await self._write(to.resource, to.uid, record)
        p.out.event(
            "PublicAccessHandedOver",
            f"the operator's changes to the IP access list of {service.name} are kept for {to.resource}, "
            "whose publicAccess is in force now; it restores them when it lets go",
        )

    # ------------------------------------------------------------------------------------------- calls

    async def _send(
        self, p: Pass, service: Service, record: pa.Record, intent: pa.Delta, live: Sequence[pa.Entry]
    ) -> tuple[pa.Record, tuple[pa.Entry, ...]]:
        """Send what of ``intent`` the list does not show yet, then fold it into the record (written)."""
        delta = pa.remaining(intent, live)
        after = tuple(live)
        if not delta.empty:
            after = await self._patch(p, service, delta)
        record = pa.fold(record, intent)
        await self._write(p.res.ref.key, p.res.ref.uid, record)
        return record, after

    async def _patch(self, p: Pass, service: Service, delta: pa.Delta) -> tuple[pa.Entry, ...]:
        api = await p.clickhouse()
        updated = await clickhouse_call(
            STEP,
            api.update_ip_access_list(
                service.id,
                add=[IpAccessEntry(source=e.source, description=e.description) for e in delta.add],
                remove=[IpAccessEntry(source=e.source, description=e.description) for e in delta.remove],
            ),
            write=True,
        )
        return pa.entries_from(updated.ip_access_list)

    async def _live_service(self, p: Pass, service_id: str) -> Service | None:
        """The service from the shared list (its ipAccessList); None when it is gone or the key is."""
        try:
            api = await p.clickhouse()
            return await clickhouse_call(STEP, api.service(service_id, max_age=p.read_age))
        except StepFailed as failed:
            if failed.upstream_status == 404:
                return None  # the service is gone, and its list with it
            if failed.reason in CREDENTIAL_REASONS and p.res.deleting():
                p.out.event(
                    "PublicAccessNotRestored",
                    f"the operator's changes to the IP access list of service {service_id} are left "
                    f"(see status.publicAccess for what to put back): {failed.message}",
                    warning=True,
                )
                return None
            raise

    # ------------------------------------------------------------------------------------------ records

    def _record(self, uid: str, status: Mapping[str, Any]) -> pa.Record | None:
        if uid in self._written:
            return self._written[uid]
        return pa.record_from_status(status.get("publicAccess"))

    async def _write(self, resource: str, uid: str, record: pa.Record | None) -> None:
        try:
            await self._write_status(resource, uid, None if record is None else record.to_json())
        except Exception as exc:  # the Kubernetes API refused or could not be reached: nothing is sent
            raise StepFailed(
                STEP, Reason.UPSTREAM_UNAVAILABLE, f"could not record the change on {resource} first: {exc}"
            ) from None
        self._written[uid] = record

    def _me(self, p: Pass, service_id: str, setting: pa.Setting | None, own: pa.Record | None) -> pa.User:
        return pa.User(
            uid=p.res.ref.uid,
            resource=p.res.ref.key,
            created=p.me.created,
            deleting=False,
            service_id=service_id,
            setting=setting,
            record=own,
        )

    def _users(self, service_id: str, me: pa.User) -> list[pa.User]:
        """The service's users: the index, with the records this process wrote since, and this pass's view."""
        users: dict[str, pa.User] = {}
        for user in self._indexed(service_id):
            if user.uid in self._written:
                user = replace(user, record=self._written[user.uid])
            users[user.uid] = user
        users[me.uid] = (
            me if me.uid not in users else replace(me, deleting=me.deleting or users[me.uid].deleting)
        )
        return list(users.values())

    @staticmethod
    def _description(p: Pass) -> str:
        return f"clickhouse-privatelink-operator {p.cluster}: {p.res.ref.key}"


__all__ = ["PublicAccessComponent", "ServiceUsers", "WriteRecord"]
