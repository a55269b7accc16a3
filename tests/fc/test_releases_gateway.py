"""Versions and aliases through the gateway: one version per release marker and one alias under lost
responses, and a delete that removes triggers, aliases and versions before the function."""

from __future__ import annotations

from tests.fc.test_gateway import deploy, gateway_for, request

MARK = "mcp-fc d-0001 release 1"


def test_lost_publish_response_still_leaves_one_version_for_the_release(fc):
    gw = gateway_for(fc)
    deploy(gw, request())
    fc.faults.set("PublishFunctionVersion", lose_response_rate=1.0, count=2)
    version, how = gw.publish_version_once("mcp-test1", MARK)
    assert how == "found", "the lost publish committed: the retry found it instead of publishing again"
    again, how_again = gw.publish_version_once("mcp-test1", MARK)
    assert how_again == "found" and again["body"]["versionId"] == version["body"]["versionId"]
    assert [v["description"] for v in gw.list_versions("mcp-test1")] == [MARK]
    assert fc.faults.stats()["calls"]["PublishFunctionVersion"] == 1


def test_lost_alias_responses_converge_to_one_alias_on_the_newest_version(fc):
    gw = gateway_for(fc)
    deploy(gw, request())
    v1 = gw.publish_version_once("mcp-test1", MARK)[0]["body"]["versionId"]
    fc.faults.set("CreateAlias", lose_response_rate=1.0, count=1)
    alias, how = gw.point_alias("mcp-test1", "live", v1)
    assert alias["body"]["versionId"] == v1 and how in ("created", "unchanged")
    v2 = gw.publish_version_once("mcp-test1", "mcp-fc d-0001 release 2")[0]["body"]["versionId"]
    fc.faults.set("UpdateAlias", lose_response_rate=1.0, count=1)
    alias, _ = gw.point_alias("mcp-test1", "live", v2)
    assert alias["body"]["versionId"] == v2
    assert [(a["aliasName"], a["versionId"]) for a in gw.list_aliases("mcp-test1")] == [("live", v2)]
    assert gw.point_alias("mcp-test1", "live", v2)[1] == "unchanged"


def test_delete_removes_triggers_aliases_and_versions_first(fc):
    gw = gateway_for(fc)
    deploy(gw, request())
    v1 = gw.publish_version_once("mcp-test1", MARK)[0]["body"]["versionId"]
    gw.point_alias("mcp-test1", "live", v1)
    assert gw.delete_function_and_triggers("mcp-test1")
    assert gw.list_functions() == []
