"""The status fields the engine reads and writes, typed: one attribute per field, ``None`` for absent.

A pass builds an ``EngineStatus`` from the resource's status once (``from_status``), its components assign
to it, and wiring turns it into the status's JSON (``to_json``: camelCase keys, absent fields left out) only
where it is written to Kubernetes. The attribute names are those of ``api.models.ClickHousePrivateLinkStatus``
(the schema's source), and their keys its aliases, read from it.

A plain slotted dataclass rather than the pydantic model: it is built, copied and written on every pass of
every resource, and validation there would only repeat what the operator itself wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from clickhouse_privatelink.api.models import ClickHousePrivateLinkStatus


@dataclass(slots=True)
class EngineStatus:
    """What a resource uses and how its endpoint stands (the status's fields other than conditions and
    ``publicAccess``, which have their own writers)."""

    service_id: str | None = None
    service_region: str | None = None
    endpoint_service_id: str | None = None
    private_dns_hostname: str | None = None
    endpoints: list[dict[str, object]] | None = None
    vpc_endpoint_id: str | None = None
    vpc_endpoint_state: str | None = None
    vpc_endpoint_owned: bool | None = None
    hosted_zone_id: str | None = None
    allow_list_entry_added: bool | None = None

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> EngineStatus:
        """The fields as the resource's status (its JSON) holds them; the others are not read."""
        get = status.get
        return cls(*(get(key) for key in KEYS))

    def to_json(self) -> dict[str, Any]:
        """The status's JSON of the fields that are present (camelCase keys, in the order of ``KEYS``)."""
        return {key: value for key, name in ITEMS if (value := getattr(self, name)) is not None}

    def copy(self) -> EngineStatus:
        return replace(self)


# Each attribute's key in the status's JSON: the API model's alias of the field of the same name.
NAMES: tuple[str, ...] = tuple(f.name for f in fields(EngineStatus))
KEYS: tuple[str, ...] = tuple(ClickHousePrivateLinkStatus.model_fields[name].alias or name for name in NAMES)
ITEMS: tuple[tuple[str, str], ...] = tuple(zip(KEYS, NAMES, strict=True))

__all__ = ["KEYS", "NAMES", "EngineStatus"]
