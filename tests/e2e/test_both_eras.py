"""One URL, both MCP eras (issue 12's must-show list), through a deployment on the emulator with the default
(jwt) auth, a real worker and the real bridge in front of mcp-server-time:

* the mcp 2.x client pinned to 2026-07-28, in legacy mode and in auto mode each list tools and call one;
* a second instance of the function answers a 2026-07-28 client without any session;
* the deployment shows the protocols the probe saw and a fingerprint of every tool (API and `status`);
* `transport: sse` deploys, serves a legacy client and warns in the events;
* killing the stdio server fails the instance's health check and a fresh instance answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from typer.testing import CliRunner

from deployer.cli.main import app as cli_app
from deployer.ops.probe import tool_diff, tool_fingerprint
from tests.conftest import alive, wait_until
from tests.e2e.test_emulator_runtime import family
from tests.mcp_clients import MODERN, use

pytestmark = pytest.mark.e2e

IMAGE = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/mcp-server-time:1.0"


def deploy(stack, name: str, **fields: Any) -> tuple[dict[str, Any], dict[str, str]]:
    with stack.http() as http:
        body = {"name": name, "image": IMAGE, "command": ["mcp-server-time"], **fields}
        resp = http.post("/v1/deployments", json=body)
        assert resp.status_code == 202, resp.text
        dep = stack.wait_for(resp.json()["id"], {"succeeded", "failed"})
        assert dep["status"] == "succeeded", (dep.get("error"), stack.worker_logs())
        config = http.get(f"/v1/deployments/{name}/client-config").json()["mcpServers"][name]
    return dep, config["headers"]


def instance(stack, name: str) -> dict[str, Any] | None:
    found = httpx.get(f"{stack.fc.url}/_emulator/instances", timeout=10).json()["instances"]
    return next((i for i in found if i["functionName"] == name), None)


def cli(stack, *args: str):
    return CliRunner().invoke(cli_app, ["--api-url", stack.api_url, "--api-key", stack.api_key, *args])


def test_every_client_era_lists_and_calls_and_the_deployment_shows_protocols_and_fingerprints(stack):
    dep, headers = deploy(stack, "eras")
    assert headers["Authorization"].startswith("Bearer ")
    url = dep["urls"]["mcp"]
    for mode, protocol in ((MODERN, MODERN), ("legacy", "2025-11-25"), ("auto", MODERN)):
        used = asyncio.run(use(url, "streamable-http", headers, mode=mode))
        assert "get_current_time" in used.tools and json.loads(used.text)["timezone"] == "UTC", mode
        assert used.protocol == protocol, mode
    # without the endpoint token nothing answers, in either era
    with pytest.raises(BaseException):  # noqa: B017 - the SDK wraps the 401 in its own error types
        asyncio.run(use(url, "streamable-http", None, mode=MODERN, timeout=10))

    assert dep["protocols"] == [MODERN, "2025-11-25"]
    prints = dep["tool_fingerprints"]
    assert set(prints) == set(dep["tools"]) and all(len(p) == 64 for p in prints.values())
    assert len(dep["tool_fingerprint"]) == 64
    assert dep["result"]["probe"]["protocols"] == dep["protocols"]

    async def listed() -> list[Any]:
        async with httpx2.AsyncClient(headers=headers) as http:
            async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
                return (await client.list_tools()).tools

    # the fingerprint is the tool as a client sees it: name, description, input schema
    tools = asyncio.run(listed())
    assert {t.name: tool_fingerprint(t) for t in tools} == prints
    assert tool_diff(prints, prints) == {"added": [], "removed": [], "changed": []}

    status = cli(stack, "status", "eras")
    assert status.exit_code == 0, status.output
    assert f"{MODERN}, 2025-11-25" in status.output and "fingerprint" in status.output


def test_a_second_instance_answers_a_2026_client_without_a_session(stack):
    dep, headers = deploy(stack, "eras-stateless")
    url = dep["urls"]["mcp"]
    session_ids: list[str] = []

    async def record(response: httpx2.Response) -> None:
        if "mcp-session-id" in response.headers:
            session_ids.append(response.headers["mcp-session-id"])

    async def two_calls_across_instances() -> tuple[str, str]:
        hooks = {"response": [record]}
        async with httpx2.AsyncClient(headers=headers, event_hooks=hooks, timeout=30) as http:
            async with Client(streamable_http_client(url, http_client=http), mode=MODERN) as client:
                first = await client.call_tool("get_current_time", {"timezone": "UTC"})
                before = instance(stack, "eras-stateless")
                assert before is not None
                # the instance goes away (FC scales in, or the request lands elsewhere): the same client
                # goes on, with no handshake and nothing to resume
                httpx.delete(f"{stack.fc.url}/_emulator/instances", timeout=30).raise_for_status()
                assert instance(stack, "eras-stateless") is None
                second = await client.call_tool("get_current_time", {"timezone": "Asia/Tokyo"})
                after = instance(stack, "eras-stateless")
                assert after is not None and after["instanceId"] != before["instanceId"]
                assert not first.is_error and not second.is_error
                return first.content[0].text, second.content[0].text

    first, second = asyncio.run(two_calls_across_instances())
    assert json.loads(first)["timezone"] == "UTC" and json.loads(second)["timezone"] == "Asia/Tokyo"
    assert session_ids == [], "a 2026-07-28 endpoint issues no Mcp-Session-Id"


def test_sse_transport_deploys_serves_a_legacy_client_and_warns(stack):
    dep, headers = deploy(stack, "eras-sse", transport="sse")
    assert dep["urls"]["sse"].endswith("/sse")
    used = asyncio.run(use(dep["urls"]["sse"], "sse", headers))
    assert "get_current_time" in used.tools and used.protocol.startswith("20")
    assert dep["protocols"] == [used.protocol]
    events = cli(stack, "events", "eras-sse")
    assert events.exit_code == 0, events.output
    assert "deprecated" in events.output and "--transport streamable-http" in events.output


def test_killing_the_stdio_server_fails_the_health_check_and_a_fresh_instance_answers(stack):
    dep, headers = deploy(stack, "eras-kill")
    url = dep["urls"]["mcp"]
    asyncio.run(use(url, "streamable-http", headers, mode=MODERN))
    first = instance(stack, "eras-kill")
    assert first is not None
    status = f"http://127.0.0.1:{first['port']}/status"
    assert httpx.get(status, timeout=10).status_code == 200

    bridge = first["pid"]
    servers = [
        pid
        for pid in family(bridge)
        if pid != bridge
        and "mcp-server-time" in Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        and b"serverwatch" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert servers, f"no mcp-server-time under the bridge {bridge}: {family(bridge)}"
    os.kill(servers[0], signal.SIGKILL)

    def health_fails() -> bool:
        try:
            return httpx.get(status, timeout=5).status_code != 200
        except httpx.HTTPError:
            return True  # the bridge ended with its server: nothing answers on the instance's port

    wait_until(health_fails, 30, what="the health check fails once the stdio server is dead")
    wait_until(lambda: not alive(bridge), 30, what="the bridge ends with its server")

    used = asyncio.run(use(url, "streamable-http", headers, mode=MODERN))
    assert "get_current_time" in used.tools
    fresh = instance(stack, "eras-kill")
    assert fresh is not None and fresh["instanceId"] != first["instanceId"] and fresh["alive"]
    assert httpx.get(f"http://127.0.0.1:{fresh['port']}/status", timeout=10).status_code == 200
