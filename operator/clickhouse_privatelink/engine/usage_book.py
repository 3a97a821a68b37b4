"""The users of shared objects as this process sees them: the durable index, plus what is in flight.

The durable part is a kopf index of every ClickHousePrivateLink (rebuilt from the cluster at start-up, so it
survives restarts). A pass that is about to start using an object registers a *claim* first, under the
object's lock, so a concurrent release in this process sees the new user before its status is written.
Claims only ever add users; they never stand in for the durable state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter

from clickhouse_privatelink.decisions.usage import Usage


@dataclass
class UsageBook:
    _claims: dict[str, Usage] = field(default_factory=dict)
    _by_vpc: dict[tuple[str, str], dict[str, Usage]] = field(default_factory=dict)  # the same claims
    _locks: dict[Hashable, asyncio.Lock] = field(default_factory=dict)

    def lock(self, key: Hashable) -> asyncio.Lock:
        """One lock per shared object: its users are counted and it is changed under this lock."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def claim(self, usage: Usage) -> None:
        """Record what a resource uses now (replacing its earlier claim)."""
        self.drop(usage.uid)
        self._claims[usage.uid] = usage
        self._by_vpc.setdefault((usage.region, usage.vpc_id), {})[usage.uid] = usage

    def claimed(self, uid: str) -> Usage | None:
        """What this process last saw the resource use (fresher than a body a handler got earlier)."""
        return self._claims.get(uid)

    def drop(self, uid: str) -> None:
        """The resource is gone: it no longer uses anything."""
        usage = self._claims.pop(uid, None)
        if usage is not None:
            self._by_vpc[(usage.region, usage.vpc_id)].pop(uid, None)

    def users(self, indexed: Sequence[Usage], region: str, vpc_id: str) -> list[Usage]:
        """The durable users of this VPC's objects, each replaced by its fresher claim where there is one.

        (Every pass asks, with a thousand users: dictionaries merged whole, a loop only over deletions.)
        """
        merged = dict(zip(map(_uid, indexed), indexed, strict=True))
        claims = self._by_vpc.get((region, vpc_id))
        if claims:
            for durable in indexed:
                if not durable.deleting:
                    continue
                usage = claims.get(durable.uid)
                # A deletion the index has seen wins over a claim made before it (for good: a deletion is never
                # taken back, so the claim is corrected once, not on every call).
                if usage is not None and not usage.deleting:
                    self.claim(replace(usage, deleting=True))
            merged.update(claims)
        return list(merged.values())


_uid = attrgetter("uid")
