"""The bridge as a relay (issue 24), on its own: real bridge, real stdio server (tests/e2e/relay_server.py),
the official mcp 2.x client in each era, and raw HTTP where the wire itself is the point.

* both eras: progress, logs, sampling, elicitation, roots, cancellation and a 5 MB result (relay_checks);
* what passes untouched (unknown keys, user ``_meta``) and what does not reach the server (the 2026-07-28
  envelope, an extra ``tools/list``): the server sees exactly the requests the client sent;
* a 2026-07-28 request whose server needs a capability the client lacks fails with -32021, and the
  server's work is cancelled; an ``input_required`` retry unknown here gets a clear retryable error;
* GET /mcp 405 without a session, an unknown session 404 saying why, Origin checks, 413 over the size
  limit, an oversized server message failing its one request, rate-limited complaints about non-JSON
  stdout and no per-request log lines.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import httpx2
import pytest

from tests.conftest import wait_until
from tests.e2e.relay_checks import BIG, SERVER, assert_all_carried, client, exercise
from tests.e2e.test_bridge import BRIDGE, Running
from tests.e2e.test_emulator_runtime import family
from tests.integration.conftest import free_port, service_up

pytestmark = pytest.mark.e2e

MODERN = "2026-07-28"
CAPS_KEY = "io.modelcontextprotocol/clientCapabilities"
VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
ACCEPT = "application/json, text/event-stream"


@pytest.fixture(scope="module")
def bridge() -> Iterator[Running]:
    running = Running("--max-request-bytes", "100000", "--max-message-bytes", "8000000", server=SERVER)
    yield running
    running.stop()


def modern_post(url: str, rid: Any, method: str, params: dict[str, Any], caps: dict[str, Any] | None = None):
    params = {**params, "_meta": {**params.get("_meta", {}), VERSION_KEY: MODERN, CAPS_KEY: caps or {}}}
    headers = {"accept": ACCEPT, "mcp-protocol-version": MODERN, "mcp-method": method}
    if "name" in params:
        headers["mcp-name"] = params["name"]
    body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
    return httpx.post(url + "/mcp", json=body, headers=headers, timeout=60)


def call(url: str, rid: Any, tool: str, arguments: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    answer = modern_post(url, rid, "tools/call", {"name": tool, "arguments": arguments or {}}, **kw)
    return answer.json()


def seen(url: str) -> list[str]:
    return json.loads(call(url, "seen", "seen")["result"]["content"][0]["text"])


@pytest.mark.parametrize("mode", ["legacy", MODERN])
def test_the_official_client_gets_every_feature_in_each_era(bridge, mode):
    out = asyncio.run(exercise(bridge.url + "/mcp", mode))
    assert out["protocol"] == ("2025-11-25" if mode == "legacy" else MODERN)
    assert "sample" in out["tools"] and "roots" in out["tools"]
    assert_all_carried(out)


def test_messages_pass_untouched_and_the_server_sees_exactly_what_was_sent(bridge):
    url = bridge.url
    before = len(seen(url))
    listed = modern_post(url, 1, "tools/list", {}).json()["result"]
    # unknown keys survive; 2026-07-28 additions are added only where absent
    assert listed["tools"][0]["x-vendor"] == listed["tools"][0]["name"]
    assert listed["resultType"] == "complete" and listed["ttlMs"] == 0 and listed["cacheScope"] == "private"
    meta = {"com.example/trace": "t-1"}
    echoed = modern_post(url, 2, "tools/call", {"name": "echo", "arguments": {"a": 1}, "_meta": meta}).json()
    assert echoed["id"] == 2 and echoed["result"]["x-extra"] == 1
    server_saw = json.loads(echoed["result"]["content"][0]["text"])
    # the user's _meta key reaches the server; the envelope (about the HTTP client) does not
    assert server_saw == {"arguments": {"a": 1}, "_meta": {"com.example/trace": "t-1"}}
    # no tools/list before a tools/call, nothing the client did not send
    assert seen(url)[before:] == ["tools/list", "tools/call:echo", "tools/call:seen"]


def test_a_request_needing_a_capability_the_client_lacks_fails_with_32021_and_stops(bridge):
    url = bridge.url
    before = len(seen(url))
    answer = modern_post(url, 7, "tools/call", {"name": "sample", "arguments": {}})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == -32021 and error["data"] == {"requiredCapabilities": {"sampling": {}}}, error
    assert any(s.startswith("cancelled:") for s in seen(url)[before:])


def test_an_input_required_retry_unknown_here_gets_a_clear_retryable_error(bridge):
    params = {"name": "sample", "arguments": {}, "requestState": "elsewhere", "inputResponses": {}}
    answer = modern_post(bridge.url, 8, "tools/call", params, caps={"sampling": {}})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["data"] == {"retryable": True} and "send the original request again" in error["message"]


def test_input_required_then_resume_on_the_raw_wire(bridge):
    caps = {"sampling": {}}
    first = modern_post(bridge.url, 9, "tools/call", {"name": "sample", "arguments": {}}, caps=caps).json()
    asked = first["result"]
    assert asked["resultType"] == "input_required"
    ((key, request),) = asked["inputRequests"].items()
    assert request["method"] == "sampling/createMessage"
    answer = {"role": "assistant", "content": {"type": "text", "text": "raw"}, "model": "m"}
    params = {
        "name": "sample",
        "arguments": {},
        "requestState": asked["requestState"],
        "inputResponses": {key: answer},
    }
    done = modern_post(bridge.url, 10, "tools/call", params, caps=caps).json()
    assert done["id"] == 10 and json.loads(done["result"]["content"][0]["text"]) == answer


def test_http_edges_get_clear_answers(bridge):
    url = bridge.url + "/mcp"
    assert httpx.get(url, timeout=10).status_code == 405
    assert httpx.get(url, headers={"mcp-protocol-version": MODERN}, timeout=10).status_code == 405
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    gone = httpx.post(url, json=body, headers={"accept": ACCEPT, "mcp-session-id": "feed"}, timeout=10)
    assert gone.status_code == 404 and "initialize" in gone.json()["error"]["message"]
    big = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"arguments": {"x": "y" * 200_000}}}
    too_large = httpx.post(url, json=big, headers={"accept": ACCEPT}, timeout=10)
    assert too_large.status_code == 413 and "--max-request-bytes" in too_large.json()["error"]["message"]
    evil = httpx.post(url, json=body, headers={"accept": ACCEPT, "origin": "http://evil.example"}, timeout=10)
    assert evil.status_code == 403
    two = [("accept", ACCEPT), ("origin", "http://localhost:3000"), ("origin", "http://evil.example")]
    assert httpx.post(url, json=body, headers=two, timeout=10).status_code == 403
    local = httpx.post(
        url, json=body, headers={"accept": ACCEPT, "origin": "http://localhost:3000"}, timeout=10
    )
    assert (
        local.status_code == 200 and local.headers["access-control-allow-origin"] == "http://localhost:3000"
    )


def test_a_session_gets_list_changes_on_its_standing_stream(bridge):
    url = bridge.url + "/mcp"
    init = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    }
    opened = httpx.post(
        url,
        json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init},
        headers={"accept": ACCEPT},
    )
    session = {"accept": ACCEPT, "mcp-session-id": opened.headers["mcp-session-id"]}
    with httpx.stream("GET", url, headers={**session, "accept": "text/event-stream"}, timeout=30) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(lines).startswith(":")  # the stream is open: the change cannot race it
        body = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "changed"}}
        assert "result" in httpx.post(url, json=body, headers=session, timeout=30).json()
        data = next(line for line in lines if line.startswith("data:"))
    assert json.loads(data[5:])["method"] == "notifications/tools/list_changed"
    assert httpx.delete(url, headers=session, timeout=10).status_code == 200
    assert httpx.get(url, headers=session, timeout=10).status_code == 404


def test_a_2026_client_listens_for_list_changes(bridge):
    async def listen_and_change() -> list[str]:
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(30)) as http:
            async with client(bridge.url + "/mcp", http, MODERN, []) as c:
                async with c.listen(tools_list_changed=True, prompts_list_changed=True) as sub:
                    # the ack is in: the server has tools.listChanged and no prompts
                    assert sub.honored is not None and sub.honored.tools_list_changed
                    assert not sub.honored.prompts_list_changed
                    await c.call_tool("changed", {})
                    with anyio.fail_after(30):
                        async for event in sub:
                            return [type(event).__name__]
        return []

    assert asyncio.run(listen_and_change()) == ["ToolsListChanged"]


# Waits for a gate file before it becomes the test server (reading nothing meanwhile: the bridge's initialize
# stays in the pipe until then).
GATED = (
    "import os, sys, time\n"
    "while not os.path.exists(sys.argv[1]):\n"
    "    time.sleep(0.05)\n"
    "os.execv(sys.executable, [sys.executable, sys.argv[2]])\n"
)


def test_the_port_opens_only_once_the_server_answered_initialize(tmp_path):
    gate = tmp_path / "go"
    port = free_port()
    argv = [
        BRIDGE,
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--",
        SERVER[0],
        "-c",
        GATED,
        str(gate),
        SERVER[1],
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: len(family(proc.pid)) == 2, 60, what="the bridge started its server")
        assert not service_up(port)  # the server is running but has not answered initialize
        gate.touch()
        wait_until(lambda: service_up(port), 60, what="the bridge listens once initialize is answered")
        assert httpx.get(f"http://127.0.0.1:{port}/status", timeout=10).json()["server"] == "relay-test"
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_partial_request_times_out():
    running = Running("--body-timeout", "1", server=SERVER)
    try:
        with socket.create_connection(("127.0.0.1", running.port), timeout=30) as sock:
            head = "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            sock.sendall(head.encode() + b'{"jsonrpc"')
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
    finally:
        running.stop()


def test_a_5mb_handshake_result_is_plain_json(bridge):
    url = bridge.url + "/mcp"
    body = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "big", "arguments": {"size": BIG}},
    }
    answer = httpx.post(url, json=body, headers={"accept": ACCEPT}, timeout=60)
    assert answer.headers["content-type"] == "application/json"
    assert len(answer.json()["result"]["content"][0]["text"]) == BIG


def test_limits_noise_and_quiet_logs():
    running = Running("--max-message-bytes", "100000", server=SERVER)
    try:
        over = call(running.url, 1, "big", {"size": 200_000})
        assert "over the bridge's limit of 100000 bytes" in over["error"]["message"], over
        assert call(running.url, 2, "noise", {"lines": 5000})["result"]["content"][0]["text"] == "noisy"
        for rid in range(20):
            assert "result" in call(running.url, 10 + rid, "echo")
    finally:
        running.stop()
    stderr = running.proc.stderr.read().decode()  # type: ignore[union-attr]
    complaints = [line for line in stderr.splitlines() if "not JSON-RPC" in line]
    assert len(complaints) <= 4, complaints
    lines = [line for line in stderr.splitlines() if line.strip()]
    # start-up, the oversize warning, the complaints and shutdown: nothing per request
    assert len(lines) < 20 and "Terminating session" not in stderr, stderr
