"""kopf's stored retry time never hides a fix: a changed generation, Secret, policy or process starts a pass now."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.wiring import progress
from clickhouse_privatelink.wiring.progress import EssenceDiffBaseStorage, FreshOnChangeProgressStorage

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


def test_the_diff_base_is_kopfs_own_essence_built_from_less() -> None:
    """The essence, from the parts it keeps only, is the one kopf's storage builds from the whole body."""
    raw = {
        "apiVersion": f"{c.GROUP}/{c.VERSION}",
        "kind": "ClickHousePrivateLink",
        "metadata": {
            "name": "x",
            "namespace": "ns",
            "uid": "u-1",
            "generation": 3,
            "resourceVersion": "17",
            "finalizers": [c.FINALIZER],
            "labels": {"team": "a"},
            "annotations": {
                "note": "kept",
                c.ANNOTATION_SECRET_VERSION: "5",
                f"{c.GROUP}/last-handled-configuration": '{"spec": {}}',
                f"{c.GROUP}/kopf-managed": "yes",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
            "managedFields": [{"manager": "kopf", "fieldsV1": {"f:status": {}}}],
        },
        "spec": {"aws": {"region": "us-east-1", "vpcId": "vpc-1", "tags": {"a": "b"}}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "vpcEndpointId": "vpce-1"},
    }
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
