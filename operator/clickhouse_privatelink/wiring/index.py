"""One kopf index of every ClickHousePrivateLink, looked up by four kinds of key.

kopf runs every index function of a resource kind on every watch event of it, each through its whole handler
machinery (about 0.1 ms a call): at a thousand resources, four index functions cost more operator CPU than
the values they compute. So one function files each resource under every key a handler looks it up by:

- ``(region, VPC)``: the durable users of that VPC's shared objects (decisions/usage.py);
- a hosted zone ID (a string): the users writing into that zone from any VPC (a named zone may serve several);
- ``Refused(namespace)``: resources the tenancy policy refused, looked at again when a policy or namespace changes;
- ``PublicAccessOf(service_id)``: resources with a publicAccess setting or record for that service;
- ``SecretUsers(namespace, name)``: resources naming that API-key Secret (only while Secrets are watched).

Keys of different kinds never compare equal (a pair, a string, and frozen dataclasses of their own class).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from clickhouse_privatelink.decisions import public_access
from clickhouse_privatelink.decisions.reasons import ConditionType, Reason
from clickhouse_privatelink.decisions.status import condition
from clickhouse_privatelink.decisions.usage import Usage, usage_from_body, vpc_index_key, zone_index_key

NAME = "chpl_resources"  # the index's name: the keyword argument kopf hands it to handlers by

Index = Mapping[Hashable, Iterable[Any]]


@dataclass(frozen=True, slots=True)
class Refused:
    namespace: str


@dataclass(frozen=True, slots=True)
class PublicAccessOf:
    service_id: str


@dataclass(frozen=True, slots=True)
class SecretUsers:
    namespace: str
    name: str


def refused_name(body: kopf.Body) -> str | None:
    """The resource's name when the tenancy policy refused it (its Ready reason says so), else None."""
    ready = condition(list(body.status.get("conditions") or []), ConditionType.READY)
    if ready is None or ready.get("reason") != Reason.NOT_PERMITTED.value:
        return None
    return body.metadata.name or ""


def index_function(*, secrets: bool) -> Callable[..., Awaitable[dict[Hashable, Any]]]:
    """The index function; with ``secrets``, resources are also filed under the Secret they name.

    A coroutine, though it never awaits: kopf runs a plain function in its thread pool, a hop there and back
    on every watch event.
    """

    async def chpl_resources(body: kopf.Body, **_: Any) -> dict[Hashable, Any]:
        usage = usage_from_body(body)
        keys: dict[Hashable, Any] = {vpc_index_key(usage): usage}
        zone = zone_index_key(usage)
        if zone:
            keys[zone] = usage
        namespace = body.metadata.namespace or ""
        refused = refused_name(body)
        if refused is not None:
            keys[Refused(namespace)] = refused
        user = public_access.user_from_body(body)
        if user is not None:
            keys[PublicAccessOf(user.service_id)] = user
        if secrets:
            ref = (body.spec.get("clickhouse") or {}).get("credentialsSecretRef") or {}
            name = ref.get("name") if isinstance(ref, dict) else None
            if name:
                keys[SecretUsers(namespace, str(name))] = body.metadata.name or ""
        return keys

    return chpl_resources


def of(handler_kwargs: Mapping[str, Any]) -> Index:
    """The index as kopf hands it to a handler (the same live object every time)."""
    index: Index = handler_kwargs[NAME]
    return index


@dataclass(frozen=True, slots=True)
class Entries:
    """The index's entries under one key as they are each time they are iterated, in the index's order.

    Not a copy: a pass holds this for its whole life (a thousand passes waiting in the shared objects' rounds
    held a list of every user of the VPC each), and what it reads is the index now, not as the pass began.
    """

    index: Index
    key: Hashable

    def __iter__(self) -> Iterator[Any]:
        return iter(self.index.get(self.key, ()))


def vpc_users(index: Index, usage: Usage) -> Iterable[Usage]:
    """The durable users of the shared objects of ``usage``'s VPC."""
    return Entries(index, vpc_index_key(usage))


def zone_users(index: Index, usage: Usage) -> Iterable[Usage]:
    """The durable users of the zone ``usage`` writes into, from any VPC."""
    zone = zone_index_key(usage)
    return Entries(index, zone) if zone else ()


def refused_namespaces(index: Index) -> list[str]:
    """The namespaces holding resources the tenancy policy refused."""
    return [key.namespace for key in index if isinstance(key, Refused)]


def refused_in(index: Index, namespace: str) -> list[str]:
    """The names of the refused resources of ``namespace``, sorted, each once."""
    return sorted(set(index.get(Refused(namespace), ())))


def public_access_users(index: Index, service_id: str) -> list[public_access.User]:
    """The resources with a publicAccess setting or record for ``service_id``."""
    return list(index.get(PublicAccessOf(service_id), ()))


def secret_users(index: Index, namespace: str, name: str) -> list[str]:
    """The names of the resources naming the API-key Secret ``namespace/name``, sorted, each once."""
    return sorted(set(index.get(SecretUsers(namespace, name), ())))
