"""Read the ClickHouse Cloud API key from the Secret a resource references."""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass, field

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from clickhouse_privatelink.api.models import SecretKeyRef


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
    """Reads Secrets through the Kubernetes API (kubeconfig or in-cluster service account)."""

    def __init__(self) -> None:
        self._api: client.CoreV1Api | None = None

    def _core(self) -> client.CoreV1Api:
        if self._api is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            self._api = client.CoreV1Api()
        return self._api

    async def api_key(self, namespace: str, ref: SecretKeyRef) -> ApiKey:
        """The key named by ``ref`` in ``namespace``, or a CredentialsError saying what is wrong."""
        return await asyncio.to_thread(self._read, namespace, ref)

    def _read(self, namespace: str, ref: SecretKeyRef) -> ApiKey:
        try:
            secret = self._core().read_namespaced_secret(ref.name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise CredentialsError(f"Secret {namespace}/{ref.name} not found", missing=True) from None
            if exc.status == 403:
                raise CredentialsError(
                    f"the operator may not read Secret {namespace}/{ref.name} (RBAC): is the namespace watched, "
                    "and is the name in the chart's rbac.secretNames?",
                    missing=True,
                ) from None
            raise
        data = secret.data or {}
        values: list[str] = []
        for key in (ref.key_id_key, ref.key_secret_key):
            raw = data.get(key)
            if not raw:
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
