"""The users of shared objects as this process sees them: the durable index, plus what is in flight.

The durable part is a kopf index of every ClickHousePrivateLink (rebuilt from the cluster at start-up, so it
survives restarts). A pass that is about to start using an object registers a *claim* first, under the
object's lock, so a concurrent release in this process sees the new user before its status is written.
Claims only ever add users; they never stand in for the durable state.

Every pass asks for its VPC's users, a thousand of them at scale, several times a pass: the merged view of
each VPC is kept between calls and brought up to date with what changed (the index's entries that came, went
or are not the same objects as last time, and each claim as it is made), instead of being merged whole on
every call. The view also keeps its users grouped by the values the lookups of ``decisions/usage.py``
compare, so that "who uses this endpoint, zone, record or allow-list entry" reads a group, not every user.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field, replace
from itertools import chain, compress
from operator import attrgetter, is_not, not_

from clickhouse_privatelink.decisions.usage import LOOKUPS, Usage, Users, settings_leader


@dataclass
class _View:
    """One VPC's users as last asked for: the durable entries then, by UID, and merged with the claims."""

    durable: list[Usage] = field(default_factory=list)
    by_uid: dict[str, Usage] = field(default_factory=dict)
    uids: list[str] = field(default_factory=list)  # the durable entries' UIDs, in their order
    merged: dict[str, Usage] = field(default_factory=dict)
    # The merged users by each lookup's value (None values are not kept: no lookup asks for them).
    groups: dict[str, dict[object, dict[str, Usage]]] = field(
        default_factory=lambda: {name: {} for name in LOOKUPS}
    )
    # The settings leader of each endpoint (by ``endpoint_match``) as last found, kept up to date by ``put``
    # (an older live user takes over; the leader leaving or changing forgets it until it is asked for again).
    leaders: dict[object, Usage | None] = field(default_factory=dict)
    version: int = 0  # counts the changes to ``merged``; -1 once the view is replaced
    claimed: set[str] = field(default_factory=set)  # claims made since: checked against the index next call

    def put(self, uid: str, usage: Usage | None) -> None:
        """``usage`` is what ``uid`` uses now (None: nothing), in the merged users and their groups."""
        old = self.merged.get(uid)
        if old is usage:
            return
        self.version += 1
        for name, groups in self.groups.items():
            if old is not None and (value := getattr(old, name)) is not None:
                group = groups[value]
                del group[uid]
                if not group:
                    del groups[value]
            if usage is not None and (value := getattr(usage, name)) is not None:
                groups.setdefault(value, {})[uid] = usage
        if usage is None:
            self.merged.pop(uid, None)
        else:
            self.merged[uid] = usage
        leaders = self.leaders
        if old is not None and leaders.get(old.endpoint_match) is old:
            del leaders[old.endpoint_match]
        if usage is not None and not usage.deleting and usage.endpoint_match in leaders:
            leader = leaders[usage.endpoint_match]
            if leader is None or usage.age < leader.age:
                leaders[usage.endpoint_match] = usage

    def users(self) -> Users:
        version = self.version

        def find(name: str, value: object) -> list[Usage] | None:
            if self.version != version or value is None:
                return None
            return list(self.groups[name].get(value, {}).values())

        def lead(value: object) -> tuple[bool, Usage | None]:
            if self.version != version:
                return False, None
            if value not in self.leaders:
                self.leaders[value] = settings_leader(
                    list(self.groups["endpoint_match"].get(value, {}).values())
                )
            return True, self.leaders[value]

        return Users(self.merged.values(), find, lead)


@dataclass
class UsageBook:
    _claims: dict[str, Usage] = field(default_factory=dict)
    _by_vpc: dict[tuple[str, str], dict[str, Usage]] = field(default_factory=dict)  # the same claims
    _locks: dict[Hashable, asyncio.Lock] = field(default_factory=dict)
    _views: dict[tuple[str, str], _View] = field(default_factory=dict)

    def lock(self, key: Hashable) -> asyncio.Lock:
        """One lock per shared object: its users are counted and it is changed under this lock."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def claim(self, usage: Usage) -> None:
        """Record what a resource uses now (replacing its earlier claim)."""
        self.drop(usage.uid)
        vpc = (usage.region, usage.vpc_id)
        self._claims[usage.uid] = usage
        self._by_vpc.setdefault(vpc, {})[usage.uid] = usage
        view = self._views.get(vpc)
        if view is not None:
            view.put(usage.uid, usage)
            if not usage.deleting:
                view.claimed.add(usage.uid)

    def claimed(self, uid: str) -> Usage | None:
        """What this process last saw the resource use (fresher than a body a handler got earlier)."""
        return self._claims.get(uid)

    def drop(self, uid: str) -> None:
        """The resource is gone: it no longer uses anything."""
        usage = self._claims.pop(uid, None)
        if usage is None:
            return
        vpc = (usage.region, usage.vpc_id)
        self._by_vpc[vpc].pop(uid, None)
        view = self._views.get(vpc)
        if view is not None:  # the durable entry, if any, shows again
            view.put(uid, view.by_uid.get(uid))

    def users(self, indexed: Iterable[Usage], region: str, vpc_id: str) -> list[Usage]:
        """The durable users of this VPC's objects, each replaced by its fresher claim where there is one.

        A deletion the index has seen wins over a claim made before it (for good: a deletion is never taken
        back, so the claim is corrected once, not on every call).
        """
        vpc = (region, vpc_id)
        durable = list(indexed)
        view = self._views.get(vpc)
        if view is None or not self._catch_up(vpc, view, durable):
            if view is not None:
                view.version = -1  # lists it handed out no longer find through it
            uids = list(map(_uid, durable))
            view = self._views[vpc] = _View(durable, dict(zip(uids, durable, strict=True)), uids)
            for usage in durable:
                view.put(usage.uid, usage)
            for usage in self._by_vpc.get(vpc, {}).values():
                view.put(usage.uid, usage)
            for seen in filter(_deleting, durable):
                self._deleted(vpc, seen)
        elif view.claimed:
            for uid in list(view.claimed):
                entry = view.by_uid.get(uid)
                if entry is not None and entry.deleting:
                    self._deleted(vpc, entry)
        view.claimed.clear()
        return view.users()

    def _catch_up(self, vpc: tuple[str, str], view: _View, durable: list[Usage]) -> bool:
        """Bring ``view`` up to ``durable`` entry by entry; False when that cannot be done (entries reordered).

        kopf's index keeps an entry in its place while it is replaced (the same object while it is equal),
        adds new entries at the end and takes gone ones out: the changed entries are the positions whose
        objects are not the ones seen last time, once the gone ones are taken out, and those after them.
        """
        before = view.durable
        if before == durable:  # the same objects (identity first, element by element, at C speed)
            return True
        old_uids, new_uids = view.uids, list(map(_uid, durable))
        removed: list[Usage] = []
        if old_uids != new_uids:
            gone = set(old_uids).difference(new_uids)
            if gone:
                stays = list(map(not_, map(gone.__contains__, old_uids)))
                removed = list(compress(before, map(not_, stays)))
                before, old_uids = list(compress(before, stays)), list(compress(old_uids, stays))
            if new_uids[: len(old_uids)] != old_uids:
                return False
        kept = durable[: len(before)]
        changed = compress(kept, map(is_not, before, kept))
        view.durable, view.uids = durable, new_uids
        claims = self._by_vpc.get(vpc, {})
        for usage in removed:
            del view.by_uid[usage.uid]
            view.put(usage.uid, claims.get(usage.uid))
        for usage in chain(changed, durable[len(before) :]):
            view.by_uid[usage.uid] = usage
            view.put(usage.uid, claims.get(usage.uid, usage))
            if usage.deleting:
                self._deleted(vpc, usage)
        return True

    def _deleted(self, vpc: tuple[str, str], seen: Usage) -> None:
        """The index has seen ``seen`` being deleted: a live claim on it is corrected, once."""
        usage = self._by_vpc.get(vpc, {}).get(seen.uid)
        if usage is not None and not usage.deleting:
            self.claim(replace(usage, deleting=True))


_uid = attrgetter("uid")
_deleting = attrgetter("deleting")
