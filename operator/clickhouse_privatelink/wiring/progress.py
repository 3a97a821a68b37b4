"""kopf's progress records, made to forget a retry time once what the failed pass saw has changed.

kopf stores a handler's retry time on the resource (an annotation) and, until then, sleeps through every
change: a spec fixed after a terminal failure waited out the whole retry interval (and an operator restarted
with wider settings found the same stored time). Each record here also notes what the pass acted on: the
resource's generation, the Secret and policy versions the operator stamps on it, and this process. When any of
them differs, the stored record is not handed back to kopf, so a new pass starts at once with its retry count
at zero. Failures still back off while nothing changes.
"""

from __future__ import annotations

import uuid
from typing import Any

import kopf

from clickhouse_privatelink import constants as c

# This process: a record left by another one (before a restart) is not waited on.
BOOT = uuid.uuid4().hex[:12]
STAMP_KEY = "inputs"


def inputs_stamp(body: kopf.Body) -> str:
    """What a pass of this resource acts on, in one string: generation, Secret and policy versions, process."""
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    secret = annotations.get(c.ANNOTATION_SECRET_VERSION, "")
    policy = annotations.get(c.ANNOTATION_POLICY_VERSION, "")
    return f"{meta.get('generation') or 0}/{secret}/{policy}/{BOOT}"


class FreshOnChangeProgressStorage(kopf.AnnotationsProgressStorage):
    """kopf's annotation storage; a record of an unfinished handler is dropped once its inputs changed."""

    def fetch(self, *, key: Any, body: kopf.Body) -> Any:
        stored = super().fetch(key=key, body=body)
        if stored is None:
            return None
        record: dict[str, Any] = dict(stored)
        stamp = record.pop(STAMP_KEY, None)
        if not record.get("success") and stamp != inputs_stamp(body):
            return None  # a fix (or a restart) is acted on now, not at the retry time a failed pass left
        # Without the stamp: kopf stores a record again only when it differs from the one fetched, and a
        # store of an unchanged record would be a PATCH that changes nothing, after which kopf would wait for
        # an event that never comes.
        return record

    def store(self, *, key: Any, record: Any, body: kopf.Body, patch: kopf.Patch) -> None:
        # kopf keeps a record's extra keys as they are.
        stamped: Any = {**record, STAMP_KEY: inputs_stamp(body)}
        super().store(key=key, record=stamped, body=body, patch=patch)
