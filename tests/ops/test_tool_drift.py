"""Tool drift diffs over {name: (description, input schema)} (deployer/ops/tool_drift.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from deployer.ops.tool_drift import (
    compare,
    defs_from_tools,
    diff_lines,
    drifted,
    fingerprint,
    next_drift,
    release_changes,
    summary,
    tool_diff,
)

TIME_SCHEMA = {
    "type": "object",
    "properties": {"timezone": {"type": "string", "description": "IANA name"}},
    "required": ["timezone"],
}
BASE = {
    "get_current_time": ("Current time in a timezone", TIME_SCHEMA),
    "convert_time": ("Convert between timezones", {"type": "object", "properties": {}}),
}


def test_no_change_is_no_drift_and_key_order_does_not_matter():
    reordered = {
        "convert_time": BASE["convert_time"],
        "get_current_time": (
            "Current time in a timezone",
            {
                "required": ["timezone"],
                "properties": {"timezone": {"description": "IANA name", "type": "string"}},
                "type": "object",
            },
        ),
    }
    diff = tool_diff(BASE, reordered)
    assert diff == {"added": [], "removed": [], "changed": {}} and not drifted(diff)
    assert fingerprint(BASE) == fingerprint(reordered)


def test_added_and_removed_tools():
    new = {"get_current_time": BASE["get_current_time"], "sleep": ("Wait", {"type": "object"})}
    diff = tool_diff(BASE, new)
    assert diff["added"] == ["sleep"] and diff["removed"] == ["convert_time"] and diff["changed"] == {}
    assert drifted(diff)
    assert diff_lines(diff) == ["+ sleep (new tool)", "- convert_time (tool removed)"]
    assert summary(diff) == "added sleep; removed convert_time"
    assert fingerprint(BASE) != fingerprint(new)


def test_a_changed_description():
    new = {**BASE, "convert_time": ("Convert a time", BASE["convert_time"][1])}
    diff = tool_diff(BASE, new)
    assert diff["changed"] == {
        "convert_time": {"description": {"old": "Convert between timezones", "new": "Convert a time"}}
    }
    assert diff_lines(diff) == ['~ convert_time: description "Convert between timezones" -> "Convert a time"']
    assert summary(diff) == "changed convert_time (description)"


def test_a_changed_input_schema_names_each_pointer():
    schema = {
        "type": "object",
        "properties": {
            "timezone": {"type": "integer", "description": "IANA name"},
            "format": {"type": "string"},
        },
        "required": ["format", "timezone"],
    }
    new = {**BASE, "get_current_time": (BASE["get_current_time"][0], schema)}
    diff = tool_diff(BASE, new)
    assert diff["changed"] == {
        "get_current_time": {
            "input_schema": [
                {"path": "/properties/format", "new": {"type": "string"}},
                {"path": "/properties/timezone/type", "old": "string", "new": "integer"},
                {"path": "/required/format", "new": "required"},
            ]
        }
    }
    assert diff_lines(diff) == [
        '~ get_current_time: input schema /properties/format added: {"type": "string"}',
        '~ get_current_time: input schema /properties/timezone/type: "string" -> "integer"',
        '~ get_current_time: input schema /required/format added: "required"',
    ]
    assert summary(diff) == "changed get_current_time (input schema)"


def test_removed_members_pointer_escaping_and_long_values():
    old = {"t": (None, {"properties": {"a/b": {"type": "string"}, "x": {"enum": list(range(100))}}})}
    new = {"t": ("", {"properties": {"x": {"enum": list(range(101))}}})}
    diff = tool_diff(old, new)
    changes = diff["changed"]["t"]["input_schema"]
    assert changes[0] == {"path": "/properties/a~1b", "old": {"type": "string"}}
    assert changes[1]["path"] == "/properties/x/enum"
    assert "description" not in diff["changed"]["t"]  # None and "" are both "no description"
    lines = diff_lines(diff)
    assert lines[0] == '~ t: input schema /properties/a~1b removed (was {"type": "string"})'
    assert "chars)" in lines[1] and len(lines[1]) < 500


def test_defs_from_the_sdks_tools_and_plain_dicts():
    try:  # the MCP SDK 2.x moved its types to their own package
        from mcp_types import Tool  # type: ignore[import-not-found]
    except ImportError:
        from mcp.types import Tool

    tools = [Tool(name="get_current_time", description="Current time in a timezone", inputSchema=TIME_SCHEMA)]
    assert defs_from_tools(tools) == {"get_current_time": BASE["get_current_time"]}
    assert defs_from_tools([{"name": "x", "inputSchema": {"type": "object"}}]) == {
        "x": (None, {"type": "object"})
    }


def summary_of(defs):
    """A probe summary as deployer/ops/probe.py records it: per-tool fingerprints, and the definitions."""
    return {
        "tool_fingerprints": {n: fingerprint({n: d}) for n, d in defs.items()},
        "tool_defs": {n: {"description": d, "inputSchema": s} for n, (d, s) in defs.items()},
    }


def test_compare_probe_summaries_names_the_changes_and_their_detail():
    schema = {**TIME_SCHEMA, "properties": {"timezone": {"type": "integer", "description": "IANA name"}}}
    new = {**BASE, "get_current_time": (BASE["get_current_time"][0], schema), "sleep": ("Wait", {})}
    diff = compare(summary_of(BASE), summary_of(new))
    assert diff == {
        "added": ["sleep"],
        "removed": [],
        "changed": {
            "get_current_time": {
                "input_schema": [{"path": "/properties/timezone/type", "old": "string", "new": "integer"}]
            }
        },
    }
    assert compare(summary_of(BASE), summary_of(BASE)) == {"added": [], "removed": [], "changed": {}}


def test_compare_without_definitions_still_names_the_changed_tool_and_without_fingerprints_says_nothing():
    old, new = summary_of(BASE), summary_of({**BASE, "convert_time": ("Other", {})})
    old.pop("tool_defs")
    diff = compare(old, new)
    assert diff == {"added": [], "removed": [], "changed": {"convert_time": {}}}
    assert diff_lines(diff) == [
        "~ convert_time: changed (its description or input schema; no definitions recorded)"
    ]
    assert summary(diff) == "changed convert_time"
    assert compare({"fingerprint": "x"}, new) is None and compare(None, new) is None


def test_next_drift_events_only_when_the_drift_appears_changes_or_clears():
    now = datetime(2026, 12, 3, tzinfo=UTC)
    diff = compare(summary_of(BASE), summary_of({**BASE, "convert_time": ("Other", {})}))
    first, message = next_drift(None, diff, task_id="t", now=now)
    assert first["task_id"] == "t" and first["against"] == "the deploy" and first["changed"]
    assert message == "tool drift against the deploy: changed convert_time (description and input schema)"
    same, again = next_drift(first, diff, task_id="t", now=now)
    assert same == first and again is None
    kept, nothing = next_drift(first, None, task_id="t", now=now)  # this probe gave nothing to compare
    assert kept == first and nothing is None
    cleared, back = next_drift(first, compare(summary_of(BASE), summary_of(BASE)), task_id="t", now=now)
    assert cleared is None and back == "tools: the server lists the deployed tools again"


def test_release_changes_against_the_previous_release():
    now = datetime(2026, 12, 3, tzinfo=UTC)
    schema = {**TIME_SCHEMA, "required": []}
    new = summary_of({**BASE, "get_current_time": (BASE["get_current_time"][0], schema)})
    changes, message = release_changes(summary_of(BASE), new, against="release 1", task_id="t2", now=now)
    assert changes["against"] == "release 1" and changes["changed"]["get_current_time"]["input_schema"] == [
        {"path": "/required/timezone", "old": "required"}
    ]
    assert message == "tool drift against release 1: changed get_current_time (input schema)"
    assert release_changes(None, new, against="-", task_id="t", now=now) == (None, None)
    assert release_changes(new, new, against="-", task_id="t", now=now) == (None, None)
