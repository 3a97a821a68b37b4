"""kopf's progress records, made to forget a retry time once what the failed pass saw has changed, and kept in
the status with kopf's diff-base.

kopf stores a handler's retry time on the resource (an annotation) and, until then, sleeps through every
change: a spec fixed after a terminal failure waited out the whole retry interval (and an operator restarted
with wider settings found the same stored time). Each record here also notes what the pass acted on: the
resource's generation, the Secret and policy versions the operator stamps on it, and this process. When any of
them differs, the stored record is not handed back to kopf, so a new pass starts at once with its retry count
at zero. Failures still back off while nothing changes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

import kopf

from clickhouse_privatelink import constants as c

# This process: a record left by another one (before a restart) is not waited on.
BOOT = uuid.uuid4().hex[:12]
STAMP_KEY = "inputs"
# kopf's brand on annotations of a kopf-run operator's prefix (other kopf operators leave them out of their
# essences).
MARKER = f"{c.GROUP}/kopf-managed"
# The annotations the Secret watch and policy changes stamp a resource with (wiring/handlers.py): kopf's
# essence keeps them, so that a change of either is an update its handlers see.
VERSION_ANNOTATIONS = (c.ANNOTATION_SECRET_VERSION, c.ANNOTATION_POLICY_VERSION)
# Our prefix's annotations that are no kopf storage's: the versions above, and a new resource's first intent
# (decisions/intent.py, out of the essence like every other annotation of our prefix).
OWN_ANNOTATIONS = (*VERSION_ANNOTATIONS, c.ANNOTATION_INTENT)
PREFIX = f"{c.GROUP}/"
# Where the diff-base lives (StatusEssenceDiffBaseStorage), and where versions before it kept it (an annotation).
DIFF_BASE_FIELD = "lastHandledConfiguration"
DIFF_BASE_ANNOTATION_KEY = "last-handled-configuration"
# Where the progress records live (StatusProgressStorage; versions before it kept them in annotations), and
# the field kopf touches to wake a resource whose retry time has come.
PROGRESS_FIELD = "handlerProgress"
TOUCH_FIELD = "handlerProgressTouch"
# The status fields kopf writes, not the operator: our own status writes leave them alone.
KOPF_STATUS_FIELDS = frozenset({DIFF_BASE_FIELD, PROGRESS_FIELD, TOUCH_FIELD})


def inputs_stamp(body: kopf.Body) -> str:
    """What a pass of this resource acts on, in one string: generation, Secret and policy versions, process."""
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    secret = annotations.get(c.ANNOTATION_SECRET_VERSION, "")
    policy = annotations.get(c.ANNOTATION_POLICY_VERSION, "")
    return f"{meta.get('generation') or 0}/{secret}/{policy}/{BOOT}"


def _fresh(stored: Any, body: kopf.Body) -> Any:
    """The stored record as kopf is handed it: none for an unfinished handler whose inputs changed since."""
    if stored is None:
        return None
    record: dict[str, Any] = dict(stored)
    stamp = record.pop(STAMP_KEY, None)
    if not record.get("success") and stamp != inputs_stamp(body):
        return None  # a fix (or a restart) is acted on now, not at the retry time a failed pass left
    # Without the stamp: kopf stores a record again only when it differs from the one fetched, and a store of
    # an unchanged record would be a PATCH that changes nothing, after which kopf would wait for an event that
    # never comes.
    return record


def _stamped(record: Any, body: kopf.Body) -> Any:
    """The record with what the pass acted on (kopf keeps a record's extra keys as they are)."""
    return {**record, STAMP_KEY: inputs_stamp(body)}


class FreshOnChangeProgressStorage(kopf.AnnotationsProgressStorage):
    """kopf's annotation storage; a record of an unfinished handler is dropped once its inputs changed.

    Versions before StatusProgressStorage kept the records here; it still reads (and clears) them through it.
    """

    def fetch(self, *, key: Any, body: kopf.Body) -> Any:
        return _fresh(super().fetch(key=key, body=body), body)

    def store(self, *, key: Any, record: Any, body: kopf.Body, patch: kopf.Patch) -> None:
        super().store(key=key, record=_stamped(record, body), body=body, patch=patch)

    def purge(self, *, key: Any, body: kopf.Body, patch: kopf.Patch) -> None:
        """kopf's purge; and kopf's marker, added with a record this purge removed, goes with it.

        kopf brands our prefix (``<group>/kopf-managed``) with the first record it stores, and a pass that ends
        at once purges that record again in the same patch: the marker alone was then a PATCH of the resource
        of its own (with its watch event) after every first pass, beside the status PATCH. It now goes with a
        record that stays (a pass that retries), as before; a resource no record stays on is not branded.
        """
        super().purge(key=key, body=body, patch=patch)
        if (
            body.metadata.annotations.get(MARKER) is None
            and set(patch) <= {"metadata", "status"}
            and patch.get("metadata") == {"annotations": {MARKER: "yes"}}
        ):
            del patch["metadata"]


def _older(body: kopf.Body) -> bool:
    """Whether an older version's records may be on the resource: an annotation of our prefix other than the
    operator's own (the versions it stamps, the first intent). Without one the annotation storage has nothing
    to read, purge or touch, and its key making (on every handler of every watch event) is skipped."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return any(key.startswith(PREFIX) and key not in OWN_ANNOTATIONS for key in annotations)


def _json_copy(value: Any) -> Any:
    """A copy of JSON data (dicts, lists, scalars): what ``copy.deepcopy`` makes of it, without its memo."""
    if isinstance(value, dict):
        return {key: _json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_copy(item) for item in value]
    return value


def _records(body: kopf.Body) -> Any:
    """The progress records in the body's status (handler id to record)."""
    return (body.get("status") or {}).get(PROGRESS_FIELD) or {}


class StatusProgressStorage(kopf.StatusProgressStorage):
    """kopf's progress records in ``status.handlerProgress`` (by handler id), not in annotations; a record of an
    unfinished handler is dropped once its inputs changed, as in FreshOnChangeProgressStorage.

    A pass that fails for a while (the first pass of a new resource waits a minute or two for its endpoint)
    kept its record in an annotation: each retry was a PATCH of the resource beside the status PATCH of its
    outcome, kopf's wake-up at the retry time (its touch) one more, and the end of the pass another to purge
    the record. In the status, each retrying pass and the final one write one PATCH of the status
    subresource, and the wake-up (``status.handlerProgressTouch``) is a status PATCH too. Both fields are in
    the CRD's status schema: the API server prunes status fields the schema does not have (so the CRD is
    upgraded first: docs/upgrading.md).

    Records an older version left in annotations are read where the status has none for the handler: an
    unfinished one is never this process's, so it is dropped (the pass starts at once, as after any restart);
    a finished one is honoured. The annotation goes when kopf stores or purges that handler's record (in that
    patch: one PATCH of the resource, once), as does an older version's touch. kopf brands our prefix's
    annotations (``<group>/kopf-managed``) only when it stores a record there, so resources are no longer
    branded; a marker already there stays. The essence is cleared of the records' field and of our prefix's
    annotations (older records, kopf's marker) but the Secret and policy versions: kopf looks for changes
    only in what the essence keeps, so without them the handlers on those two annotations never ran for a
    resource whose pass had ended (a Ready one), and a rotated key waited for the next drift check.
    """

    def __init__(self) -> None:
        super().__init__(field=("status", PROGRESS_FIELD), touch_field=("status", TOUCH_FIELD))
        self.annotations = FreshOnChangeProgressStorage(prefix=c.GROUP)

    def fetch(self, *, key: Any, body: kopf.Body) -> Any:
        stored = super().fetch(key=key, body=body)
        if stored is None:
            return self.annotations.fetch(key=key, body=body) if _older(body) else None  # an older version's
        return _fresh(stored, body)

    def store(self, *, key: Any, record: Any, body: kopf.Body, patch: kopf.Patch) -> None:
        status = patch.get("status")
        if isinstance(status, dict) and PROGRESS_FIELD in status and status[PROGRESS_FIELD] is None:
            status[PROGRESS_FIELD] = {old: None for old in _records(body)}  # purged above, one stored again
        # kopf's record has every key, unset ones as None: a merge patch of it replaces the stored one.
        super().store(key=key, record=_stamped(record, body), body=body, patch=patch)
        if _older(body):
            self.annotations.purge(key=key, body=body, patch=patch)  # an older version's record, once

    def purge(self, *, key: Any, body: kopf.Body, patch: kopf.Patch) -> None:
        """kopf's purge (of the status and of an older version's annotation); with the last record goes the
        field (a merge patch of a record's null leaves an empty object)."""
        super().purge(key=key, body=body, patch=patch)
        if _older(body):
            self.annotations.purge(key=key, body=body, patch=patch)
        purged = (patch.get("status") or {}).get(PROGRESS_FIELD)
        records = _records(body)
        if (
            records
            and isinstance(purged, dict)
            and all(value is None for value in purged.values())
            and all(purged.get(old, ...) is None for old in records)
        ):
            patch["status"][PROGRESS_FIELD] = None

    def touch(self, *, body: kopf.Body, patch: kopf.Patch, value: str | None) -> None:
        super().touch(body=body, patch=patch, value=value)
        # kopf removes the touch with a pass's patch: an older version's too.
        if value is None and _older(body):
            self.annotations.touch(body=body, patch=patch, value=None)

    def clear(self, *, essence: Any) -> Any:
        """kopf's clear of both storages (a copy without the records' field and our prefix's annotations), in one
        copy, and the Secret and policy versions kept."""
        cleared = _json_copy(essence)
        status = cleared.get("status")
        if isinstance(status, dict):
            status.pop(PROGRESS_FIELD, None)
        annotations = (cleared.get("metadata") or {}).get("annotations") or {}
        for key in [key for key in annotations if key.startswith(PREFIX)]:
            if key not in VERSION_ANNOTATIONS:
                del annotations[key]
        self.remove_empty_stanzas(cleared)
        return cleared


def _path(field: Any) -> tuple[str, ...]:
    return tuple(field.split(".")) if isinstance(field, str) else tuple(field)


def _in_essence(path: tuple[str, ...]) -> bool:
    """Whether kopf's essence keeps ``path`` (an extra field kopf asks for) among what it always keeps: the
    spec (and any top-level field but these), the labels, and an annotation or all of them."""
    if path[:1] in (("apiVersion",), ("kind",), ("status",)):
        return False
    if path[:1] != ("metadata",):
        return True
    return path[1:2] == ("labels",) or (path[1:2] == ("annotations",) and len(path) <= 3)


_NOT_IN_ESSENCE = frozenset({"apiVersion", "kind", "metadata", "status"})
# kubectl's copy of what it applied: never part of kopf's essence.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class EssenceDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's annotation diff-base, its essence built in one copy of what the essence keeps.

    kopf builds a resource's essence on every watch event (with the fields its handlers filter on as extra
    fields): it deep-copies the whole body (managedFields, status and all), drops all of it but the spec, the
    labels and the annotations that are not a kopf storage's, then copies the extra fields back in. Here only
    what the essence keeps is copied, once: the same essence (unit tests hold it to kopf's own). Extra fields
    outside it (a status field, other metadata) go through kopf's own build.
    """

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> Any:
        fields = [_path(field) for field in extra_fields or ()]
        if self.ignored_fields or not all(map(_in_essence, fields)):
            return super().build(body=body, extra_fields=extra_fields)
        essence = {key: _json_copy(value) for key, value in body.items() if key not in _NOT_IN_ESSENCE}
        metadata = body.get("metadata") or {}
        kept: dict[str, Any] = {}
        if labels := metadata.get("labels"):
            kept["labels"] = dict(labels)
        if annotations := metadata.get("annotations"):
            marked = self._detect_marked_prefixes(annotations)
            asked = {path[2] for path in fields if path[:2] == ("metadata", "annotations") and len(path) == 3}
            every = ("metadata", "annotations") in fields  # an extra field puts back what kopf dropped
            own = set(self.make_keys(self.key, body=body))  # kopf's diff-base itself: never, extra or not
            annotations = {
                key: value
                for key, value in annotations.items()
                if key not in own
                and (
                    every
                    or key in asked
                    or (key != LAST_APPLIED and not any(key.startswith(f"{prefix}/") for prefix in marked))
                )
            }
            if annotations:
                kept["annotations"] = annotations
        if kept:
            essence["metadata"] = kept
        return essence


class StatusEssenceDiffBaseStorage(EssenceDiffBaseStorage):
    """The diff-base (kopf's last handled essence) in ``status.lastHandledConfiguration``, not an annotation.

    A pass that ends writes its status; with the diff-base in an annotation kopf split that into two PATCHes
    (the status subresource, then the resource for the annotation), each with its watch event to handle. In
    the status, the end of a pass is one PATCH of the status subresource. The field is a JSON string, as
    kopf's own status storage keeps it (a string is never merged into, so no stale key survives), named
    after the annotation it replaces and ``kubectl``'s last-applied-configuration. It is in the CRD's status
    schema: the API server prunes status fields the schema does not have (so the CRD is upgraded first:
    docs/upgrading.md). The essence never holds it (the build drops the whole status), so storing it is no
    change.

    Resources handled by a version before this one have the annotation and no status field: the annotation
    is read then (without it kopf would take the resource for a new one, and create it again), and the
    next store removes it in the same patch. Until something changes, a resource keeps its annotation (a
    restart's resume pass stores nothing). An operator rolled back to an older version finds no annotation on
    resources this one stored, and runs a create pass on each (reconciling finds everything in place).
    """

    def __init__(self) -> None:
        super().__init__(prefix=c.GROUP, key=DIFF_BASE_ANNOTATION_KEY)

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> Any:
        essence = super().build(body=body, extra_fields=extra_fields)
        status = essence.get("status")
        if isinstance(status, dict) and DIFF_BASE_FIELD in status:  # only if kopf was asked for it
            del status[DIFF_BASE_FIELD]
            self.remove_empty_stanzas(essence)
        return essence

    def fetch(self, *, body: kopf.Body) -> Any:
        encoded = (body.get("status") or {}).get(DIFF_BASE_FIELD)
        if isinstance(encoded, str):
            return json.loads(encoded)
        return super().fetch(body=body)  # stored by an older version

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        patch.status[DIFF_BASE_FIELD] = json.dumps(essence, separators=(",", ":"))
        for key in self.make_keys(self.key, body=body):
            if key in body.metadata.annotations:
                patch.metadata.annotations[key] = None  # once, on a resource an older version stored
