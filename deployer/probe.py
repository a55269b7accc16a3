"""Check that a deployed endpoint really speaks MCP: the official client runs initialize + tools/list.

A URL that answers HTTP but not MCP (the old `--sse-port` flags, a GET-only trigger, a signature-only
trigger) fails here, with an error that says what was tried and what came back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamablehttp_client

from deployer.errors import DeployError
from deployer.failure_text import fc_error_text

#: How much of an error answer's body is read (FC's message carries the instance's last output).
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class ProbeResult:
    server_name: str
    server_version: str
    protocol_version: str
    tools: list[str]


def _leaf_errors(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        leaves: list[BaseException] = []
        for inner in exc.exceptions:
            leaves += _leaf_errors(inner)
        return leaves
    return [exc]


def describe_failure(exc: BaseException) -> str:
    """What came back, in one line: an HTTP status and body excerpt, a refused connection, a timeout."""
    parts = []
    for leaf in _leaf_errors(exc):
        if isinstance(leaf, httpx.HTTPStatusError):
            body = ""
            try:
                body = leaf.response.text[:200]
            except httpx.ResponseNotRead:
                pass
            parts.append(f"HTTP {leaf.response.status_code} {body}".strip())
        elif isinstance(leaf, httpx.ConnectError):
            parts.append(f"connection failed ({leaf})")
        elif isinstance(leaf, TimeoutError | httpx.TimeoutException):
            parts.append("no answer before the timeout")
        else:
            parts.append(f"{type(leaf).__name__}: {str(leaf)[:200]}")
    return "; ".join(dict.fromkeys(parts)) or type(exc).__name__


async def probe_async(
    url: str, *, transport: str, headers: dict[str, str] | None, timeout: float
) -> ProbeResult:
    async def run() -> ProbeResult:
        if transport == "sse":
            client = sse_client(url, headers=headers, timeout=timeout, sse_read_timeout=timeout)
        else:
            client = streamablehttp_client(url, headers=headers, timeout=timeout, sse_read_timeout=timeout)
        async with client as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                listed = await session.list_tools()
                return ProbeResult(
                    server_name=init.serverInfo.name,
                    server_version=init.serverInfo.version,
                    protocol_version=str(init.protocolVersion),
                    tools=[tool.name for tool in listed.tools],
                )

    return await asyncio.wait_for(run(), timeout)


def _error_body(url: str, headers: dict[str, str] | None, status: int) -> str:
    """The MCP client streams responses and never reads an error's body; fetch it once more to show it."""
    try:
        with httpx.stream("GET", url, headers=headers, timeout=5.0) as resp:
            if resp.status_code != status:
                return ""
            body = b""
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) >= MAX_BODY_BYTES:
                    break
            # the cause is at the end of FC's message (the server's last lines): decode it, keep it whole
            return fc_error_text(body[:MAX_BODY_BYTES].decode(errors="replace"))
    except httpx.HTTPError:
        return ""


def probe(
    url: str, *, transport: str, headers: dict[str, str] | None = None, timeout: float = 30.0
) -> ProbeResult:
    """Connect, initialize, list tools. Raises DeployError(code="ProbeFailed") saying what happened."""
    what = f"MCP {transport} client at {url}"
    try:
        return asyncio.run(probe_async(url, transport=transport, headers=headers, timeout=timeout))
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every failure becomes one clear message
        detail = describe_failure(exc)
        statuses = [e.response.status_code for e in _leaf_errors(exc) if isinstance(e, httpx.HTTPStatusError)]
        if statuses and statuses[0] >= 400:
            body = _error_body(url, headers, statuses[0])
            if body and body not in detail:
                detail = f"{detail}: {body}"
        raise DeployError(
            f"{what}: initialize + tools/list failed: {detail}", code="ProbeFailed", step="probe"
        ) from None
