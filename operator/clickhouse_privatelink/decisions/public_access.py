"""The service's public IP access list (spec.clickhouse.publicAccess): pure decisions, no I/O.

ClickHouse's PrivateLink guide: "to restrict the service to PrivateLink only, configure its IP access list".
PrivateLink connections are not filtered by that list; an empty list admits no public client at all.

- ``PrivateOnly``: the list is brought to no entries. ``AllowList``: to exactly the given sources.
  ``Unchanged`` (or no ``publicAccess``): the operator never touches the list.
- A setting is carried out once, by delta, when it comes into force (a new resource, a changed spec, a
  handover); between those the operator only looks. An entry a person adds or removes afterwards is theirs:
  never removed or put back (the condition names it), and forgotten from the record when it is seen.
- What the operator changed is recorded in the status of the resource in force (``status.publicAccess``):
  ``removed`` entries are put back and ``added`` ones removed when the operator lets go, unless a person has
  since put back or removed them. A change is written there as an ``intent`` before its PATCH and folded in
  after it: a restarted operator completes an intent against the live list, never loses it.
- Resources of one service that disagree: the oldest one with a setting is in force (Unchanged ones have no
  say). When a resource holding a record leaves (deletion or Unchanged), it hands the record to the user in
  force after it; the last one restores the list.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any

from clickhouse_privatelink.decisions.reasons import Reason

PRIVATE_ONLY = "PrivateOnly"
ALLOW_LIST = "AllowList"


def source_key(source: str) -> str:
    """One spelling per network (``10.0.0.1`` is ``10.0.0.1/32``); an unparsable source stays as it is."""
    try:
        return str(ipaddress.ip_network(source.strip(), strict=False))
    except ValueError:
        return source.strip()


@dataclass(frozen=True)
class Entry:
    """One entry of the list, as ClickHouse has it."""

    source: str
    description: str = ""

    @property
    def key(self) -> str:
        return source_key(self.source)

    def to_json(self) -> dict[str, str]:
        return {"source": self.source, "description": self.description}


def _entries(raw: Any) -> tuple[Entry, ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(
        Entry(str(e.get("source") or ""), str(e.get("description") or ""))
        for e in raw
        if isinstance(e, Mapping) and e.get("source")
    )


@dataclass(frozen=True)
class Setting:
    """What a resource asks for: PrivateOnly, or AllowList with its sources."""

    mode: str
    sources: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The setting as recorded (``applied``): equal keys ask for the same list."""
        if self.mode == ALLOW_LIST:
            return f"{ALLOW_LIST}:{','.join(sorted({source_key(s) for s in self.sources}))}"
        return self.mode

    def wanted(self) -> frozenset[str]:
        return frozenset(source_key(s) for s in self.sources) if self.mode == ALLOW_LIST else frozenset()

    def describe(self) -> str:
        if self.mode == ALLOW_LIST:
            return f"only {', '.join(sorted(self.wanted()))}"
        return "no public entry (PrivateLink only)"


def setting_from_spec(raw: Any) -> Setting | None:
    """The setting of ``spec.clickhouse.publicAccess``; None for Unchanged or absent."""
    if not isinstance(raw, Mapping):
        return None
    mode = raw.get("mode") or "Unchanged"
    if mode == PRIVATE_ONLY:
        return Setting(PRIVATE_ONLY)
    if mode == ALLOW_LIST:
        return Setting(ALLOW_LIST, tuple(str(s) for s in raw.get("sources") or ()))
    return None


@dataclass(frozen=True)
class Delta:
    """One change to the list: entries to remove (as they are listed) and to add; ``applied`` its setting."""

    remove: tuple[Entry, ...] = ()
    add: tuple[Entry, ...] = ()
    applied: str | None = None

    @property
    def empty(self) -> bool:
        return not self.remove and not self.add


@dataclass(frozen=True)
class Record:
    """What the operator changed on one service's list (``status.publicAccess``)."""

    service_id: str
    applied: str | None = None
    removed: tuple[Entry, ...] = ()
    added: tuple[Entry, ...] = ()
    intent: Delta | None = None

    @property
    def empty(self) -> bool:
        return not self.removed and not self.added and self.intent is None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "serviceId": self.service_id,
            "removed": [e.to_json() for e in self.removed],
            "added": [e.to_json() for e in self.added],
        }
        if self.applied is not None:
            out["applied"] = self.applied
        # A merge patch keeps keys it does not name: an intent is cleared with an explicit null.
        out["intent"] = (
            None
            if self.intent is None
            else {
                "applied": self.intent.applied or "",
                "remove": [e.to_json() for e in self.intent.remove],
                "add": [e.to_json() for e in self.intent.add],
            }
        )
        return out


def record_from_status(raw: Any) -> Record | None:
    """``status.publicAccess`` as a Record (None when absent or unreadable)."""
    if not isinstance(raw, Mapping) or not raw.get("serviceId"):
        return None
    intent = raw.get("intent")
    return Record(
        service_id=str(raw["serviceId"]),
        applied=raw.get("applied") or None,
        removed=_entries(raw.get("removed")),
        added=_entries(raw.get("added")),
        intent=Delta(
            _entries(intent.get("remove")), _entries(intent.get("add")), intent.get("applied") or None
        )
        if isinstance(intent, Mapping)
        else None,
    )


@dataclass(frozen=True)
class User:
    """A resource with a say about (or a record of) a service's list."""

    uid: str
    resource: str  # namespace/name
    created: str
    deleting: bool
    service_id: str
    setting: Setting | None
    record: Record | None = field(default=None, compare=False)


def user_from_body(body: Mapping[str, Any], *, status: Mapping[str, Any] | None = None) -> User | None:
    """The resource as a user of its service's list; None when it neither asks nor holds anything.

    So the thousand resources left at Unchanged are not users at all (nothing is indexed for them).
    """
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = (body.get("status") or {}) if status is None else status
    clickhouse = spec.get("clickhouse") or {}
    setting = setting_from_spec(clickhouse.get("publicAccess"))
    record = record_from_status(status.get("publicAccess"))
    service_id = (
        (record.service_id if record else None) or status.get("serviceId") or clickhouse.get("serviceId")
    )
    if (setting is None and record is None) or not service_id:
        return None
    return User(
        uid=str(meta.get("uid") or ""),
        resource=f"{meta.get('namespace', '')}/{meta.get('name', '')}",
        created=str(meta.get("creationTimestamp") or ""),
        deleting=bool(meta.get("deletionTimestamp")),
        service_id=str(service_id),
        setting=setting,
        record=record,
    )


_oldest_first = attrgetter("created", "uid")


def in_force(users: Iterable[User]) -> User | None:
    """Whose setting the list gets: the oldest user with one that is not being deleted (as for endpoints)."""
    return min(
        (u for u in users if u.setting is not None and not u.deleting), key=_oldest_first, default=None
    )


def merged(service_id: str, records: Iterable[Record | None], *, applied: str | None) -> Record:
    """The records of several holders as one (a handover, or a kill between one): the union, by source."""
    removed: dict[str, Entry] = {}
    added: dict[str, Entry] = {}
    intent: Delta | None = None
    for record in records:
        if record is None:
            continue
        for e in record.removed:
            removed.setdefault(e.key, e)
        for e in record.added:
            added.setdefault(e.key, e)
        intent = intent or record.intent
    for key in set(removed) & set(added):
        del added[key]  # cannot happen from one holder's record; the removal is the older fact
    return Record(service_id, applied, tuple(removed.values()), tuple(added.values()), intent)


def observe(record: Record, live: Sequence[Entry]) -> Record:
    """Forget what a person has changed since: an entry we removed that is listed again is theirs now, and
    an entry we added that is gone was removed by them (neither is touched again)."""
    listed = {e.key for e in live}
    removed = tuple(e for e in record.removed if e.key not in listed)
    added = tuple(e for e in record.added if e.key in listed)
    return replace(record, removed=removed, added=added)


def plan(setting: Setting, live: Sequence[Entry], *, description: str) -> Delta:
    """The delta that brings ``live`` to ``setting``: remove what it does not allow, add what is missing."""
    wanted = setting.wanted()
    listed = {e.key for e in live}
    remove = tuple(e for e in live if e.key not in wanted)
    add = tuple(Entry(s, description) for s in sorted(wanted - listed))
    return Delta(remove, add, setting.key)


def fold(record: Record, delta: Delta) -> Record:
    """The record after ``delta`` was sent: undoing one of our own changes cancels it, anything else is ours."""
    removed = {e.key: e for e in record.removed}
    added = {e.key: e for e in record.added}
    for e in delta.remove:
        if added.pop(e.key, None) is None:
            removed.setdefault(e.key, e)
    for e in delta.add:
        if removed.pop(e.key, None) is None:
            added.setdefault(e.key, e)
    return Record(
        record.service_id,
        delta.applied if delta.applied is not None else record.applied,
        tuple(removed.values()),
        tuple(added.values()),
        None,
    )


def remaining(intent: Delta, live: Sequence[Entry]) -> Delta:
    """What of a recorded intent the list does not show yet (a kill before its PATCH: all of it)."""
    listed = {e.key: e for e in live}
    remove = tuple(listed[e.key] for e in intent.remove if e.key in listed)
    add = tuple(e for e in intent.add if e.key not in listed)
    return Delta(remove, add, intent.applied)


def with_intent(record: Record, delta: Delta) -> Record:
    """The record to write before sending ``delta``: an entry to be added is written back to its own key
    (ours, by description); what to remove keeps ClickHouse's spelling."""
    # Put back what we removed with its original description, not ours.
    removed = {e.key: e for e in record.removed}
    add = tuple(removed.get(e.key, e) for e in delta.add)
    return replace(record, intent=Delta(delta.remove, add, delta.applied))


def restore(record: Record, live: Sequence[Entry]) -> Delta:
    """Undo exactly what the record says the operator changed and the list still shows: put back what we
    removed and is still absent, remove what we added and is still listed."""
    listed = {e.key: e for e in live}
    add = tuple(e for e in record.removed if e.key not in listed)
    remove = tuple(listed[e.key] for e in record.added if e.key in listed)
    return Delta(remove, add, None)


@dataclass(frozen=True)
class Standing:
    """How the list stands against a setting: entries it should not have, and sources it lacks."""

    extra: tuple[Entry, ...]
    missing: tuple[str, ...]

    @property
    def met(self) -> bool:
        return not self.extra and not self.missing

    def differences(self) -> str:
        parts = []
        if self.extra:
            parts.append(f"{describe_entries(self.extra)} listed")
        if self.missing:
            parts.append(f"{', '.join(self.missing)} missing")
        return "; ".join(parts)


def standing(setting: Setting, live: Sequence[Entry]) -> Standing:
    wanted = setting.wanted()
    listed = {e.key for e in live}
    return Standing(
        extra=tuple(e for e in live if e.key not in wanted), missing=tuple(sorted(wanted - listed))
    )


def describe_entries(entries: Iterable[Entry]) -> str:
    return ", ".join(sorted(e.source for e in entries)) or "none"


def entries_from(live: Iterable[Any]) -> tuple[Entry, ...]:
    """Entries from anything with ``source`` and ``description`` attributes (the client's model)."""
    return tuple(Entry(str(e.source), str(e.description or "")) for e in live)


def verdict(
    me: User, force: User | None, live: Sequence[Entry], service_name: str
) -> tuple[bool, Reason, str]:
    """Condition PublicAccessRestricted for ``me`` (which has a setting): ok, reason, message.

    Deterministic for an unchanged list, so a steady state rewrites nothing.
    """
    assert me.setting is not None
    mine = me.setting
    where = f"the IP access list of {service_name}"
    other = force.setting if force is not None and force.uid != me.uid else None
    if force is not None and other is not None and other.key != mine.key:
        return (
            False,
            Reason.PUBLIC_ACCESS_SETTING_OF_OTHER_RESOURCE,
            f"{where} follows publicAccess of {force.resource} (the service's oldest resource with a "
            f"setting): {other.describe()}, not this resource's ({mine.describe()})",
        )
    state = standing(mine, live)
    if not state.met:
        return (
            False,
            Reason.PUBLIC_ACCESS_CHANGED_BY_OTHERS,
            f"{where} was changed since the operator set it to {mine.describe()}: {state.differences()}. The "
            "operator leaves changes made since alone: edit the list, or set publicAccess to Unchanged and "
            "back to apply it again",
        )
    reason = Reason.PUBLIC_ACCESS_ALLOW_LIST if mine.mode == ALLOW_LIST else Reason.PUBLIC_ACCESS_PRIVATE_ONLY
    message = (
        f"{where} admits {', '.join(sorted(mine.wanted()))} besides PrivateLink"
        if mine.mode == ALLOW_LIST
        else f"{where} has no entries: only PrivateLink reaches the service"
    )
    if force is not None and force.uid != me.uid:
        message += f" (the setting of {force.resource}, its oldest resource with one, is the same)"
    return True, reason, message


def diagnosis(setting: Setting | None, live: Sequence[Entry], service_name: str) -> tuple[bool | None, str]:
    """The diagnose command's line on the service's public IP access list: (met, what it says).

    ``met`` is None where the resource sets nothing (Unchanged): the line only says what the list admits, as a
    person asking why the service is still reachable publicly wants to know.
    """
    where = f"the IP access list of {service_name}"
    if setting is None:
        listed = describe_entries(live)
        return None, f"publicAccess is Unchanged: the operator leaves {where} alone (it admits: {listed})"
    state = standing(setting, live)
    if state.met:
        return True, f"{where} is as publicAccess asks: {setting.describe()}"
    return False, (
        f"{where} differs from publicAccess ({setting.describe()}): {state.differences()}; see the resource's "
        "PublicAccessRestricted condition"
    )
