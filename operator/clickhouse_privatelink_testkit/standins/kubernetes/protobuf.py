"""Decoding of the protobuf request bodies ``kubectl create`` sends for a few built-in kinds.

kubectl's typed clients POST ``application/vnd.kubernetes.protobuf`` and do not fall back to JSON
on 415, so ``kubectl create namespace|secret|configmap`` needs this. Responses are always JSON
(kubectl also accepts it). Field numbers are those of k8s.io/api's generated.proto files.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from typing import Any

from clickhouse_privatelink_testkit.standins.kubernetes.errors import ApiError

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"

Decoder = Callable[[bytes], Any]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of a message: ints for varints, bytes for length-delimited."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            out.append((number, data[pos : pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def _string(value: int | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bytes_b64(value: int | bytes) -> str:
    return base64.b64encode(value if isinstance(value, bytes) else b"").decode()


def _int(value: int | bytes) -> int:
    return value if isinstance(value, int) else 0


def _bool(value: int | bytes) -> bool:
    return bool(value) if isinstance(value, int) else False


def _time(value: int | bytes) -> str:
    seconds = 0
    for number, item in _fields(value if isinstance(value, bytes) else b""):
        if number == 1:
            seconds = _int(item)
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Per message: field number -> (json name, decoder, kind) with kind "one", "list" or "map".
Spec = dict[int, tuple[str, Callable[[int | bytes], Any], str]]


def _message(spec: Spec) -> Callable[[int | bytes], dict[str, Any]]:
    def decode(raw: int | bytes) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for number, value in _fields(raw if isinstance(raw, bytes) else b""):
            if number not in spec:
                continue
            name, decoder, kind = spec[number]
            if kind == "list":
                out.setdefault(name, []).append(decoder(value))
            elif kind == "map":
                entry = dict(_fields(value if isinstance(value, bytes) else b""))
                out.setdefault(name, {})[_string(entry.get(1, b""))] = decoder(entry.get(2, b""))
            else:
                out[name] = decoder(value)
        return out

    return decode


_OWNER_REFERENCE = _message(
    {
        1: ("kind", _string, "one"),
        3: ("name", _string, "one"),
        4: ("uid", _string, "one"),
        5: ("apiVersion", _string, "one"),
        6: ("controller", _bool, "one"),
        7: ("blockOwnerDeletion", _bool, "one"),
    }
)
_OBJECT_META = _message(
    {
        1: ("name", _string, "one"),
        2: ("generateName", _string, "one"),
        3: ("namespace", _string, "one"),
        5: ("uid", _string, "one"),
        6: ("resourceVersion", _string, "one"),
        7: ("generation", _int, "one"),
        8: ("creationTimestamp", _time, "one"),
        9: ("deletionTimestamp", _time, "one"),
        10: ("deletionGracePeriodSeconds", _int, "one"),
        11: ("labels", _string, "map"),
        12: ("annotations", _string, "map"),
        13: ("ownerReferences", _OWNER_REFERENCE, "list"),
        14: ("finalizers", _string, "list"),
    }
)
_KINDS: dict[str, Callable[[int | bytes], dict[str, Any]]] = {
    "Namespace": _message(
        {
            1: ("metadata", _OBJECT_META, "one"),
            2: ("spec", _message({1: ("finalizers", _string, "list")}), "one"),
            3: ("status", _message({1: ("phase", _string, "one")}), "one"),
        }
    ),
    "ConfigMap": _message(
        {
            1: ("metadata", _OBJECT_META, "one"),
            2: ("data", _string, "map"),
            3: ("binaryData", _bytes_b64, "map"),
            4: ("immutable", _bool, "one"),
        }
    ),
    "Secret": _message(
        {
            1: ("metadata", _OBJECT_META, "one"),
            2: ("data", _bytes_b64, "map"),
            3: ("type", _string, "one"),
            4: ("stringData", _string, "map"),
            5: ("immutable", _bool, "one"),
        }
    ),
}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object (415 for kinds this stand-in cannot decode)."""
    try:
        if not body.startswith(_MAGIC):
            raise ValueError("missing the k8s protobuf envelope")
        envelope = dict(_fields(body[len(_MAGIC) :]))
        raw_type_meta = envelope.get(1, b"")
        type_meta = dict(_fields(raw_type_meta if isinstance(raw_type_meta, bytes) else b""))
        api_version = _string(type_meta.get(1, b""))
        kind = _string(type_meta.get(2, b""))
        decoder = _KINDS.get(kind)
        if decoder is None:
            raise ApiError(
                415, "UnsupportedMediaType", f"protobuf bodies of kind {kind!r} are not supported; send JSON"
            )
        obj = decoder(envelope.get(2, b""))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "BadRequest", f"the object provided is unrecognized: {exc}") from exc
    return {"apiVersion": api_version, "kind": kind, **obj}
