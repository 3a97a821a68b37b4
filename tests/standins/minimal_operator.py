"""A minimal kopf operator used to prove kopf runs against the Kubernetes stand-in.

On create it writes ``status.privateDnsHostname`` and posts an event (after as many temporary failures, a second
apart, as the object's ``minimal/fail-first`` annotation asks for); a delete handler makes kopf hold the object with
its finalizer until the handler has run. With ``MINIMAL_OPERATOR_STORAGES=operator`` kopf keeps its progress and
diff-base as the operator has it keep them (clickhouse_privatelink/wiring/progress.py).
"""

from __future__ import annotations

import os
from typing import Any

import kopf

from clickhouse_privatelink.wiring.progress import StatusEssenceDiffBaseStorage, StatusProgressStorage

GROUP, VERSION, PLURAL = "privatelink.clickhouse.dev", "v1alpha1", "clickhouseprivatelinks"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.watching.server_timeout = 30
    settings.persistence.finalizer = "privatelink.clickhouse.dev/test-finalizer"
    if os.environ.get("MINIMAL_OPERATOR_STORAGES") == "operator":
        settings.persistence.progress_storage = StatusProgressStorage()
        settings.persistence.diffbase_storage = StatusEssenceDiffBaseStorage()


@kopf.on.create(GROUP, VERSION, PLURAL)
def created(name: str, namespace: str, body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
    if retry < int(body.metadata.annotations.get("minimal/fail-first", "0")):
        raise kopf.TemporaryError("not yet", delay=1)
    patch.status["privateDnsHostname"] = f"{name}.{namespace}.example"
    kopf.info(body, reason="HostnameAssigned", message=f"{name}.{namespace}.example")


@kopf.on.delete(GROUP, VERSION, PLURAL)
def deleted(name: str, logger: kopf.Logger, **_: Any) -> None:
    logger.info(f"cleaning up {name}")
