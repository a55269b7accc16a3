"""Live endpoints end to end: the real bridge and mcp-server-time behind emulated FC triggers,
deployed through the API and a real worker, used with the official MCP client through the default auth."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from typer.testing import CliRunner

from deployer.cli.main import app as cli_app
from tests.conftest import wait_until
from tests.mcp_clients import use_endpoint

pytestmark = pytest.mark.e2e

IMAGE = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/mcp-server-time:1.0"


@pytest.mark.parametrize("transport", ["sse", "streamable-http"])
def test_deploy_lists_tools_and_the_client_config_works(stack, transport):
    name = f"live-{transport.replace('-', '')}"
    with stack.http() as http:
        resp = http.post(
            "/v1/deployments",
            json={"name": name, "image": IMAGE, "command": ["mcp-server-time"], "transport": transport},
        )
        assert resp.status_code == 202, resp.text
        dep = stack.wait_for(resp.json()["id"], {"succeeded", "failed"})
        assert dep["status"] == "succeeded", (dep.get("error"), stack.worker_logs())
        assert "get_current_time" in dep["tools"]
        config = http.get(f"/v1/deployments/{name}/client-config").json()["mcpServers"][name]
    url = dep["urls"]["sse" if transport == "sse" else "mcp"]
    assert config["url"] == url and config["headers"]["Authorization"].startswith("Bearer ")

    tools, text = asyncio.run(use_endpoint(url, transport, config["headers"]))
    assert "get_current_time" in tools and "UTC" in text

    # the endpoint refuses callers without the token, and with a wrong one
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer not-a-jwt"}, timeout=10).status_code == 401
    if transport == "streamable-http":
        # only what the endpoint serves is listed: its bridge answers 404 at /sse (issue 26 #5)
        assert dep["urls"].get("sse") is None, dep["urls"]
        sse = dep["urls"]["internet"].rstrip("/") + "/sse"
        assert httpx.get(sse, headers=config["headers"], timeout=10).status_code == 404


def test_the_deploy_summary_lists_only_served_urls_and_the_way_to_the_config(stack):
    """`mcp-fc deploy` of a streamable-http server prints its /mcp URL, no /sse (which answers 404), and
    says how to get the client config; `status --json` agrees (issue 26 #5)."""
    name = "live-summary"
    cli = ["--api-url", stack.api_url, "--api-key", stack.api_key]
    result = CliRunner().invoke(cli_app, [*cli, "deploy", name, "--image", IMAGE, "--", "mcp-server-time"])
    assert result.exit_code == 0, (result.output, stack.worker_logs())
    assert "/mcp" in result.output and "/sse" not in result.output, result.output
    assert f"mcp-fc config {name}" in result.output, result.output
    status = CliRunner().invoke(cli_app, [*cli, "status", name, "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["urls"]["sse"] is None
    assert "/sse" not in CliRunner().invoke(cli_app, [*cli, "status", name]).output


def test_token_rotation_invalidates_the_old_token(stack):
    name = "live-rotate"
    with stack.http() as http:
        dep_id = http.post(
            "/v1/deployments", json={"name": name, "image": IMAGE, "command": ["mcp-server-time"]}
        ).json()["id"]
        assert stack.wait_for(dep_id, {"succeeded", "failed"})["status"] == "succeeded"
        old = http.get(f"/v1/deployments/{name}/client-config").json()["mcpServers"][name]
    result = CliRunner().invoke(
        cli_app, ["--api-url", stack.api_url, "--api-key", stack.api_key, "token", "rotate", name]
    )
    assert result.exit_code == 0, result.output
    with stack.http() as http:
        new = http.get(f"/v1/deployments/{name}/client-config").json()["mcpServers"][name]
    assert new["headers"] != old["headers"] and new["url"] == old["url"]
    assert httpx.get(old["url"], headers=old["headers"], timeout=10).status_code == 401
    tools, _ = asyncio.run(use_endpoint(new["url"], "streamable-http", new["headers"]))
    assert "get_current_time" in tools


def test_anonymous_endpoint_needs_no_token(stack):
    with stack.http() as http:
        dep_id = http.post(
            "/v1/deployments",
            json={
                "name": "live-open",
                "image": IMAGE,
                "command": ["mcp-server-time"],
                "auth": {"type": "anonymous"},
            },
        ).json()["id"]
        dep = stack.wait_for(dep_id, {"succeeded", "failed"})
        assert dep["status"] == "succeeded", dep.get("error")
        assert (
            "headers"
            not in http.get("/v1/deployments/live-open/client-config").json()["mcpServers"]["live-open"]
        )
    tools, _ = asyncio.run(use_endpoint(dep["urls"]["mcp"], "streamable-http", None))
    assert "get_current_time" in tools


@pytest.mark.parametrize(
    ("command", "expect"),
    [
        # `--port 8080` lets the emulator map the container port to a free one, as it does for the bridge
        (["python", "-c", "import sys; sys.exit(3)", "--port", "8080"], "exit"),
        (["python", "-c", "import time; time.sleep(600)", "--port", "8080"], "listen"),
    ],
    ids=["exits-at-once", "never-listens"],
)
def test_a_server_that_does_not_answer_fails_the_deploy_clearly(stack, command, expect):
    before = stack.fc.backend.get_config()["start_timeout_s"]
    stack.fc.backend.configure(start_timeout_s=3)
    name = f"broken-{expect}"
    try:
        with stack.http() as http:
            dep_id = http.post(
                "/v1/deployments", json={"name": name, "image": IMAGE, "command": command, "proxy": "none"}
            ).json()["id"]
            dep = stack.wait_for(dep_id, {"succeeded", "failed"})
    finally:
        # the stack is shared by the module: later deploys get the normal cold-start allowance back
        stack.fc.backend.configure(start_timeout_s=before)
    assert dep["status"] == "failed"
    error = dep["error"]
    # With releases the first version is checked through its own trigger before any endpoint serves it.
    assert error["code"] == "ProbeFailed" and error["step"] == "verify"
    assert "version 1 failed verification" in error["message"] and "nothing serves yet" in error["message"]
    assert "/mcp" in error["message"], "says what was tried"
    assert expect in error["message"].lower(), "says what came back"
    assert dep["result"]["function_result"], "the function is kept for inspection"


def test_from_mcp_json_deploys_every_stdio_server(stack, tmp_path):
    config = {
        "mcpServers": {
            "time": {"command": "mcp-server-time", "args": []},
            "Time Tokyo": {
                "command": "mcp-server-time",
                "args": ["--local-timezone", "Asia/Tokyo"],
                "env": {"SOME_TOKEN": "t0ken-value"},
            },
            "already-remote": {"url": "https://example.com/mcp"},
        }
    }
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(config))
    result = CliRunner().invoke(
        cli_app,
        [
            "--api-url",
            stack.api_url,
            "--api-key",
            stack.api_key,
            "deploy",
            "--from-mcp-json",
            str(path),
            "--image",
            IMAGE,
        ],
    )
    assert result.exit_code == 0, result.output
    remote = json.loads(result.stdout)["mcpServers"]
    assert set(remote) == {"time", "Time Tokyo"}
    assert "t0ken-value" not in result.output
    for entry in remote.values():
        assert entry["type"] == "http"
        tools, _ = asyncio.run(use_endpoint(entry["url"], "streamable-http", entry["headers"]))
        assert "get_current_time" in tools


def test_a_default_deploy_sends_what_fc_documents_and_serves_the_official_client(stack):
    """The default deploy (jwt): the trigger config on the wire has the tokenLookup prefix with its space
    and no claimPassBy (audit rows 5-6), the container's entrypoint is set (row 22), and the official MCP
    client with `Authorization: Bearer <token>` lists tools through the returned URL."""
    name = "live-default"
    with stack.http() as http:
        resp = http.post(
            "/v1/deployments", json={"name": name, "image": IMAGE, "command": ["mcp-server-time"]}
        )
        assert resp.status_code == 202, resp.text
        dep = stack.wait_for(resp.json()["id"], {"succeeded", "failed"})
        assert dep["status"] == "succeeded", (dep.get("error"), stack.worker_logs())
        config = http.get(f"/v1/deployments/{name}/client-config").json()["mcpServers"][name]
    state = stack.fc.backend.snapshot()
    wire = json.loads(state["triggers"][name]["http"]["triggerConfig"])
    assert wire["authType"] == "jwt"
    assert wire["authConfig"]["tokenLookup"] == "header:Authorization:Bearer "
    assert "claimPassBy" not in wire["authConfig"]
    assert json.loads(dep["result"]["trigger_result"]["body"]["triggerConfig"]) == wire
    assert state["functions"][name]["customContainerConfig"]["entrypoint"] == ["tini", "--"]
    assert config["headers"]["Authorization"].startswith("Bearer ")
    tools, text = asyncio.run(use_endpoint(config["url"], dep["spec"]["transport"], config["headers"]))
    assert "get_current_time" in tools and "UTC" in text


def test_an_inactive_function_is_not_ready_and_the_deploy_brings_it_back(stack):
    """FC's Inactive state cannot be invoked: the deploy does not go on to the trigger, it updates the
    function once (FC: "redeploy or trigger the function to return it to Pending") and waits for Active."""
    name = "live-inactive"
    updates_before = stack.fc.faults.stats()["calls"].get("UpdateFunction", 0)
    stack.fc.backend.configure(pending_seconds=600)  # the new function stays Pending until we act
    try:
        with stack.http() as http:
            dep_id = http.post(
                "/v1/deployments", json={"name": name, "image": IMAGE, "command": ["mcp-server-time"]}
            ).json()["id"]
            wait_until(lambda: name in stack.fc.backend.functions, timeout=60)
            stack.fc.backend.configure(pending_seconds=0.2)
            r = httpx.post(f"{stack.fc.url}/_emulator/functions/{name}/deactivate", timeout=10)
            assert r.status_code == 200 and r.json()["state"] == "Inactive"
            dep = stack.wait_for(dep_id, {"succeeded", "failed"})
    finally:
        stack.fc.backend.configure(pending_seconds=0.5)
    assert dep["status"] == "succeeded", (dep.get("error"), stack.worker_logs())
    assert stack.fc.faults.stats()["calls"].get("UpdateFunction", 0) == updates_before + 1
    assert stack.fc.backend.snapshot()["functions"][name]["state"] == "Active"


def test_sse_warns_and_redeploy_transport_converts_it(stack):
    """`transport: sse` still deploys, serves a legacy client and warns in its events; a redeploy without a
    transport keeps it; `mcp-fc redeploy NAME --transport streamable-http` converts it (affinity NONE, a
    trigger that allows DELETE) and prints a config whose URL serves a streamable HTTP client."""
    name = "live-convert"
    with stack.http() as http:
        dep_id = http.post(
            "/v1/deployments",
            json={"name": name, "image": IMAGE, "command": ["mcp-server-time"], "transport": "sse"},
        ).json()["id"]
        dep = stack.wait_for(dep_id, {"succeeded", "failed"})
        assert dep["status"] == "succeeded", (dep.get("error"), stack.worker_logs())
        events = http.get(f"/v1/deployments/{dep_id}/events").text
        assert "transport sse is deprecated" in events
        sse = http.get(f"/v1/deployments/{name}/client-config").json()["mcpServers"][name]
        assert sse["type"] == "sse"
        # a plain redeploy keeps the transport
        http.post(f"/v1/deployments/{name}/redeploy", json={})
        assert stack.wait_for(dep_id, {"succeeded", "failed"})["spec"]["transport"] == "sse"
    tools, _ = asyncio.run(use_endpoint(sse["url"], "sse", sse["headers"]))
    assert "get_current_time" in tools

    result = CliRunner().invoke(
        cli_app,
        [
            "--api-url",
            stack.api_url,
            "--api-key",
            stack.api_key,
            "redeploy",
            name,
            "--transport",
            "streamable-http",
        ],
    )
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout[result.stdout.index("{\n") :])["mcpServers"][name]
    assert entry["type"] == "http" and entry["url"].endswith("/mcp")
    state = stack.fc.backend.snapshot()
    assert state["functions"][name]["sessionAffinity"] == "NONE"
    methods = json.loads(state["triggers"][name]["http"]["triggerConfig"])["methods"]
    assert {"GET", "POST", "DELETE", "OPTIONS"} <= set(methods)
    tools, _ = asyncio.run(use_endpoint(entry["url"], "streamable-http", entry["headers"]))
    assert "get_current_time" in tools
