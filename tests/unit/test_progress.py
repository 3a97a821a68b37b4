"""kopf's stored retry time never hides a fix: a changed generation, Secret, policy or process starts a pass now."""

from __future__ import annotations

import json
from typing import Any

import kopf
import pytest

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.wiring import progress
from clickhouse_privatelink.wiring.progress import (
    EssenceDiffBaseStorage,
    FreshOnChangeProgressStorage,
    StatusEssenceDiffBaseStorage,
)
from clickhouse_privatelink_testkit.standins.kubernetes.patch import merge_patch

KEY: Any = "reconcile"


def body(generation: int = 1, **annotations: str) -> kopf.Body:
    return kopf.Body({"metadata": {"name": "x", "generation": generation, "annotations": annotations}})


def stored(storage: FreshOnChangeProgressStorage, record: dict[str, Any], at: kopf.Body) -> kopf.Body:
    """The resource as the next event brings it: with the record a failed pass stored."""
    patch = kopf.Patch()
    storage.store(key=KEY, record=record, body=at, patch=patch)
    meta = dict(at["metadata"])
    meta["annotations"] = {**meta["annotations"], **patch["metadata"]["annotations"]}
    return kopf.Body({"metadata": meta})


FAILED = {"started": "2026-12-04T16:00:00", "delayed": "2026-12-04T16:05:00", "retries": 1, "success": False}


def test_a_delayed_retry_is_kept_while_nothing_changed() -> None:
    storage = FreshOnChangeProgressStorage(prefix=c.GROUP)
    again = stored(storage, FAILED, body())
    record = storage.fetch(key=KEY, body=again)
    # As kopf stored it, so that kopf sees it unchanged (an unchanged record is not stored again).
    assert record == FAILED


@pytest.mark.parametrize(
    "change",
    [
        {"generation": 2},
        {"annotations": {c.ANNOTATION_SECRET_VERSION: "42"}},
        {"annotations": {c.ANNOTATION_POLICY_VERSION: "team-a@7"}},
    ],
)
def test_a_changed_input_forgets_the_stored_retry_time(change: dict[str, Any]) -> None:
    storage = FreshOnChangeProgressStorage(prefix=c.GROUP)
    again = stored(storage, FAILED, body())
    meta = dict(again["metadata"])
    meta["generation"] = change.get("generation", meta["generation"])
    meta["annotations"] = {**meta["annotations"], **change.get("annotations", {})}
    assert storage.fetch(key=KEY, body=kopf.Body({"metadata": meta})) is None


def test_another_process_does_not_wait_for_a_retry_time_left_before_a_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = FreshOnChangeProgressStorage(prefix=c.GROUP)
    again = stored(storage, FAILED, body())
    monkeypatch.setattr(progress, "BOOT", "restarted")
    assert storage.fetch(key=KEY, body=again) is None


def test_a_finished_handler_stays_finished() -> None:
    storage = FreshOnChangeProgressStorage(prefix=c.GROUP)
    done = stored(storage, {**FAILED, "success": True}, body())
    changed = kopf.Body({"metadata": {**done["metadata"], "generation": 5}})
    assert (storage.fetch(key=KEY, body=changed) or {}).get("success") is True


def resource(**extra: Any) -> dict[str, Any]:
    """A handled resource as the API returns it (without any diff-base)."""
    return {
        "apiVersion": f"{c.GROUP}/{c.VERSION}",
        "kind": "ClickHousePrivateLink",
        "metadata": {
            "name": "x",
            "namespace": "ns",
            "uid": "u-1",
            "generation": 2,
            "labels": {"team": "a"},
            "annotations": {"note": "kept", c.ANNOTATION_SECRET_VERSION: "5"},
        },
        "spec": {"aws": {"region": "us-east-1", "vpcId": "vpc-1"}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "observedGeneration": 2},
        **extra,
    }


def test_the_diff_base_is_kopfs_own_essence_built_from_less() -> None:
    """The essence, from the parts it keeps only, is the one kopf's storage builds from the whole body."""
    raw = resource()
    raw["metadata"].update(
        resourceVersion="17",
        finalizers=[c.FINALIZER],
        managedFields=[{"manager": "kopf", "fieldsV1": {"f:status": {}}}],
    )
    raw["metadata"]["annotations"].update({
        f"{c.GROUP}/last-handled-configuration": '{"spec": {}}',
        f"{c.GROUP}/kopf-managed": "yes",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    })  # fmt: skip
    raw["spec"]["aws"]["tags"] = {"a": "b"}
    raw["status"]["vpcEndpointId"] = "vpce-1"
    ours = EssenceDiffBaseStorage(prefix=c.GROUP, key="last-handled-configuration")
    kopfs = kopf.AnnotationsDiffBaseStorage(prefix=c.GROUP, key="last-handled-configuration")
    extra = [("spec",), ("metadata", "annotations", c.ANNOTATION_SECRET_VERSION)]
    for fields in ([], extra, [*extra, ("status", "vpcEndpointId")], ["metadata.generation"]):
        built = ours.build(body=kopf.Body(raw), extra_fields=fields)
        assert built == kopfs.build(body=kopf.Body(raw), extra_fields=fields), fields
    built = ours.build(body=kopf.Body(raw), extra_fields=extra)
    assert "status" not in built and set(built["metadata"]) == {"labels", "annotations"}
    # The essence is a copy: changing it leaves the body as it was.
    built["spec"]["aws"]["tags"]["a"] = "changed"
    assert raw["spec"]["aws"]["tags"] == {"a": "b"}


# ------------------------------------------------------------------------------------------ diff-base in the status

ANNOTATION = f"{c.GROUP}/last-handled-configuration"


def applied(raw: dict[str, Any], patch: kopf.Patch) -> dict[str, Any]:
    """``raw`` after the merge patch, as the API server (here its stand-in) applies it."""
    result: dict[str, Any] = merge_patch(raw, dict(patch))
    return result


def essence_of(raw: dict[str, Any], storage: kopf.DiffBaseStorage) -> Any:
    """What kopf compares: the storage's essence, cleared of the progress storage's annotations."""
    return FreshOnChangeProgressStorage(prefix=c.GROUP).clear(essence=storage.build(body=kopf.Body(raw)))


def test_the_diff_base_is_stored_in_the_status_alone() -> None:
    storage = StatusEssenceDiffBaseStorage()
    raw = resource()
    essence = essence_of(raw, storage)
    patch = kopf.Patch()
    storage.store(body=kopf.Body(raw), patch=patch, essence=essence)
    # Only the status: kopf sends it as one PATCH of the status subresource.
    assert set(patch) == {"status"} and set(patch["status"]) == {progress.DIFF_BASE_FIELD}
    assert json.loads(patch["status"][progress.DIFF_BASE_FIELD]) == essence
    stored = applied(raw, patch)
    assert storage.fetch(body=kopf.Body(stored)) == essence
    # Storing it is no change: the next event's essence is the one stored.
    assert essence_of(stored, storage) == essence


def test_the_status_field_is_never_part_of_the_essence() -> None:
    storage = StatusEssenceDiffBaseStorage()
    raw = resource()
    with_field = resource(status={**raw["status"], progress.DIFF_BASE_FIELD: '{"spec":{"old":true}}'})
    assert storage.build(body=kopf.Body(with_field)) == storage.build(body=kopf.Body(raw))
    # Not even when kopf is asked for status fields (a handler on a status field).
    asked = [("status", "observedGeneration"), ("status", progress.DIFF_BASE_FIELD)]
    built = storage.build(body=kopf.Body(with_field), extra_fields=asked)
    assert built["status"] == {"observedGeneration": 2}
    only_ours = storage.build(body=kopf.Body(with_field), extra_fields=[("status", progress.DIFF_BASE_FIELD)])
    assert "status" not in only_ours


def test_a_diff_base_an_older_version_stored_is_read_from_its_annotation() -> None:
    """Upgraded, the operator sees no change on a resource the older version handled (no create, no update)."""
    older = EssenceDiffBaseStorage(prefix=c.GROUP, key="last-handled-configuration")
    raw = resource()
    patch = kopf.Patch()
    older.store(body=kopf.Body(raw), patch=patch, essence=essence_of(raw, older))
    handled_before = applied(raw, patch)
    assert ANNOTATION in handled_before["metadata"]["annotations"]

    storage = StatusEssenceDiffBaseStorage()
    fetched = storage.fetch(body=kopf.Body(handled_before))
    assert fetched is not None  # kopf takes a resource without a diff-base for a new one
    assert fetched == essence_of(handled_before, storage)  # the same essence: nothing to do


def test_the_status_field_wins_over_a_leftover_annotation() -> None:
    storage = StatusEssenceDiffBaseStorage()
    raw = resource()
    raw["metadata"]["annotations"][ANNOTATION] = '{"spec":{"older":true}}\n'
    raw["status"][progress.DIFF_BASE_FIELD] = '{"spec":{"newer":true}}'
    assert storage.fetch(body=kopf.Body(raw)) == {"spec": {"newer": True}}
    del raw["status"][progress.DIFF_BASE_FIELD]
    assert storage.fetch(body=kopf.Body(raw)) == {"spec": {"older": True}}
    del raw["metadata"]["annotations"][ANNOTATION]
    assert storage.fetch(body=kopf.Body(raw)) is None


def test_storing_moves_an_older_versions_annotation_into_the_status() -> None:
    storage = StatusEssenceDiffBaseStorage()
    raw = resource()
    raw["metadata"]["annotations"][ANNOTATION] = '{"spec":{"older":true}}\n'
    raw["metadata"]["annotations"][progress.MARKER] = "yes"
    essence = essence_of(raw, storage)
    patch = kopf.Patch()
    storage.store(body=kopf.Body(raw), patch=patch, essence=essence)
    assert dict(patch["metadata"]) == {"annotations": {ANNOTATION: None}}  # once; the marker stays
    stored = applied(raw, patch)
    assert ANNOTATION not in stored["metadata"]["annotations"]
    assert storage.fetch(body=kopf.Body(stored)) == essence == essence_of(stored, storage)


def test_a_record_purged_in_the_patch_that_stored_it_takes_kopfs_marker_with_it() -> None:
    """A pass that ends at once leaves nothing on the resource itself: no PATCH of it, only of the status."""
    storage = FreshOnChangeProgressStorage(prefix=c.GROUP)
    at = body()
    patch = kopf.Patch()
    patch.status["observedGeneration"] = 1
    storage.store(key=KEY, record={**FAILED, "success": True}, body=at, patch=patch)
    assert patch["metadata"]["annotations"][progress.MARKER] == "yes"
    storage.purge(key=KEY, body=at, patch=patch)
    assert dict(patch) == {"status": {"observedGeneration": 1}}


def test_kopfs_marker_stays_with_a_record_that_stays_or_with_other_changes_of_the_resource() -> None:
    storage = FreshOnChangeProgressStorage(prefix=c.GROUP)
    retrying = kopf.Patch()
    storage.store(key=KEY, record=FAILED, body=body(), patch=retrying)
    assert progress.MARKER in retrying["metadata"]["annotations"]  # a retry's record, branded as kopf's

    earlier = stored(storage, FAILED, body())  # a record left by an earlier pass, here without the marker
    del earlier["metadata"]["annotations"][progress.MARKER]
    done = kopf.Patch()
    storage.store(key=KEY, record={**FAILED, "success": True}, body=earlier, patch=done)
    storage.purge(key=KEY, body=earlier, patch=done)
    # The resource is patched anyway (the earlier record goes): the marker goes with that.
    assert done["metadata"]["annotations"] == {f"{c.GROUP}/{KEY}": None, progress.MARKER: "yes"}
