"""The operator's ``@kopf.on.login()`` handler: kopf's built-in logins, shared with the Secret reader.

``wiring/handlers.register`` puts it on the operator's registry (nothing registers at import). It
replaces kopf's automatic choice, which would pick the Kubernetes client library when it happens to be
installed: the operator logs in the same way whether it is (tests) or not (the image).
"""

from __future__ import annotations

from typing import Any

import kopf

from clickhouse_privatelink.adapters.kubernetes.api import CONNECTION, login


def login_for_kopf_and_secrets(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
    """Called by kopf at start-up and again whenever the API answers 401 (e.g. a rotated token)."""
    info = login(settings)
    CONNECTION.set(info)
    return info
