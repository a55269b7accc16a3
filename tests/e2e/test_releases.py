"""Safe releases end to end (issue 14): real worker, real mcp-server-time behind emulated FC, the official
MCP client through the deployment's one URL. A redeploy whose server crashes at start is verified on its
own version and never takes traffic: `live` stays on the old version and the URL keeps its old tools."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.test_live_endpoints import IMAGE, use_endpoint
from tests.integration.conftest import stack_factory  # noqa: F401

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(stack_factory):  # noqa: F811
    return stack_factory(workers=1, pool="threads", concurrency=4)


def test_a_redeploy_that_crashes_at_start_fails_at_verify_and_the_url_keeps_the_old_tools(stack):
    stack.fc.backend.configure(start_timeout_s=5)
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
    before, _ = asyncio.run(use_endpoint(url, "streamable-http", headers))
    assert "get_current_time" in before

    crash = ["python", "-c", "import sys; sys.exit(3)", "--port", "8080"]
    with stack.http() as http:
        assert http.post(f"/v1/deployments/{dep_id}/redeploy", json={"command": crash}).status_code == 202
        dep = stack.wait_for(dep_id, {"succeeded", "failed"})
    assert dep["status"] == "failed" and dep["stage"] == "verify", dep
    error = dep["error"]
    assert error["step"] == "verify" and "version 2 failed verification" in error["message"]
    assert "live still serves version 1" in error["message"]
    assert dep["urls"]["mcp"] == url

    after, text = asyncio.run(use_endpoint(url, "streamable-http", headers))
    assert after == before and "UTC" in text
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
