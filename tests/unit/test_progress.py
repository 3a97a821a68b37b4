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
    raw["metadata"]["annotations"][c.ANNOTATION_POLICY_VERSION] = "p@1"
    # The fields the handlers filter on (wiring/handlers.py): kopf hands them to every build.
    extra = [
        ("spec",),
        ("metadata", "annotations", c.ANNOTATION_SECRET_VERSION),
        ("metadata", "annotations", c.ANNOTATION_POLICY_VERSION),
    ]
    for fields in (
        [],
        extra,
        [*extra, ("status", "vpcEndpointId")],
        ["metadata.generation"],
        ["metadata.labels.team", ("metadata", "annotations"), ("spec", "absent")],
        [("metadata", "annotations", "absent"), ("metadata", "annotations", ANNOTATION)],
    ):
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


def test_the_essence_is_kopfs_own_without_copying_what_it_drops() -> None:
    """Built from the spec, labels and annotations alone, it is the essence kopf's own build makes."""
    raw = resource()
    raw["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    raw["metadata"]["labels"] = {"team": "a"}
    raw["metadata"]["annotations"]["kopf.zalando.org/last-handled-configuration"] = "{}"
    raw["metadata"]["annotations"]["team.example.com/owner"] = "b"
    raw["apiVersion"], raw["kind"] = "x/v1", "ClickHousePrivateLink"
    kopfs = EssenceDiffBaseStorage(prefix=c.GROUP, key="last-handled-configuration")
    built = StatusEssenceDiffBaseStorage().build(body=kopf.Body(raw))
    assert built == kopfs.build(body=kopf.Body(raw))
    assert built["metadata"]["annotations"]["team.example.com/owner"] == "b"
    assert "managedFields" not in built["metadata"] and "status" not in built
    built["spec"]["changed"] = True  # a copy: the body is not touched
    assert "changed" not in raw["spec"]


def marked_resource() -> dict[str, Any]:
    """A resource with every kind of annotation kopf's essence treats apart, and managed fields and a status."""
    raw = resource()
    raw["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    raw["metadata"]["annotations"].update({
        ANNOTATION: '{"spec":{}}',  # an older version's diff-base
        progress.MARKER: "yes",
        f"{c.GROUP}/reconcile": "{}",  # an older version's progress record
        c.ANNOTATION_POLICY_VERSION: "p@1",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "other.example.com/kopf-managed": "yes",  # another kopf operator's storage, and its annotation
        "other.example.com/last-handled-configuration": "{}",
        "kopf.zalando.org/touch-dummy": "x",
        "team.example.com/owner": "b",
    })  # fmt: skip
    raw["spec"]["aws"]["subnetIds"] = ["subnet-1", "subnet-2"]
    raw["spec"]["dns"] = {"mode": "Managed", "hostedZoneId": None}
    return raw


@pytest.mark.parametrize("annotated", [True, False])
def test_the_essence_and_its_clearing_are_kopfs_own(annotated: bool) -> None:
    """The essence made on every watch event (one copy of what it keeps) and its clearing of both progress
    storages (one copy) are what kopf's own storages make, with the Secret and policy versions kept."""
    raw = marked_resource() if annotated else {k: v for k, v in resource().items() if k != "metadata"}
    ours = StatusEssenceDiffBaseStorage()
    kopfs = kopf.AnnotationsDiffBaseStorage(prefix=c.GROUP, key="last-handled-configuration")
    essence = ours.build(body=kopf.Body(raw))
    assert essence == kopfs.build(body=kopf.Body(raw))

    storage = progress.StatusProgressStorage()
    kopf_status = kopf.StatusProgressStorage(field=("status", progress.PROGRESS_FIELD))
    kopf_annotations = kopf.AnnotationsProgressStorage(prefix=c.GROUP)
    with_records = {**essence, "status": {progress.PROGRESS_FIELD: {KEY: {}}, "observedGeneration": 2}}
    if annotated:  # an essence with our own prefix not marked by kopf: the versions stay, the rest goes
        with_records["metadata"] = {"annotations": {**raw["metadata"]["annotations"]}}
    for given in (essence, with_records):
        expected = kopf_annotations.clear(essence=kopf_status.clear(essence=given))
        annotations = given.get("metadata", {}).get("annotations", {})
        versions = {k: v for k, v in annotations.items() if k in progress.VERSION_ANNOTATIONS}
        if versions:
            expected.setdefault("metadata", {}).setdefault("annotations", {}).update(versions)
        assert storage.clear(essence=given) == expected
    # Copies: changing them leaves the body and the essence as they were.
    essence["spec"]["aws"]["region"] = "changed"
    cleared = storage.clear(essence=with_records)
    cleared["spec"]["aws"]["vpcId"] = "changed"
    assert raw["spec"]["aws"]["region"] == "us-east-1"
    assert with_records["spec"]["aws"]["vpcId"] == "vpc-1"


def test_an_older_versions_records_are_read_and_purged_only_where_it_left_some() -> None:
    """Without an annotation of our prefix (but the versions we stamp) there is no older record to look for."""
    older = FreshOnChangeProgressStorage(prefix=c.GROUP)
    left = stored(older, {**FAILED, "success": True}, body())
    storage = progress.StatusProgressStorage()
    assert (storage.fetch(key=KEY, body=left) or {}).get("success") is True
    purge = kopf.Patch()
    storage.purge(key=KEY, body=left, patch=purge)
    assert purge["metadata"]["annotations"][f"{c.GROUP}/{KEY}"] is None

    plain = body(**{c.ANNOTATION_SECRET_VERSION: "5", "note": "kept"})
    assert storage.fetch(key=KEY, body=plain) is None
    nothing = kopf.Patch()
    storage.purge(key=KEY, body=plain, patch=nothing)
    storage.touch(body=plain, patch=nothing, value=None)
    assert dict(nothing) == {}


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


# ------------------------------------------------------------------------------------- progress records in the status


def handled(raw: dict[str, Any], *patches: kopf.Patch) -> kopf.Body:
    """The resource as the next event brings it, after ``patches`` (the API server drops merge-patch nulls)."""
    for patch in patches:
        raw = applied(raw, patch)
    return kopf.Body(raw)


def test_a_retrying_pass_keeps_its_record_in_the_status_alone() -> None:
    storage = progress.StatusProgressStorage()
    patch = kopf.Patch()
    patch.status["observedGeneration"] = 2
    storage.store(
        key=KEY,
        record={**FAILED, "stopped": None, "message": "EndpointPending"},
        body=kopf.Body(resource()),
        patch=patch,
    )
    # One PATCH of the status subresource: no annotation, no kopf marker on the resource.
    assert set(patch) == {"status"}
    assert set(patch["status"]) == {"observedGeneration", progress.PROGRESS_FIELD}
    again = handled(resource(), patch)
    record = {**FAILED, "message": "EndpointPending"}
    # As kopf stored it (without its Nones), so that kopf sees it unchanged and does not store it again.
    assert storage.fetch(key=KEY, body=again) == record
    assert again["status"][progress.PROGRESS_FIELD][KEY][progress.STAMP_KEY] == progress.inputs_stamp(again)


@pytest.mark.parametrize(
    "change",
    [
        {"generation": 3},
        {"annotations": {c.ANNOTATION_SECRET_VERSION: "42"}},
        {"annotations": {c.ANNOTATION_POLICY_VERSION: "team-a@7"}},
    ],
)
def test_a_changed_input_forgets_the_retry_time_kept_in_the_status(change: dict[str, Any]) -> None:
    storage = progress.StatusProgressStorage()
    patch = kopf.Patch()
    storage.store(key=KEY, record=FAILED, body=kopf.Body(resource()), patch=patch)
    raw = applied(resource(), patch)
    raw["metadata"]["generation"] = change.get("generation", raw["metadata"]["generation"])
    raw["metadata"]["annotations"].update(change.get("annotations", {}))
    assert storage.fetch(key=KEY, body=kopf.Body(raw)) is None
    done = kopf.Patch()
    storage.store(key=KEY, record={**FAILED, "success": True}, body=kopf.Body(resource()), patch=done)
    finished = applied(resource(), done)
    finished["metadata"]["generation"] = 9
    assert (storage.fetch(key=KEY, body=kopf.Body(finished)) or {}).get("success") is True


def test_a_restart_does_not_wait_for_a_retry_time_kept_in_the_status(monkeypatch: pytest.MonkeyPatch) -> None:
    storage = progress.StatusProgressStorage()
    patch = kopf.Patch()
    storage.store(key=KEY, record=FAILED, body=kopf.Body(resource()), patch=patch)
    monkeypatch.setattr(progress, "BOOT", "restarted")
    assert storage.fetch(key=KEY, body=handled(resource(), patch)) is None


def test_the_last_record_purged_takes_the_field_with_it_and_others_stay() -> None:
    storage = progress.StatusProgressStorage()
    first, other = kopf.Patch(), kopf.Patch()
    storage.store(key=KEY, record=FAILED, body=kopf.Body(resource()), patch=first)
    storage.store(key="cleanup", record=FAILED, body=kopf.Body(resource()), patch=other)
    both = handled(resource(), first, other)
    one = kopf.Patch()
    storage.purge(key=KEY, body=both, patch=one)
    assert one["status"][progress.PROGRESS_FIELD] == {KEY: None}  # the other record stays
    left = handled(dict(both), one)
    assert set(left["status"][progress.PROGRESS_FIELD]) == {"cleanup"}
    last = kopf.Patch()
    storage.purge(key="cleanup", body=left, patch=last)
    assert last["status"][progress.PROGRESS_FIELD] is None  # not an empty object left behind
    assert progress.PROGRESS_FIELD not in handled(dict(left), last)["status"]
    # Purged and then stored again in one patch (kopf purges the records of a superseded cause first).
    again = kopf.Patch()
    storage.purge(key=KEY, body=both, patch=again)
    storage.purge(key="cleanup", body=both, patch=again)
    storage.store(key=KEY, record=FAILED, body=both, patch=again)
    assert set(handled(dict(both), again)["status"][progress.PROGRESS_FIELD]) == {KEY}
    # Purging what is not there writes nothing.
    nothing = kopf.Patch()
    storage.purge(key=KEY, body=kopf.Body(resource()), patch=nothing)
    assert not nothing


def test_the_wake_up_at_the_retry_time_is_a_status_write_removed_by_the_next_pass() -> None:
    storage = progress.StatusProgressStorage()
    touch = kopf.Patch()
    storage.touch(body=kopf.Body(resource()), patch=touch, value="2026-12-05T09:00:00")
    assert dict(touch) == {"status": {progress.TOUCH_FIELD: "2026-12-05T09:00:00"}}
    woken = handled(resource(), touch)
    next_pass = kopf.Patch()
    next_pass.status["observedGeneration"] = 2
    storage.touch(body=woken, patch=next_pass, value=None)
    assert dict(next_pass) == {"status": {"observedGeneration": 2, progress.TOUCH_FIELD: None}}


def older_records(raw: dict[str, Any], record: dict[str, Any], **annotations: str) -> dict[str, Any]:
    """``raw`` with ``record`` in its annotations as the older version stored it (and its marker)."""
    patch = kopf.Patch()
    FreshOnChangeProgressStorage(prefix=c.GROUP).store(
        key=KEY, record=record, body=kopf.Body(raw), patch=patch
    )
    patch["metadata"]["annotations"].update(annotations)
    return applied(raw, patch)


def test_an_older_versions_records_are_read_finished_ones_honoured_unfinished_ones_retried_now() -> None:
    storage = progress.StatusProgressStorage()
    # Stored in this process (as the older version's process would have): read as it is.
    assert storage.fetch(key=KEY, body=kopf.Body(older_records(resource(), FAILED))) == FAILED
    done = {**FAILED, "success": True}
    assert storage.fetch(key=KEY, body=kopf.Body(older_records(resource(), done))) == done
    # The status record wins over an annotation left beside it.
    patch = kopf.Patch()
    storage.store(key=KEY, record={**FAILED, "retries": 5}, body=kopf.Body(resource()), patch=patch)
    both = applied(older_records(resource(), FAILED), {"status": patch["status"]})
    assert (storage.fetch(key=KEY, body=kopf.Body(both)) or {}).get("retries") == 5


def test_an_older_versions_unfinished_record_is_not_waited_for_after_the_upgrade(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    left = older_records(resource(), FAILED)
    monkeypatch.setattr(progress, "BOOT", "upgraded")  # the new version is another process
    assert progress.StatusProgressStorage().fetch(key=KEY, body=kopf.Body(left)) is None
    done = older_records(resource(), {**FAILED, "success": True})
    assert (progress.StatusProgressStorage().fetch(key=KEY, body=kopf.Body(done)) or {}).get(
        "success"
    ) is True


def test_an_older_versions_record_and_touch_go_with_the_next_store_or_purge() -> None:
    storage = progress.StatusProgressStorage()
    annotation = f"{c.GROUP}/{KEY}"
    touch = f"{c.GROUP}/touch-dummy"
    left = kopf.Body(older_records(resource(), FAILED, **{touch: "2026-12-04T16:05:00"}))
    stored_now = kopf.Patch()
    storage.store(key=KEY, record=FAILED, body=left, patch=stored_now)
    storage.touch(body=left, patch=stored_now, value=None)
    assert stored_now["metadata"]["annotations"] == {annotation: None, touch: None}  # the marker stays
    moved = handled(dict(left), stored_now)
    assert set(ours_of(moved)) == {progress.MARKER, c.ANNOTATION_SECRET_VERSION}
    assert storage.fetch(key=KEY, body=moved) == FAILED
    purged = kopf.Patch()
    storage.purge(key=KEY, body=left, patch=purged)
    assert purged["metadata"]["annotations"] == {annotation: None}
    assert set(ours_of(handled(dict(left), purged))) == {progress.MARKER, touch, c.ANNOTATION_SECRET_VERSION}


def ours_of(at: kopf.Body) -> dict[str, str]:
    return {k: v for k, v in at["metadata"]["annotations"].items() if k.startswith(f"{c.GROUP}/")}


def test_the_essence_never_holds_the_records_and_keeps_the_secret_and_policy_versions() -> None:
    """kopf's clear drops our prefix's annotations; the two versions its field handlers watch are kept.

    Without them a stamp of a new Secret or policy version was no change to kopf, and the handlers on those
    annotations ran only for a resource whose pass had not ended (tests/e2e/test_watched_changes.py).
    """
    storage = progress.StatusProgressStorage()
    diff_base = StatusEssenceDiffBaseStorage()
    raw = older_records(resource(), FAILED, **{c.ANNOTATION_POLICY_VERSION: "team-a@7"})
    patch = kopf.Patch()
    storage.store(key=KEY, record=FAILED, body=kopf.Body(raw), patch=patch)
    storage.touch(body=kopf.Body(raw), patch=patch, value="now")
    with_records = applied(raw, patch)
    # The extra fields kopf asks for: those of the handlers (wiring/handlers.py), and a status one.
    watched = [("metadata", "annotations", key) for key in progress.VERSION_ANNOTATIONS]
    extra = [("spec",), *watched, ("status", progress.PROGRESS_FIELD)]
    new = storage.clear(essence=diff_base.build(body=kopf.Body(with_records), extra_fields=extra))
    assert "status" not in new
    assert new["metadata"]["annotations"] == {
        "note": "kept",
        c.ANNOTATION_SECRET_VERSION: "5",
        c.ANNOTATION_POLICY_VERSION: "team-a@7",
    }
    # A new version is a change kopf sees, in that annotation only; the records' churn is none.
    stamped = applied(with_records, {"metadata": {"annotations": {c.ANNOTATION_SECRET_VERSION: "6"}}})
    later = storage.clear(essence=diff_base.build(body=kopf.Body(stamped), extra_fields=extra))
    assert later == {
        **new,
        "metadata": {
            **new["metadata"],
            "annotations": {**new["metadata"]["annotations"], c.ANNOTATION_SECRET_VERSION: "6"},
        },
    }
    retried = older_records(with_records, {**FAILED, "retries": 2})
    assert storage.clear(essence=diff_base.build(body=kopf.Body(retried), extra_fields=extra)) == new
