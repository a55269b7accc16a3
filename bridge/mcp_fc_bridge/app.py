"""The HTTP side of the bridge: an MCP server (official SDK, both eras) that forwards to the stdio session.

Routes:

* ``POST /mcp``: Streamable HTTP, stateless. MCP 2026-07-28 (``server/discover``, no handshake) and the
  handshake revisions 2024-11-05 to 2025-11-25 on one URL; no ``Mcp-Session-Id`` is issued, so any
  instance of the function answers any request. GET/DELETE answer 405, as the 2026-07-28 spec allows.
* ``GET /sse`` + ``POST /messages/?session_id=``: the deprecated HTTP+SSE transport (2024-11-05), only with
  ``--transport sse``; a session lives on one instance (FC's ``MCP_SSE`` affinity keeps it there).
* ``GET /status``: health. 200 only while the stdio server is running and answers a ``ping`` within the
  health timeout; 503 with the reason otherwise, so the platform replaces the instance.

Every request from any client goes over the one stdio session (the stdio server is single-client by
nature); the SDK matches answers to requests by id, so concurrent calls interleave.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .upstream import Upstream

log = logging.getLogger("mcp_fc_bridge")

MCP_PATH = "/mcp"
SSE_PATH = "/sse"
MESSAGES_PATH = "/messages/"
HEALTH_PATH = "/status"


def _forward_params(params: Any) -> Any:
    """The front request's params without its ``_meta``: a 2026-07-28 envelope (protocol version, client
    capabilities) describes the HTTP client, not the bridge's handshake-era stdio session."""
    if params is None:
        return None
    return params.model_copy(update={"meta": None})


#: What each server capability lets the front forward: the SDK handler's keyword, the request type sent to the
#: stdio server and the result type it answers with. Only the capabilities the stdio server advertised are
#: registered, so the capabilities the front advertises are the server's own.
FORWARDED: dict[str, list[tuple[str, Any, Any]]] = {
    "tools": [
        ("on_list_tools", types.ListToolsRequest, types.ListToolsResult),
        ("on_call_tool", types.CallToolRequest, types.CallToolResult),
    ],
    "resources": [
        ("on_list_resources", types.ListResourcesRequest, types.ListResourcesResult),
        ("on_list_resource_templates", types.ListResourceTemplatesRequest, types.ListResourceTemplatesResult),
        ("on_read_resource", types.ReadResourceRequest, types.ReadResourceResult),
    ],
    "prompts": [
        ("on_list_prompts", types.ListPromptsRequest, types.ListPromptsResult),
        ("on_get_prompt", types.GetPromptRequest, types.GetPromptResult),
    ],
    "completions": [("on_completion", types.CompleteRequest, types.CompleteResult)],
}


def _forwarder(upstream: Upstream, request_type: Any, result_type: Any) -> Any:
    """A handler that sends the front request's params (without ``_meta``) to the stdio session."""

    async def handler(ctx: Any, params: Any) -> Any:
        if upstream.session is None or not upstream.alive:
            raise RuntimeError(f"the MCP server {upstream.describe_exit()}")
        return await upstream.session.send_request(request_type(params=_forward_params(params)), result_type)

    return handler


def proxy_server(upstream: Upstream) -> Server[Any]:
    """A low-level SDK server whose handlers forward to the stdio session (see :data:`FORWARDED`)."""
    init = upstream.initialize_result
    assert init is not None
    handlers = {
        keyword: _forwarder(upstream, request_type, result_type)
        for capability, forwarded in FORWARDED.items()
        if getattr(init.capabilities, capability) is not None
        for keyword, request_type, result_type in forwarded
    }
    info = init.server_info
    return Server(
        info.name,
        version=info.version,
        title=getattr(info, "title", None),
        instructions=init.instructions,
        **handlers,
    )


async def health(upstream: Upstream, timeout_s: float) -> tuple[int, dict[str, Any]]:
    """``(status, body)`` of the health route: a ``ping`` through the stdio session, bounded."""
    if not upstream.alive or upstream.session is None:
        return 503, {"status": "unhealthy", "reason": f"the MCP server {upstream.describe_exit()}"}
    try:
        with anyio.fail_after(timeout_s):
            await upstream.session.send_ping()
    except TimeoutError:
        return 503, {
            "status": "unhealthy",
            "reason": f"the MCP server did not answer ping within {timeout_s:g} s",
        }
    except Exception as exc:  # noqa: BLE001 - any failure of the ping is an unhealthy server
        if not upstream.alive:
            return 503, {"status": "unhealthy", "reason": f"the MCP server {upstream.describe_exit()}"}
        return 503, {"status": "unhealthy", "reason": f"ping failed: {type(exc).__name__}: {exc}"[:300]}
    return 200, {"status": "ok", "server": upstream.initialize_result.server_info.name}  # type: ignore[union-attr]


class OriginGuard:
    """403 for a request whose ``Origin`` is not allowed (MCP 2025-11-25 makes this a MUST); requests
    without ``Origin`` (every non-browser client) pass. ``*`` allows every origin."""

    def __init__(self, app: ASGIApp, allowed: Sequence[str]) -> None:
        self.app = app
        self.allowed = frozenset(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "*" not in self.allowed:
            origin = dict(scope.get("headers") or []).get(b"origin")
            if origin is not None and origin.decode("latin-1") not in self.allowed:
                response = JSONResponse({"error": "origin not allowed"}, status_code=403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def build_app(
    upstream: Upstream, *, sse: bool, allow_origins: Sequence[str], health_timeout_s: float
) -> Starlette:
    server = proxy_server(upstream)
    # The Host header is FC's domain (or the emulator's); the trigger's auth is the gate, not the Host.
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    manager = StreamableHTTPSessionManager(app=server, stateless=True, security_settings=security)

    async def status(request: Request) -> Response:
        code, body = await health(upstream, health_timeout_s)
        return JSONResponse(body, status_code=code)

    routes: list[Route | Mount] = [
        Route(MCP_PATH, endpoint=StreamableHTTPASGIApp(manager)),
        Route(HEALTH_PATH, endpoint=status, methods=["GET", "HEAD"]),
    ]
    if sse:
        transport = SseServerTransport(MESSAGES_PATH, security_settings=security)

        async def sse_endpoint(request: Request) -> Response:
            async with transport.connect_sse(request.scope, request.receive, request._send) as streams:
                await server.run(streams[0], streams[1], server.create_initialization_options())
            return Response()

        routes += [
            Route(SSE_PATH, endpoint=sse_endpoint, methods=["GET"]),
            Mount(MESSAGES_PATH, app=transport.handle_post_message),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            yield

    middleware = [
        Middleware(OriginGuard, allowed=list(allow_origins)),
        Middleware(
            CORSMiddleware,
            allow_origins=list(allow_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["Mcp-Session-Id", "Mcp-Protocol-Version"],
        ),
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
