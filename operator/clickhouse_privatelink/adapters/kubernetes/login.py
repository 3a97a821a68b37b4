"""The operator's kopf login: kopf's built-in logins, shared with the Secret reader and the status writes.

wiring/handlers.py registers a ``@kopf.on.login()`` handler that calls this with the process's connection
holder (nothing registers at import). It replaces kopf's automatic choice, which would pick the Kubernetes
client library when it happens to be installed: the operator logs in the same way whether it is (tests) or
not (the image).
"""

from __future__ import annotations

import kopf

from clickhouse_privatelink.adapters.kubernetes.api import ConnectionHolder, login


def login_for_kopf_and_secrets(
    settings: kopf.OperatorSettings, connection: ConnectionHolder
) -> kopf.ConnectionInfo | None:
    """kopf's login, kept in ``connection`` too. Called at start-up and again whenever the API answers 401
    (e.g. a rotated token)."""
    info = login(settings)
    connection.set(info)
    return info
