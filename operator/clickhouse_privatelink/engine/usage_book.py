"""The users of shared objects as this process sees them: the durable index, plus what is in flight.

The durable part is a kopf index of every ClickHousePrivateLink (rebuilt from the cluster at start-up, so it
survives restarts). A pass that is about to start using an object registers a *claim* first, under the
object's lock, so a concurrent release in this process sees the new user before its status is written.
Claims only ever add users; they never stand in for the durable state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field, replace

from clickhouse_privatelink.decisions.usage import Usage


@dataclass
class UsageBook:
    _claims: dict[str, Usage] = field(default_factory=dict)
    _locks: dict[Hashable, asyncio.Lock] = field(default_factory=dict)

    def lock(self, key: Hashable) -> asyncio.Lock:
        """One lock per shared object: its users are counted and it is changed under this lock."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def claim(self, usage: Usage) -> None:
        """Record what a resource uses now (replacing its earlier claim)."""
        self._claims[usage.uid] = usage

    def claimed(self, uid: str) -> Usage | None:
        """What this process last saw the resource use (fresher than a body a handler got earlier)."""
        return self._claims.get(uid)

    def drop(self, uid: str) -> None:
        """The resource is gone: it no longer uses anything."""
        self._claims.pop(uid, None)

    def users(self, indexed: Iterable[Usage], region: str, vpc_id: str) -> list[Usage]:
        """The durable users of this VPC's objects, each replaced by its fresher claim where there is one."""
        merged = {u.uid: u for u in indexed}
        for usage in self._claims.values():
            if usage.region == region and usage.vpc_id == vpc_id:
                durable = merged.get(usage.uid)
                # A deletion the index has seen wins over a claim made before it (for good: a deletion is never
                # taken back, so the claim is corrected once, not on every call).
                if durable is not None and durable.deleting and not usage.deleting:
                    usage = self._claims[usage.uid] = replace(usage, deleting=True)
                merged[usage.uid] = usage
        return list(merged.values())
