"""The emulator's live trigger URLs with the REAL bridge (mcp-fc-bridge) and mcp-server-time, used by the
OFFICIAL MCP client.

Functions and triggers are built by mcp-fc's own spec builder (``deployer.fc.spec``) and created with the real
SDK; the trigger uses jwt auth with a token minted by ``deployer.fc.endpoint_auth``. Both transports: ``sse``
(``--transport sse``: ``GET /sse`` + ``POST /messages/``) and ``streamable-http`` (stateless ``POST /mcp``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alibabacloud_fc20230330 import models as fc
from alibabacloud_fc20230330.client import Client
from alibabacloud_tea_openapi import models as om

from deployer.fc import spec
from deployer.fc.endpoint_auth import SigningKey, mint_token, new_signing_key
from fc_emulator import EmulatorServer
from fc_emulator.runtime import DEFAULT_START_TIMEOUT_S
from schemas import DeployRequest, Transport
from tests.conftest import alive, wait_until
from tests.e2e.conftest import FC_HEALTH_FAILURE_THRESHOLD
from tests.mcp_clients import use_endpoint

pytestmark = pytest.mark.e2e

AK, SK = "e2e-ak", "e2e-secret"
IMAGE = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/mcp-server-time:1.0"


def poll(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    return wait_until(predicate, timeout)


def family(pid: int) -> set[int]:
    """The process and its live descendants (mcp-server-time runs in a session of its own)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found = {pid} if pid in parents else set()
    changed = True
    while changed:
        changed = False
        for child, parent in parents.items():
            if parent in found and child not in found:
                found.add(child)
                changed = True
    return found


@pytest.fixture(scope="module")
def fc_emulator() -> Iterator[EmulatorServer]:
    server = EmulatorServer(port=0, access_key_id=AK, access_key_secret=SK, pending_seconds=0).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sdk(fc_emulator: EmulatorServer) -> Client:
    return Client(
        om.Config(access_key_id=AK, access_key_secret=SK, endpoint=fc_emulator.endpoint, protocol="http")
    )


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return new_signing_key()


def deploy(sdk: Client, req: DeployRequest, auth: spec.EndpointAuth) -> str:
    sdk.create_function(fc.CreateFunctionRequest(body=spec.create_function_input(req)))
    body = spec.create_trigger_input(req, auth)
    return sdk.create_trigger(req.name, fc.CreateTriggerRequest(body=body)).body.http_trigger.url_internet


def instances(server: EmulatorServer) -> dict[str, dict[str, Any]]:
    return {i["functionName"]: i for i in httpx.get(f"{server.url}/_emulator/instances").json()["instances"]}


async def use(url: str, transport: str, headers: dict[str, str] | None) -> tuple[list[str], str]:
    return await use_endpoint(url, transport, headers)


@pytest.mark.parametrize("transport", ["sse", "streamable-http"])
def test_official_client_through_a_jwt_trigger(fc_emulator, sdk, key, transport):
    name = f"time-{transport.replace('-', '')}"
    req = DeployRequest(
        name=name, image=IMAGE, command=["mcp-server-time"], transport=transport, auth={"type": "jwt"}
    )
    base = deploy(sdk, req, spec.EndpointAuth(jwks=key.jwks()))
    urls = spec.endpoint_urls(base, base, Transport(transport))
    url = urls.sse if transport == "sse" else urls.mcp
    token = mint_token(key, subject=name)

    # the trigger refuses callers without the token or with a wrong one, before anything starts
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer not-a-jwt"}, timeout=10).status_code == 401
    wrong = mint_token(new_signing_key(), subject=name)
    r = httpx.post(url, headers={"Authorization": f"Bearer {wrong}"}, json={}, timeout=10)
    assert r.status_code == 401
    assert name not in instances(fc_emulator)

    started = time.monotonic()
    tools, text = asyncio.run(use(url, transport, {"Authorization": f"Bearer {token}"}))
    first_session_s = time.monotonic() - started
    assert "get_current_time" in tools
    assert json.loads(text)["timezone"] == "UTC"
    inst = instances(fc_emulator)[name]
    expected = ["mcp-fc-bridge", "--port", str(inst["port"]), "--host", "127.0.0.1"]
    assert inst["command"][:5] == expected and ("--transport" in inst["command"]) == (transport == "sse")
    print(
        f"\n{transport}: cold start {inst['coldStartMs']} ms, "
        f"first MCP session {first_session_s * 1000:.0f} ms"
    )

    # warm: a second session reuses the instance
    asyncio.run(use(url, transport, {"Authorization": f"Bearer {token}"}))
    assert instances(fc_emulator)[name]["pid"] == inst["pid"]


def test_sse_endpoint_event_arrives_promptly_with_an_absolute_path(fc_emulator, sdk):
    req = DeployRequest(
        name="time-open",
        image=IMAGE,
        command=["mcp-server-time"],
        auth={"type": "anonymous"},
        transport="sse",
    )
    base = deploy(sdk, req, spec.EndpointAuth())
    assert httpx.get(f"{base}/status", timeout=30).status_code == 200  # cold start
    latencies = []
    for _ in range(3):
        started = time.monotonic()
        with httpx.stream("GET", f"{base}/sse", timeout=10) as resp:
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
            lines = resp.iter_lines()
            assert next(lines) == "event: endpoint"
            data = next(lines)
            latencies.append(time.monotonic() - started)
            assert data.startswith("data: /messages/?session_id=")
            # the session stays usable on the same origin while the stream is open (concurrent POST)
            ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
            post = httpx.post(base + data.removeprefix("data: "), json=ping, timeout=10)
            assert post.status_code == 202
            reply = next(line for line in lines if line.startswith("data:"))
            assert json.loads(reply.removeprefix("data: ")) == {"jsonrpc": "2.0", "id": 1, "result": {}}
    print(f"\nSSE endpoint event latency (warm): {[round(x * 1000, 1) for x in latencies]} ms")
    assert min(latencies) < 0.5


def test_update_restarts_and_delete_or_stop_leave_no_process(key):
    server = EmulatorServer(port=0, access_key_id=AK, access_key_secret=SK, pending_seconds=0).start()
    try:
        client = Client(
            om.Config(access_key_id=AK, access_key_secret=SK, endpoint=server.endpoint, protocol="http")
        )
        req = DeployRequest(
            name="time-life", image=IMAGE, command=["mcp-server-time"], auth={"type": "jwt"}, transport="sse"
        )
        base = deploy(client, req, spec.EndpointAuth(jwks=key.jwks()))
        headers = {"Authorization": f"Bearer {mint_token(key, subject='time-life')}"}
        asyncio.run(use(f"{base}/sse", "sse", headers))
        first = instances(server)["time-life"]
        # the bridge and its mcp-server-time
        members = poll(lambda: m if len(m := family(first["pid"])) >= 2 else None)

        update = spec.update_function_input(req.model_copy(update={"env": {"TZ_HINT": "x"}}))
        client.update_function("time-life", fc.UpdateFunctionRequest(body=update))
        poll(lambda: not any(alive(p) for p in members))
        asyncio.run(use(f"{base}/sse", "sse", headers))
        second = instances(server)["time-life"]
        assert second["pid"] != first["pid"] and second["revision"] == 2

        client.delete_trigger("time-life", "http")
        client.delete_function("time-life")
        members = family(second["pid"])
        poll(lambda: not any(alive(p) for p in members))

        base = deploy(client, req, spec.EndpointAuth(jwks=key.jwks()))
        asyncio.run(use(f"{base}/sse", "sse", headers))
        third = instances(server)["time-life"]
        members = poll(lambda: m if len(m := family(third["pid"])) >= 2 else None)
    finally:
        server.stop()
    assert [p for p in members if alive(p)] == []  # stop() waited: nothing left, children included


def test_an_image_entrypoint_that_is_not_a_pass_through_still_runs_the_generated_command(fc_emulator, sdk):
    """The official mcp-proxy image's ENTRYPOINT is `catatonit -- mcp-proxy` (mcp-hosting.md). mcp-fc sets
    `entrypoint` explicitly, so the container still runs exactly `tini -- <bridge argv>`; the same command
    without an entrypoint would be appended to the image's (fc3-fidelity-audit.md row 22)."""
    image = "ghcr.io/sparfenyuk/mcp-proxy:latest"
    r = httpx.put(
        f"{fc_emulator.url}/_emulator/images", json={image: {"entrypoint": ["catatonit", "--", "mcp-proxy"]}}
    )
    assert r.status_code == 200, r.text
    try:
        req = DeployRequest(
            name="time-ownimage",
            image=image,
            command=["mcp-server-time"],
            auth={"type": "anonymous"},
            transport="sse",
        )
        base = deploy(sdk, req, spec.EndpointAuth())
        tools, _ = asyncio.run(use(f"{base}/sse", "sse", None))
        assert "get_current_time" in tools
        inst = instances(fc_emulator)["time-ownimage"]
        assert inst["init"] == ["tini", "--"] and inst["command"][0] == "mcp-fc-bridge"
        assert inst["command"].count("mcp-fc-bridge") == 1

        # what the previous spec sent (command only): the image's ENTRYPOINT garbles it
        old = spec.create_function_input(req.model_copy(update={"name": "time-oldspec"}))
        old.custom_container_config.entrypoint = None
        sdk.create_function(fc.CreateFunctionRequest(body=old))
        trigger = spec.create_trigger_input(req, spec.EndpointAuth())
        url = sdk.create_trigger(
            "time-oldspec", fc.CreateTriggerRequest(body=trigger)
        ).body.http_trigger.url_internet
        fc_emulator.backend.configure(start_timeout_s=3)
        answer = httpx.get(f"{url}/status", timeout=30)
        assert answer.status_code == 502 and answer.json()["Code"] == "FunctionNotStarted"
        # the image's program runs instead of the bridge (mcp-proxy is not even installed here)
        assert "command 'mcp-proxy' was not found on PATH" in answer.json()["Message"]
    finally:
        fc_emulator.backend.configure(start_timeout_s=DEFAULT_START_TIMEOUT_S)
        httpx.delete(f"{fc_emulator.url}/_emulator/images")


def test_an_instance_whose_server_hangs_fails_liveness_and_is_replaced(fc_emulator, sdk):
    """FC checks a running instance's health again and again: the bridge's /status fails while its stdio
    server does not answer (SIGSTOP here), and after failureThreshold failures the instance is replaced."""
    req = DeployRequest(
        name="time-hangs", image=IMAGE, command=["mcp-server-time"], auth={"type": "anonymous"}
    )
    body = spec.create_function_input(req)
    body.custom_container_config.health_check_config = fc.CustomHealthCheckConfig(
        # the emulator bounds a cold start by period x threshold too (the threshold stretches with a loaded
        # host: tests/e2e/conftest.py), 2 s between checks
        http_get_url=spec.HEALTH_PATH,
        period_seconds=2,
        timeout_seconds=1,
        failure_threshold=FC_HEALTH_FAILURE_THRESHOLD,
    )
    sdk.create_function(fc.CreateFunctionRequest(body=body))
    trigger = spec.create_trigger_input(req, spec.EndpointAuth())
    base = sdk.create_trigger(req.name, fc.CreateTriggerRequest(body=trigger)).body.http_trigger.url_internet
    url = spec.endpoint_urls(base, base).mcp
    tools, _ = asyncio.run(use(url, "streamable-http", None))
    first = instances(fc_emulator)["time-hangs"]
    bridge = first["pid"]
    server = next(
        p
        for p in family(bridge)
        if b"mcp-server-time" in Path(f"/proc/{p}/cmdline").read_bytes()
        and b"serverwatch" not in Path(f"/proc/{p}/cmdline").read_bytes()
    )
    os.kill(server, signal.SIGSTOP)
    try:
        poll(lambda: "time-hangs" not in instances(fc_emulator), 90)
    finally:
        if alive(server):
            os.kill(server, signal.SIGCONT)
    poll(lambda: not alive(bridge), 30)
    tools, _ = asyncio.run(use(url, "streamable-http", None))
    assert "get_current_time" in tools
    fresh = instances(fc_emulator)["time-hangs"]
    assert fresh["instanceId"] != first["instanceId"] and fresh["healthFailures"] == 0
