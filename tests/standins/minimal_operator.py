"""A minimal kopf operator used to prove kopf runs against the Kubernetes stand-in.

On create it writes ``status.privateDnsHostname`` and posts an event; a delete handler makes kopf hold the object with
its finalizer until the handler has run.
"""

from __future__ import annotations

from typing import Any

import kopf

GROUP, VERSION, PLURAL = "privatelink.clickhouse.dev", "v1alpha1", "clickhouseprivatelinks"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.watching.server_timeout = 30
    settings.persistence.finalizer = "privatelink.clickhouse.dev/test-finalizer"


@kopf.on.create(GROUP, VERSION, PLURAL)
def created(name: str, namespace: str, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    patch.status["privateDnsHostname"] = f"{name}.{namespace}.example"
    kopf.info(body, reason="HostnameAssigned", message=f"{name}.{namespace}.example")


@kopf.on.delete(GROUP, VERSION, PLURAL)
def deleted(name: str, logger: kopf.Logger, **_: Any) -> None:
    logger.info(f"cleaning up {name}")
