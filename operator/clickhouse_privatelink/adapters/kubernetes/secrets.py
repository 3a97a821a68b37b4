"""Read the ClickHouse Cloud API key from the Secret a resource references.

One GET through kopf's own login (``api.py``): no Kubernetes client library in the image. Only a Secret that
opted in (label ``privatelink.clickhouse.dev/api-key: "true"``) is used, unless the tenancy policy waives
it; a Secret that is missing, not opted in or not readable gets one and the same message, so a tenant learns
nothing of a Secret they were not meant to use (not even whether it exists, nor its keys).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from dataclasses import dataclass, field

from clickhouse_privatelink.adapters.kubernetes.api import (
    ConnectionHolder,
    KubernetesApiError,
    get_json,
    object_path,
)
from clickhouse_privatelink.api.models import SecretKeyRef
from clickhouse_privatelink.constants import LABEL_API_KEY


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    key_secret: str = field(repr=False)  # never printed, logged or put in an exception


class CredentialsError(Exception):
    """The Secret is missing or does not hold a usable key. ``missing`` tells which of the two."""

    def __init__(self, message: str, *, missing: bool) -> None:
        super().__init__(message)
        self.missing = missing


class SecretReader:
    """Reads Secrets through the Kubernetes API with the connection kopf logged in with.

    ``connection``: the operator's holder (filled by the ``@kopf.on.login()`` handler); without one, a holder
    of its own that logs in on first use ($KUBECONFIG, the pod's service account, ~/.kube/config).
    """

    def __init__(self, connection: ConnectionHolder | None = None, *, timeout: float = 10.0) -> None:
        self._connection = connection if connection is not None else ConnectionHolder()
        self._timeout = timeout
        # Keys read recently, by (namespace, name, keyId key, keySecret key, opt-in required): a drift period
        # reads each Secret once, not once per resource. Errors are never kept.
        self._kept: dict[tuple[str, str, str, str, bool], tuple[ApiKey, float]] = {}
        self._reading: dict[tuple[str, str, str, str, bool], asyncio.Future[ApiKey]] = {}

    def forget(self, namespace: str, name: str) -> None:
        """The Secret changed (or its key was refused): the next use reads it again."""
        for kept in [k for k in self._kept if k[:2] == (namespace, name)]:
            del self._kept[kept]

    async def api_key(
        self, namespace: str, ref: SecretKeyRef, *, max_age: float = 0.0, require_opt_in: bool = True
    ) -> ApiKey:
        """The key named by ``ref`` in ``namespace`` (read at most ``max_age`` seconds ago), or a
        CredentialsError saying what is wrong. ``require_opt_in``: only from a Secret carrying the opt-in label."""
        ident = (namespace, ref.name, ref.key_id_key, ref.key_secret_key, require_opt_in)
        kept = self._kept.get(ident)
        if kept is not None and time.monotonic() - kept[1] <= max_age:
            return kept[0]
        # Many resources using one Secret wait on one read of it, not one read each.
        reading = self._reading.get(ident)
        if reading is None:
            reading = self._reading[ident] = asyncio.ensure_future(self._read(namespace, ref, require_opt_in))
            reading.add_done_callback(lambda _: self._reading.pop(ident, None))
        key = await asyncio.shield(reading)
        self._kept[ident] = (key, time.monotonic())
        return key

    async def _read(self, namespace: str, ref: SecretKeyRef, require_opt_in: bool) -> ApiKey:
        unreadable = CredentialsError(
            f"Secret {namespace}/{ref.name} is not readable by the operator: it must exist, carry the label "
            f"{LABEL_API_KEY}: \"true\" (the opt-in), and be a name the operator's RBAC allows (the chart's "
            "rbac.secretNames)",
            missing=True,
        )
        try:
            secret = await get_json(
                object_path(namespace, "secrets", ref.name),
                connection=self._connection,
                request_timeout=self._timeout,
            )
        except KubernetesApiError as exc:
            if exc.status == 403:
                raise unreadable from None
            raise
        labels = ((secret or {}).get("metadata") or {}).get("labels") or {}
        if secret is None or (require_opt_in and labels.get(LABEL_API_KEY) != "true"):
            raise unreadable
        data = secret.get("data") or {}
        if not isinstance(data, dict):
            raise CredentialsError(f"Secret {namespace}/{ref.name} has no data", missing=False)
        values: list[str] = []
        for key in (ref.key_id_key, ref.key_secret_key):
            raw = data.get(key)
            if not raw or not isinstance(raw, str):
                raise CredentialsError(f"Secret {namespace}/{ref.name} has no key {key!r}", missing=False)
            try:
                values.append(base64.b64decode(raw, validate=True).decode("utf-8").strip())
            except (binascii.Error, UnicodeDecodeError):
                raise CredentialsError(
                    f"Secret {namespace}/{ref.name} key {key!r} is not valid UTF-8 text", missing=False
                ) from None
            if not values[-1]:
                raise CredentialsError(f"Secret {namespace}/{ref.name} key {key!r} is empty", missing=False)
        return ApiKey(key_id=values[0], key_secret=values[1])
