"""Nothing changed means no release (deployer/ops/unchanged.py, issue 26 #1-#2)."""

from __future__ import annotations

from deployer.ops import unchanged


def test_a_deploy_of_the_spec_a_succeeded_deployment_has_changes_nothing():
    assert unchanged.deploy_changes_nothing("succeeded", [])
    assert not unchanged.deploy_changes_nothing("succeeded", ["image"])
    assert not unchanged.deploy_changes_nothing("failed", [])  # a retry deploys again
    assert not unchanged.deploy_changes_nothing("cancelled", [])
    assert not unchanged.deploy_changes_nothing("succeeded", [], same_build=False)  # code packages (issue 23)


def test_a_reconcile_writes_only_what_drifted():
    assert unchanged.reconcile_plan([]) == frozenset()
    fields = [
        {"field": "memorySize"},
        {"field": "function"},
        {"field": "trigger.triggerConfig.methods"},
        {"field": "alias.live.versionId"},
    ]
    assert unchanged.reconcile_plan(fields) == {"function", "trigger", "alias"}
    assert unchanged.reconcile_plan([{"field": "trigger.qualifier"}]) == {"trigger"}


def test_the_note_says_what_still_serves_and_how_to_release_anyway():
    note = unchanged.no_release_note("time", "3")
    assert "nothing changed" in note and "live still serves version 3" in note
    assert "mcp-fc redeploy time" in note
