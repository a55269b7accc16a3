"""The typed `result` JSON (deployer/store/result.py): rows stored by earlier versions load and write back
unchanged; what a deploy and the checks write is the dict they wrote before."""

from __future__ import annotations

import copy
from typing import Any

from deployer.ops import releases
from deployer.store.checkpoint import Checkpoint
from deployer.store.lifecycle import Checkpoint as CheckpointFromLifecycle
from deployer.store.result import KEYS, DeploymentResult


def sdk(body: dict[str, Any]) -> dict[str, Any]:
    return {"headers": {"x-acs-request-id": "r-1"}, "statusCode": 200, "body": body}


#: A row as the code before the typed model wrote it: every key, and one this version does not know.
OLD_ROW: dict[str, Any] = {
    "function_result": sdk({"functionName": "mcp-a", "environmentVariables": {"TOKEN": "***"}}),
    "trigger_result": sdk({"triggerName": "http", "qualifier": "live", "httpTrigger": {"urlInternet": "u"}}),
    "release": 3,
    "releases": [
        {"version": "1", "release": 1, "probe": {"ok": True, "tools": ["a"]}, "fingerprint": "f1"},
        {"version": "2", "release": 2, "probe": {"ok": False, "error": "boom"}, "fingerprint": None},
        {"version": "3", "release": 3, "probe": {"ok": True}, "deleted": False},
    ],
    "version_result": sdk({"versionId": "3", "createdTime": "2026-01-01T00:00:00Z"}),
    "from_a_newer_version": {"kept": [1, 2]},
    "alias_result": sdk({"aliasName": "live", "versionId": "3"}),
    "probe": {"protocols": ["2025-06-18"], "fingerprint": "f3", "tool_fingerprints": {"a": "x"}},
    "tool_changes": None,
    "tool_drift": {"task_id": "t-1", "added": ["b"], "removed": [], "changed": {}},
    "health": {"status": "healthy", "task_id": "t-1", "consecutive_failures": 0},
    "drift": {"drifted": False, "checked_at": "2026-01-02T00:00:00+00:00", "fields": []},
    "token": {"expires_at": "2027-01-01T00:00:00+00:00", "expiring": False, "warned_at": "w"},
}


def test_every_known_key_of_an_old_row_is_a_field() -> None:
    assert set(OLD_ROW) - KEYS == {"from_a_newer_version"}


def test_an_old_row_round_trips_unchanged_key_order_included() -> None:
    stored = copy.deepcopy(OLD_ROW)
    result = DeploymentResult.from_json(stored)
    assert result.to_json() == OLD_ROW
    assert list(result.to_json()) == list(OLD_ROW)
    assert result.extra == {"from_a_newer_version": {"kept": [1, 2]}}
    assert stored == OLD_ROW, "loading does not change the stored dict"


def test_the_fields_read_what_the_old_code_read() -> None:
    result = DeploymentResult.from_json(OLD_ROW)
    assert result.release == 3 and result.trigger_qualifier == "live"
    assert result.live_version == "3" == releases.live_version(OLD_ROW)
    assert result.rollback_target() == "1" == releases.rollback_target(OLD_ROW)
    assert [r["version"] for r in result.kept_releases()] == ["1", "2", "3"]
    assert result.token_warned_at("2027-01-01T00:00:00+00:00") == "w"
    assert result.token_warned_at("2028-01-01T00:00:00+00:00") is None
    assert result.probe_summary["fingerprint"] == "f3"
    assert result.finding("health", status="succeeded", task_id="t-1") == OLD_ROW["health"]
    assert result.finding("health", status="succeeded", task_id="t-2") is None, "another release's"
    assert result.finding("tool_drift", status="running", task_id="t-1") is None


def test_missing_keys_give_defaults_and_are_not_written() -> None:
    for empty in (None, {}):
        result = DeploymentResult.from_json(empty)
        assert result.function_result is None and result.trigger_result is None
        assert result.release is None and result.releases == [] and result.probe is None
        assert result.live_version is None and result.rollback_target() is None
        assert result.trigger_qualifier is None and result.probe_summary == {}
        assert result.token_warned_at("x") is None
        assert result.finding("health", status="succeeded", task_id="t") is None
        assert result.to_json() == {}


def test_writes_are_the_dict_writes_they_replace() -> None:
    result = DeploymentResult.from_json({"function_result": {"a": 1}})
    # result.setdefault("trigger_result", None): the key is written, null
    result.trigger_result = result.trigger_result
    result.tool_changes = None  # result["tool_changes"] = None
    assert result.to_json() == {"function_result": {"a": 1}, "trigger_result": None, "tool_changes": None}
    result.drift = {"drifted": True}
    result.discard("drift")  # result.pop("drift", None)
    result.discard("token")  # absent: nothing happens
    assert "drift" not in result.to_json() and "token" not in result.to_json()
    result.record_release("4", release=4)
    result.record_release("4", probe={"ok": True})
    assert result.to_json()["releases"] == [{"version": "4", "release": 4, "probe": {"ok": True}}]


def test_update_merges_like_the_dict_merge_of_record_check() -> None:
    found = {"health": {"status": "unhealthy"}, "tool_drift": None, "not_known_yet": 1}
    merged = DeploymentResult.from_json(OLD_ROW).update(found).to_json()
    assert merged == {**OLD_ROW, **found}


def test_a_list_changed_in_place_is_still_written() -> None:
    result = DeploymentResult()
    result.releases.append({"version": "1"})
    assert result.to_json() == {"releases": [{"version": "1"}]}


def test_checkpoint_is_importable_where_callers_import_it() -> None:
    assert CheckpointFromLifecycle is Checkpoint
