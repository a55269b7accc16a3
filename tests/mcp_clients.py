"""The official MCP client (mcp 2.x) as the tests use it: one call lists tools and calls one, in a chosen era.

`mode` is the client's own: "auto" (server/discover, falling back to initialize), "legacy" (the
initialize handshake) or "2026-07-28" (pinned: no handshake, no fallback). SSE is handshake-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

MODERN = "2026-07-28"


@dataclass(frozen=True)
class Used:
    tools: list[str]
    text: str
    protocol: str


async def use(
    url: str,
    transport: str = "streamable-http",
    headers: dict[str, str] | None = None,
    *,
    mode: str = "auto",
    tool: str | None = "get_current_time",
    arguments: dict[str, Any] | None = None,
    timeout: float = 30.0,
) -> Used:
    """Connect in `mode`, list tools and (unless `tool` is None) call `tool`; the call must not fail."""
    async with httpx2.AsyncClient(headers=dict(headers or {}), timeout=httpx2.Timeout(timeout)) as http:
        if transport == "sse":
            connection: Any = sse_client(url, headers=headers, timeout=timeout, sse_read_timeout=timeout)
            mode = "legacy"
        else:
            connection = streamable_http_client(url, http_client=http)
        async with Client(connection, mode=mode, cache=None, read_timeout_seconds=timeout) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            text = ""
            if tool is not None:
                args = arguments if arguments is not None else {"timezone": "UTC"}
                called = await client.call_tool(tool, args)
                assert not called.is_error, called
                text = called.content[0].text
            return Used(tools, text, client.protocol_version)


async def use_endpoint(
    url: str, transport: str = "streamable-http", headers: dict[str, str] | None = None, **kwargs: Any
) -> tuple[list[str], str]:
    used = await use(url, transport, headers, **kwargs)
    return used.tools, used.text
