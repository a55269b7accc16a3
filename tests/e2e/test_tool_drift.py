"""Tool drift end to end (issue 15 #3): a real beat and worker, mcp-fc-bridge in front of a stdio server whose
tools come from a JSON file (tests/e2e/schema_tool_server.py), the API and the CLI.

A redeploy that changes a tool's input schema is reported as tool drift against the previous release, with
the diff (event, `tool_changes`, `mcp-fc redeploy` and `mcp-fc status`). A server whose tools change while
it runs is reported by the scheduled health check against what the deploy recorded (event, `tool_drift`,
`mcp-fc status`), and the report clears once it lists the deployed tools again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.e2e.test_health_checks import INTERVAL_S, PROBE_TIMEOUT_S, cli, events, stack  # noqa: F401
from tests.e2e.test_live_endpoints import IMAGE

pytestmark = pytest.mark.e2e

SERVER = str(Path(__file__).with_name("schema_tool_server.py"))
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "inputSchema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def write(path: Path, tools: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(tools))
    tmp.replace(path)  # the server reads whole files only


def test_a_redeploy_that_changes_an_input_schema_is_tool_drift_with_the_diff(stack, tmp_path):  # noqa: F811
    first, second = tmp_path / "v1.json", tmp_path / "v2.json"
    write(first, [WEATHER])
    changed = {
        **WEATHER,
        "inputSchema": {**WEATHER["inputSchema"], "properties": {"city": {"type": "integer"}}},
    }
    write(second, [changed])
    name = "drift-release"
    deployed = cli(stack, "deploy", name, "--image", IMAGE, "--", "python", SERVER, str(first))
    assert deployed.exit_code == 0, deployed.output
    assert "tool drift" not in deployed.output  # a first release has nothing to compare with

    redeployed = cli(stack, "redeploy", name, "--", "python", SERVER, str(second))
    assert redeployed.exit_code == 0, redeployed.output
    line = '~ get_weather: input schema /properties/city/type: "string" -> "integer"'
    assert "tool drift" in redeployed.output and line in redeployed.output, redeployed.output

    with stack.http() as http:
        dep = http.get(f"/v1/deployments/{name}").json()
    changes = dep["tool_changes"]
    assert changes["against"] == "version 1", changes
    assert changes["changed"] == {
        "get_weather": {
            "description": None,
            "input_schema": [{"path": "/properties/city/type", "old": "string", "new": "integer"}],
        }
    }
    assert changes["added"] == [] and changes["removed"] == []
    assert dep["tool_drift"] is None  # the running server lists what this release's deploy recorded
    messages = [m for _, m in events(stack, dep["id"])]
    assert "tool drift against version 1: changed get_weather (input schema)" in messages, messages
    status = cli(stack, "status", name)
    assert line in status.output and "against version 1" in status.output, status.output


def test_tools_that_change_while_the_server_runs_are_drift_until_they_match_again(stack, tmp_path):  # noqa: F811
    tools = tmp_path / "tools.json"
    write(tools, [WEATHER])
    name = "drift-runtime"
    deployed = cli(stack, "deploy", name, "--image", IMAGE, "--", "python", SERVER, str(tools))
    assert deployed.exit_code == 0, deployed.output
    with stack.http() as http:
        dep_id = http.get(f"/v1/deployments/{name}").json()["id"]

    forecast = {"name": "forecast", "description": "Three days ahead", "inputSchema": {"type": "object"}}
    write(tools, [{**WEATHER, "description": "Weather for a city, in Celsius"}, forecast])
    drift = wait_until(
        lambda: next(
            (m for _, m in events(stack, dep_id) if m.startswith("tool drift against the deploy")), None
        ),
        INTERVAL_S + PROBE_TIMEOUT_S + 30,
        interval=0.1,
        what="a tool drift event from the health check",
    )
    assert drift == "tool drift against the deploy: added forecast; changed get_weather (description)", drift
    with stack.http() as http:
        found = http.get(f"/v1/deployments/{dep_id}").json()["tool_drift"]
        assert found["against"] == "the deploy" and found["added"] == ["forecast"]
        assert found["changed"]["get_weather"]["description"] == {
            "old": "Weather for a city",
            "new": "Weather for a city, in Celsius",
        }
        assert "mcpfc_deployments_tool_drift 1.0" in http.get("/metrics").text
    status = cli(stack, "status", name)
    assert "+ forecast (new tool)" in status.output, status.output
    assert (
        '~ get_weather: description "Weather for a city" -> "Weather for a city, in Celsius"' in status.output
    )

    write(tools, [WEATHER])
    wait_until(
        lambda: "tools: the server lists the deployed tools again" in [m for _, m in events(stack, dep_id)],
        INTERVAL_S + PROBE_TIMEOUT_S + 30,
        interval=0.1,
        what="the drift cleared",
    )
    with stack.http() as http:
        assert http.get(f"/v1/deployments/{dep_id}").json()["tool_drift"] is None
