"""A new resource's first intent, carried by an annotation: pure, no I/O.

A pass writes what it has learned on the resource before each external write (its intent: engine/context.py,
``Pass.before_write``), so that a process killed right after that write leaves a resource that names what it
was making. The first such write of a new resource also adds the operator's finalizer, which lives in the
metadata, while the status is a subresource of its own: two PATCHes, each a watch event that every
replica's kopf processes. So the first intent goes into the metadata too, as this annotation, in the one
JSON patch that adds the finalizer; later intents go into the status as before.

The annotation is read only while the status has no ``observedGeneration`` (no pass has ended since: the
status is then the first pass's intents at most), under the status's own fields, and only when it names
the resource's own UID (a manifest exported with its annotations and applied again is a new object) and the
resource carries the finalizer it was written with. Only the intent's own fields are taken, each of its
type. The annotation stays on the resource afterwards: removing it would be one more PATCH, and nothing
reads it once a pass has ended. A person can edit annotations where the status is the operator's alone;
what an edited intent can claim is bounded by the same checks every release makes (tags, TXT markers and
every other live user of an object are read before anything is deleted), as a status would be.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from clickhouse_privatelink import constants as c

# The status fields an intent may carry (the JSON keys of engine/context.py's INTENT_FIELDS and of
# ``allowListEntryAdded``) and each one's type.
INTENT_KEYS: Mapping[str, type] = {
    "serviceId": str,
    "serviceRegion": str,
    "endpointServiceId": str,
    "privateDnsHostname": str,
    "vpcEndpointId": str,
    "vpcEndpointOwned": bool,
    "hostedZoneId": str,
    "allowListEntryAdded": bool,
}
UID_KEY = "uid"


def encode_intent(uid: str, fields: Mapping[str, Any]) -> str:
    """The annotation's value: the intent's status fields (JSON keys) and the UID of the resource it is on."""
    unknown = sorted(set(fields) - set(INTENT_KEYS))
    if unknown:
        raise ValueError(f"not intent fields: {', '.join(unknown)}")
    return json.dumps({UID_KEY: uid, **fields}, separators=(",", ":"), sort_keys=True)


def decode_intent(body: Mapping[str, Any]) -> dict[str, Any]:
    """The intent fields the body's annotation carries for it (see the module docstring); {} when none."""
    meta = body.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(c.ANNOTATION_INTENT)
    if not isinstance(raw, str) or c.FINALIZER not in (meta.get("finalizers") or ()):
        return {}
    try:
        decoded = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(decoded, dict) or not meta.get("uid") or decoded.get(UID_KEY) != meta.get("uid"):
        return {}
    return {
        key: value
        for key, value in decoded.items()
        if key in INTENT_KEYS and type(value) is INTENT_KEYS[key] and value != ""
    }


def reads_intent(status: Mapping[str, Any]) -> bool:
    """Whether the intent annotation is read under this status: until a pass has ended (it sets
    ``observedGeneration``); so also whether a first intent may still go into the annotation."""
    return "observedGeneration" not in status


def recorded_status(body: Mapping[str, Any], status: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """The status a pass and the index read: the body's own (or ``status``, the body's as this process knows it,
    its own writes included), over the first intent until a pass has ended (that mapping itself, not a copy,
    whenever there is no intent to add)."""
    if status is None:
        status = body.get("status") or {}
    if not reads_intent(status):
        return status
    intent = decode_intent(body)
    return {**intent, **status} if intent else status
