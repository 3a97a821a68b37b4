"""The users of shared objects as this process sees them: the durable index, plus what is in flight.

The durable part is a kopf index of every ClickHousePrivateLink (rebuilt from the cluster at start-up, so it
survives restarts). A pass that is about to start using an object registers a *claim* first, under the
object's lock, so a concurrent release in this process sees the new user before its status is written.
Claims only ever add users; they never stand in for the durable state.

Every pass asks for its VPC's users, a thousand of them at scale, several times a pass: the merged view of
each VPC is kept between calls and brought up to date with what changed (the index's entries that are not
the same objects as last time, and each claim as it is made), instead of being merged whole on every call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from itertools import compress
from operator import attrgetter, is_not

from clickhouse_privatelink.decisions.usage import Usage


@dataclass
class _View:
    """One VPC's users as last asked for: the durable entries then, by UID, and merged with the claims."""

    durable: list[Usage]
    by_uid: dict[str, Usage]
    merged: dict[str, Usage]
    claimed: set[str] = field(default_factory=set)  # claims made since: checked against the index next call


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
            view.merged[usage.uid] = usage
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
            durable = view.by_uid.get(uid)
            if durable is None:
                view.merged.pop(uid, None)
            else:
                view.merged[uid] = durable

    def users(self, indexed: Sequence[Usage], region: str, vpc_id: str) -> list[Usage]:
        """The durable users of this VPC's objects, each replaced by its fresher claim where there is one.

        A deletion the index has seen wins over a claim made before it (for good: a deletion is never taken
        back, so the claim is corrected once, not on every call).
        """
        vpc = (region, vpc_id)
        durable = list(indexed)
        view = self._views.get(vpc)
        if view is None or not self._catch_up(vpc, view, durable):
            view = self._views[vpc] = _View(durable, dict(zip(map(_uid, durable), durable, strict=True)), {})
            view.merged = dict(view.by_uid)
            view.merged.update(self._by_vpc.get(vpc, {}))
            for seen in filter(_deleting, durable):
                self._deleted(vpc, seen)
        elif view.claimed:
            for uid in list(view.claimed):
                entry = view.by_uid.get(uid)
                if entry is not None and entry.deleting:
                    self._deleted(vpc, entry)
        view.claimed.clear()
        return list(view.merged.values())

    def _catch_up(self, vpc: tuple[str, str], view: _View, durable: list[Usage]) -> bool:
        """Bring ``view`` up to ``durable`` entry by entry; False when that cannot be done (entries came or went).

        kopf's index keeps an entry in its place while it is replaced, and the same object while it is equal:
        the changed entries are the positions whose objects are not the ones seen last time.
        """
        before = view.durable
        if len(before) != len(durable):
            return False
        if before == durable:  # the same objects (identity first, element by element, at C speed)
            return True
        changed = list(compress(durable, map(is_not, before, durable)))
        olds = list(compress(before, map(is_not, before, durable)))
        if any(old.uid != new.uid for old, new in zip(olds, changed, strict=True)):
            return False
        view.durable = durable
        claims = self._by_vpc.get(vpc, {})
        for usage in changed:
            view.by_uid[usage.uid] = usage
            view.merged[usage.uid] = claims.get(usage.uid, usage)
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
