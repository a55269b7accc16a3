"""Check that a deployed endpoint really speaks MCP, in both protocol eras, with the official client.

Streamable HTTP (`/mcp`): the handshake era first (`initialize`, which also takes the cold start), then
MCP 2026-07-28 (`server/discover` at 2026-07-28, no session), each followed by `tools/list`. SSE (`/sse`)
is handshake-only by definition. The result says which revisions were served (`protocols`) and
fingerprints every tool (name, description, input schema), so a later check can tell what changed.

A URL that answers HTTP but not MCP (a GET-only trigger, a signature-only trigger, a bridge that never got
its server up) fails here, with an error that says what was tried and what came back. One era is enough
for a deploy; none is a clear `ProbeFailed`.

The health checker reuses :func:`probe` (or :func:`probe_async`) and :func:`tool_diff`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
import mcp_types as types
from mcp import Client, ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from deployer.errors import DeployError
from deployer.failure_text import fc_error_text

#: How much of an error answer's body is read (FC's message carries the instance's last output).
MAX_BODY_BYTES = 64 * 1024
#: The current revision, probed with `server/discover`.
MODERN = "2026-07-28"
#: The least time an era tried after another one answered gets (the instance is warm by then).
WARM_ERA_MIN_S = 10.0
#: Most tools/list pages followed (a server that paginates forever must not hang a deploy).
MAX_PAGES = 50
#: Largest tool definitions (JSON) kept on a deployment for tool drift reports.
MAX_TOOL_DEFS_CHARS = 256 * 1024


@dataclass(frozen=True)
class ProbeResult:
    server_name: str
    server_version: str
    #: The newest revision served (the first of `protocols`).
    protocol_version: str
    tools: list[str]
    #: Revisions the endpoint served, newest first: "2026-07-28" and/or the handshake's negotiated one.
    protocols: list[str] = field(default_factory=list)
    #: sha256 of each tool's canonical {name, description, inputSchema}, by tool name.
    tool_fingerprints: dict[str, str] = field(default_factory=dict)
    #: sha256 over all of them (name order), "" with no tools.
    fingerprint: str = ""
    #: Why an era that was tried did not answer ("2026-07-28" / "legacy" → reason); empty when all did.
    era_errors: dict[str, str] = field(default_factory=dict)
    #: Each tool's {description, inputSchema}, by name: what a tool drift report shows changed.
    tool_defs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What a deployment stores: JSON-able, no secrets. The tool definitions only up to
        MAX_TOOL_DEFS_CHARS (a drift report then names changed tools without saying what changed)."""
        found = {
            "protocols": list(self.protocols),
            "fingerprint": self.fingerprint,
            "tool_fingerprints": dict(self.tool_fingerprints),
            "server": {"name": self.server_name, "version": self.server_version},
            "era_errors": dict(self.era_errors),
        }
        if len(json.dumps(self.tool_defs, default=str)) <= MAX_TOOL_DEFS_CHARS:
            found["tool_defs"] = dict(self.tool_defs)
        return found


def tool_fingerprint(tool: types.Tool | Mapping[str, Any]) -> str:
    """sha256 of a tool's name, description and input schema, as canonical JSON (key order ignored)."""
    if isinstance(tool, Mapping):
        data = {
            "name": tool.get("name"),
            "description": tool.get("description"),
            "inputSchema": tool.get("inputSchema"),
        }
    else:
        data = {"name": tool.name, "description": tool.description, "inputSchema": tool.input_schema}
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def overall_fingerprint(per_tool: Mapping[str, str]) -> str:
    if not per_tool:
        return ""
    canonical = json.dumps(sorted(per_tool.items()), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def tool_diff(old: Mapping[str, str] | None, new: Mapping[str, str] | None) -> dict[str, list[str]]:
    """What changed between two `tool_fingerprints` maps: `{"added", "removed", "changed"}`, sorted names."""
    old, new = dict(old or {}), dict(new or {})
    return {
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": sorted(name for name in set(old) & set(new) if old[name] != new[name]),
    }


# -- failures ----------------------------------------------------------------------------------------


def _leaf_errors(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        leaves: list[BaseException] = []
        for inner in exc.exceptions:
            leaves += _leaf_errors(inner)
        return leaves
    return [exc]


class _Seen:
    """The last HTTP error answer the MCP client got: the SDK turns it into a bare JSON-RPC error."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.body = ""

    async def hook(self, response: httpx2.Response) -> None:
        if response.status_code >= 400 and self.status is None:
            self.status = response.status_code
            try:
                raw = await response.aread()
                self.body = fc_error_text(raw[:MAX_BODY_BYTES].decode(errors="replace"))
            except Exception:  # noqa: BLE001 - the status alone still says what happened
                self.body = ""


def describe_failure(exc: BaseException, seen: _Seen | None = None) -> str:
    """What came back, in one line: an HTTP status and body, a refused connection, a timeout."""
    parts = []
    if seen is not None and seen.status is not None:
        parts.append(f"HTTP {seen.status} {seen.body}".strip())
    for leaf in _leaf_errors(exc):
        if isinstance(leaf, httpx2.ConnectError | httpx.ConnectError):
            parts.append(f"connection failed ({leaf})")
        elif isinstance(leaf, TimeoutError | httpx2.TimeoutException | httpx.TimeoutException):
            parts.append("no answer before the timeout")
        elif isinstance(leaf, MCPError):
            if seen is None or seen.status is None:
                parts.append(f"MCP error {leaf.code}: {leaf.message[:200]}")
        elif isinstance(leaf, httpx2.HTTPStatusError):
            if seen is None or seen.status is None:
                parts.append(f"HTTP {leaf.response.status_code}")
        else:
            parts.append(f"{type(leaf).__name__}: {str(leaf)[:200]}")
    return "; ".join(dict.fromkeys(parts)) or type(exc).__name__


# -- the two eras ------------------------------------------------------------------------------------


@dataclass
class _Era:
    protocol: str
    server_name: str
    server_version: str
    tools: list[types.Tool]


async def _all_tools(session: ClientSession) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _http_client(headers: Mapping[str, str] | None, timeout: float, seen: _Seen) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        headers=dict(headers or {}),
        timeout=httpx2.Timeout(timeout, read=timeout),
        event_hooks={"response": [seen.hook]},
    )


async def _legacy_http(url: str, headers: Mapping[str, str] | None, timeout: float, seen: _Seen) -> _Era:
    async with _http_client(headers, timeout, seen) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode="legacy", cache=None, read_timeout_seconds=timeout) as client:
            tools = await _all_tools(client.session)
            info = client.server_info
            return _Era(
                client.protocol_version, info.name if info else "", info.version if info else "", tools
            )


async def _modern_http(url: str, headers: Mapping[str, str] | None, timeout: float, seen: _Seen) -> _Era:
    async with _http_client(headers, timeout, seen) as http:
        transport = streamable_http_client(url, http_client=http, terminate_on_close=False)
        async with Client(transport, mode=MODERN, cache=None, read_timeout_seconds=timeout) as client:
            # A pinned client adopts the version without asking; ask, as a 2026-07-28 client in auto mode does.
            raw = await client.session.send_discover(MODERN)
            discovered = types.DiscoverResult.model_validate(raw)
            if MODERN not in discovered.supported_versions:
                raise MCPError(-32022, f"server/discover lists {discovered.supported_versions}, not {MODERN}")
            client.session.adopt(discovered)
            tools = await _all_tools(client.session)
            info = client.server_info
            return _Era(MODERN, info.name if info else "", info.version if info else "", tools)


async def _legacy_sse(url: str, headers: Mapping[str, str] | None, timeout: float, seen: _Seen) -> _Era:
    def factory(**kwargs: Any) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(**kwargs, event_hooks={"response": [seen.hook]})

    transport = sse_client(
        url,
        headers=dict(headers or {}),
        timeout=timeout,
        sse_read_timeout=timeout,
        httpx_client_factory=factory,
    )
    async with Client(transport, mode="legacy", cache=None, read_timeout_seconds=timeout) as client:
        tools = await _all_tools(client.session)
        info = client.server_info
        return _Era(client.protocol_version, info.name if info else "", info.version if info else "", tools)


async def probe_async(
    url: str, *, transport: str, headers: dict[str, str] | None, timeout: float
) -> ProbeResult:
    """Both eras (one for SSE) within `timeout` (plus up to WARM_ERA_MIN_S for the second era once the first
    answered). Raises DeployError(ProbeFailed) when none served."""
    if transport == "sse":
        attempts = [("legacy", _legacy_sse)]
    else:
        # The handshake first: it takes the cold start, so the modern check meets a warm instance.
        attempts = [("legacy", _legacy_http), (MODERN, _modern_http)]
    served: list[_Era] = []
    errors: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for era, attempt in attempts:
        # One budget for the whole probe (a hung server costs `timeout`, not one per era); an era after a
        # success meets a warm instance, and still gets a fair time even after a slow cold start.
        budget = deadline - loop.time()
        if served:
            budget = max(budget, min(timeout, WARM_ERA_MIN_S))
        if budget <= 0:
            errors[era] = "not tried: the probe's time ran out"
            continue
        seen = _Seen()
        try:
            served.append(await asyncio.wait_for(attempt(url, headers, budget, seen), budget))
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - each era's failure is reported
            errors[era] = describe_failure(exc, seen)
    if not served:
        what = "initialize + tools/list" if transport == "sse" else f"initialize and {MODERN} server/discover"
        detail = "; ".join(f"{era}: {why}" for era, why in errors.items())
        if len(set(errors.values())) == 1:
            detail = next(iter(errors.values()))
        raise DeployError(
            f"MCP {transport} client at {url}: {what} failed, the endpoint serves neither MCP era: {detail}",
            code="ProbeFailed",
            step="probe",
        )
    served.sort(key=lambda e: e.protocol, reverse=True)
    best = served[0]
    prints = {tool.name: tool_fingerprint(tool) for tool in best.tools}
    return ProbeResult(
        server_name=best.server_name,
        server_version=best.server_version,
        protocol_version=best.protocol,
        tools=[tool.name for tool in best.tools],
        protocols=[era.protocol for era in served],
        tool_fingerprints=prints,
        fingerprint=overall_fingerprint(prints),
        era_errors=errors,
        tool_defs={tool.name: _definition(tool) for tool in best.tools},
    )


def _definition(tool: types.Tool) -> dict[str, Any]:
    """What the fingerprint covers besides the name, as JSON."""
    return json.loads(
        json.dumps({"description": tool.description, "inputSchema": tool.input_schema}, default=str)
    )


def probe(
    url: str, *, transport: str, headers: dict[str, str] | None = None, timeout: float = 30.0
) -> ProbeResult:
    """Probe both eras and list tools. Raises DeployError(code="ProbeFailed") saying what happened."""
    return asyncio.run(probe_async(url, transport=transport, headers=headers, timeout=timeout))
