"""Safe releases end to end (issue 14): real worker, real mcp-server-time behind emulated FC, the official
MCP client through the deployment's one URL. A redeploy whose server crashes at start is verified on its
own version and never takes traffic: `live` stays on the old version and the URL keeps its old tools."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployer.cli.main import app as cli_app
from deployer.store import reads as store
from deployer.store.db import session_scope
from tests.e2e.test_live_endpoints import IMAGE
from tests.mcp_clients import use

pytestmark = pytest.mark.e2e

SERVER = str(Path(__file__).with_name("named_tool_server.py"))


def test_a_redeploy_that_crashes_at_start_fails_at_verify_and_the_url_keeps_the_old_tools(stack):
    name = "release-crash"
    with stack.http() as http:
        dep_id = http.post(
            "/v1/deployments", json={"name": name, "image": IMAGE, "command": ["mcp-server-time"]}
        ).json()["id"]
        dep = stack.wait_for(dep_id, {"succeeded", "failed"})
        assert dep["status"] == "succeeded", (dep.get("error"), stack.worker_logs())
        headers = http.get(f"/v1/deployments/{name}/client-config").json()["mcpServers"][name]["headers"]
    url = dep["urls"]["mcp"]
    assert dep["result"]["trigger_result"]["body"]["qualifier"] == "live"
    assert dep["result"]["alias_result"]["body"]["versionId"] == "1"
    assert dep["result"]["version_result"]["body"]["description"] == f"mcp-fc {dep_id} release 1"
    before = asyncio.run(use(url, "streamable-http", headers, tool=None)).tools
    assert "get_current_time" in before
    with session_scope(stack.settings) as session:
        progress = [e.progress for e in store.events_after(session, dep_id)]
    assert progress == sorted(progress), f"a release's progress never goes back: {progress}"

    crash = ["python", "-c", "import sys; sys.exit(3)", "--port", "8080"]
    with stack.http() as http:
        assert http.post(f"/v1/deployments/{dep_id}/redeploy", json={"command": crash}).status_code == 202
        dep = stack.wait_for(dep_id, {"succeeded", "failed"})
    assert dep["status"] == "failed" and dep["stage"] == "verify", dep
    error = dep["error"]
    assert error["step"] == "verify" and "version 2 failed verification" in error["message"]
    assert "live still serves version 1" in error["message"]
    assert dep["urls"]["mcp"] == url

    used = asyncio.run(use(url, "streamable-http", headers))
    assert used.tools == before and "UTC" in used.text
    fc = stack.fc.backend
    assert fc.get_alias(name, "live")["versionId"] == "1"
    assert [t["triggerName"] for t in fc.list_triggers(name)["triggers"]] == ["http"], (
        "verify trigger removed"
    )
    # exactly one version per release
    assert [v["description"] for v in fc.list_function_versions(name)["versions"]] == [
        f"mcp-fc {dep_id} release 2",
        f"mcp-fc {dep_id} release 1",
    ]


async def list_tools(url: str, headers: dict[str, str] | None) -> list[str]:
    return (await use(url, "streamable-http", headers, tool=None)).tools


def test_rollback_returns_the_url_to_the_previous_version_and_history_shows_both(stack):
    name = "release-rollback"
    first = [sys.executable, SERVER, "release_one"]
    with stack.http() as http:
        dep_id = http.post(
            "/v1/deployments", json={"name": name, "image": IMAGE, "command": first, "env": {"A": "1"}}
        ).json()["id"]
        dep = stack.wait_for(dep_id, {"succeeded", "failed"})
        assert dep["status"] == "succeeded", (dep.get("error"), stack.worker_logs())
        headers = http.get(f"/v1/deployments/{name}/client-config").json()["mcpServers"][name]["headers"]
        url = dep["urls"]["mcp"]
        assert asyncio.run(list_tools(url, headers)) == ["release_one"]
        # one release: nothing to roll back to, refused before anything is queued (the deployment stays live)
        refused = http.post(f"/v1/deployments/{dep_id}/rollback")
        assert refused.status_code == 409 and "no earlier verified version" in refused.json()["detail"]
        assert http.get(f"/v1/deployments/{dep_id}").json()["status"] == "succeeded"

        second = [sys.executable, SERVER, "release_two"]
        http.post(f"/v1/deployments/{dep_id}/redeploy", json={"command": second}).raise_for_status()
        dep = stack.wait_for(dep_id, {"succeeded", "failed"})
        assert dep["status"] == "succeeded", (dep.get("error"), stack.worker_logs())
        assert dep["urls"]["mcp"] == url
        assert asyncio.run(list_tools(url, headers)) == ["release_two"]

    runner = CliRunner()
    root = ["--api-url", stack.api_url, "--api-key", stack.api_key]
    result = runner.invoke(cli_app, [*root, "rollback", name, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["result"]["alias_result"]["body"]["versionId"] == "1"
    assert asyncio.run(list_tools(url, headers)) == ["release_one"], "the same URL serves version 1 again"

    result = runner.invoke(cli_app, [*root, "history", name, "--json"])
    assert result.exit_code == 0, result.output
    history = json.loads(result.stdout)
    assert history["live"] == "1"
    rows = {v["version"]: v for v in history["versions"]}
    assert set(rows) == {"1", "2"} and rows["1"]["live"] and not rows["2"]["live"]
    assert rows["1"]["command"][-1] == "release_one" and rows["2"]["command"][-1] == "release_two"
    assert rows["1"]["env_keys"] == ["A"] and rows["1"]["probe"]["ok"] and rows["1"]["image"] == IMAGE
    text = runner.invoke(cli_app, [*root, "history", name])
    assert text.exit_code == 0 and "* live" in text.stdout and "release_two" in text.stdout
