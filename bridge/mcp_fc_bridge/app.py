"""The HTTP side of the bridge: a plain ASGI app (no framework, no SDK server) in front of :mod:`.relay`.

Routes:

* ``POST /mcp``: Streamable HTTP. MCP 2026-07-28 (stateless: any instance answers any request, except the
  retry of an ``input_required`` request) and the handshake revisions 2024-11-05 .. 2025-11-25 (with
  sessions, ``Mcp-Session-Id``) on one URL.
* ``GET /mcp``: a handshake session's standing stream (list changes, resource updates, log messages no
  request claims), only when the server has such things to send; 405 otherwise. ``DELETE /mcp`` ends a
  session.
* ``GET /sse`` + ``POST /messages/?session_id=``: the deprecated HTTP+SSE transport, only with
  ``--transport sse``; a session lives on one instance (FC's ``MCP_SSE`` affinity keeps it there).
* ``GET /status``: health. 200 only while the stdio server runs and answers a ``ping`` within the health
  timeout; 503 with the reason otherwise, so the platform replaces the instance.

Browser ``Origin`` values are checked on every route but ``/status`` (MCP 2025-11-25: 403 when invalid):
an explicit allow-list, ``*``, or by default only loopback origins. Two ``Origin`` headers are refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio

from . import eras, responses, wire
from .relay import Relay, Session, Sink, UpstreamError
from .responses import Receive, Send, send_json, send_plain
from .upstream import ServerExited

log = logging.getLogger("mcp_fc_bridge")

MCP_PATH = "/mcp"
SSE_PATH = "/sse"
MESSAGES_PATH = "/messages/"
HEALTH_PATH = "/status"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
EXPOSED = b"mcp-session-id, mcp-protocol-version"


class TooLarge(Exception):
    pass


class OriginPolicy:
    """Which browser origins may call (non-browser clients send no ``Origin`` and always pass)."""

    def __init__(self, allowed: Sequence[str] | None) -> None:
        self.any = allowed is not None and "*" in allowed
        self.allowed = frozenset(allowed or ())
        self.default = allowed is None  # no list given: loopback origins only (a local dev setup)

    def permits(self, origin: str) -> bool:
        if self.any or origin in self.allowed:
            return True
        return self.default and (urlsplit(origin).hostname or "") in LOOPBACK_HOSTS


class BridgeApp:
    def __init__(
        self,
        relay: Relay,
        *,
        sse: bool,
        origins: OriginPolicy,
        max_request_bytes: int,
        body_timeout_s: float,
        health_timeout_s: float,
    ) -> None:
        self.relay = relay
        self.sse = sse
        self.origins = origins
        self.max_request_bytes = max_request_bytes
        self.body_timeout_s = body_timeout_s
        self.health_timeout_s = health_timeout_s

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == HEALTH_PATH and method in ("GET", "HEAD"):
            await self.status(send)
            return
        origins = [v.decode("latin-1") for k, v in scope["headers"] if k == b"origin"]
        if len(origins) > 1 or (origins and not self.origins.permits(origins[0])):
            await send_json(
                send, 403, wire.error(None, wire.INVALID_REQUEST, "Forbidden: Origin not allowed")
            )
            return
        cors = _cors(origins[0]) if origins else []
        if method == "OPTIONS" and origins:
            await send_plain(send, 204, cors + _preflight(scope))
            return
        if path == MCP_PATH:
            await self.mcp(scope, receive, send, method, cors)
        elif self.sse and path == SSE_PATH and method == "GET":
            await self.sse_stream(receive, send, cors)
        elif self.sse and path == MESSAGES_PATH and method == "POST":
            await self.sse_message(scope, receive, send, cors)
        else:
            await send_plain(send, 404, cors)

    async def status(self, send: Send) -> None:
        code, body = await self.health()
        await send_json(send, code, body)

    async def health(self) -> tuple[int, dict[str, Any]]:
        """``(status, body)`` of the health route: a ``ping`` through the stdio server, bounded."""
        upstream = self.relay.upstream
        if not upstream.alive:
            return 503, {"status": "unhealthy", "reason": f"the MCP server {upstream.describe_exit()}"}
        try:
            await self.relay.call("ping", None, self.health_timeout_s)
        except TimeoutError:
            reason = f"the MCP server did not answer ping within {self.health_timeout_s:g} s"
            return 503, {"status": "unhealthy", "reason": reason}
        except (UpstreamError, ServerExited) as exc:
            if not upstream.alive:
                return 503, {"status": "unhealthy", "reason": f"the MCP server {upstream.describe_exit()}"}
            return 503, {"status": "unhealthy", "reason": f"ping failed: {exc}"[:300]}
        return 200, {"status": "ok", "server": self.relay.server_info.get("name")}

    async def read_body(self, scope: dict[str, Any], receive: Receive) -> bytes:
        """The request body, bounded in size (:class:`TooLarge`) and in time (TimeoutError)."""
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_request_bytes:
                raise TooLarge
        chunks: list[bytes] = []
        size = 0
        async with asyncio.timeout(self.body_timeout_s):  # asyncio's: cheaper than anyio's on every call
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise anyio.EndOfStream
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_request_bytes:
                    raise TooLarge
                chunks.append(chunk)
                if not message.get("more_body"):
                    return b"".join(chunks)

    async def parse(
        self, scope: dict[str, Any], receive: Receive, send: Send, cors: list[tuple[bytes, bytes]]
    ) -> tuple[bool, Any]:
        """``(True, decoded body)``, or ``(False, None)`` once an error answer was sent."""
        try:
            raw = await self.read_body(scope, receive)
        except TooLarge:
            text = (
                f"Request body too large: this endpoint accepts at most {self.max_request_bytes} bytes "
                "(mcp-fc-bridge --max-request-bytes)"
            )
            await send_json(send, 413, wire.error(None, wire.INVALID_REQUEST, text), cors)
            return False, None
        except TimeoutError:
            text = f"Request body not received within {self.body_timeout_s:g} s"
            await send_json(send, 408, wire.error(None, wire.INVALID_REQUEST, text), cors)
            return False, None
        except anyio.EndOfStream:
            return False, None
        try:
            return True, json.loads(raw)
        except (ValueError, RecursionError):
            await send_json(send, 400, wire.error(None, wire.PARSE_ERROR, "Parse error"), cors)
            return False, None

    async def mcp(
        self,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
        method: str,
        cors: list[tuple[bytes, bytes]],
    ) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        version = headers.get("mcp-protocol-version")
        modern = version is not None and version not in wire.HANDSHAKE_VERSIONS
        if method == "GET" and not modern:
            await self.standing_stream(receive, send, headers, cors)
            return
        if method == "DELETE" and not modern and eras.SESSION_HEADER in headers:
            session = self.relay.sessions.get(headers[eras.SESSION_HEADER])
            if session is not None:
                for uri in self.relay.end_session(session):
                    await self.relay.notify_unsubscribe(uri)
            await send_plain(send, 200 if session is not None else 404, cors)
            return
        if method != "POST":
            await send_plain(send, 405, [(b"allow", b"POST" if modern else b"GET, POST, DELETE"), *cors])
            return
        if not _accepts(headers.get("accept")):
            await send_plain(send, 406, cors)
            return
        ok, body = await self.parse(scope, receive, send, cors)
        if not ok:
            return
        sink = Sink()
        if modern:
            outcome = await eras.modern(self.relay, body, scope["headers"], headers, sink)
        else:
            outcome = await self.handshake_post(body, headers, sink)
        await self.deliver(outcome, send, receive, modern=modern, cors=cors)

    async def handshake_post(self, body: Any, headers: dict[str, str], sink: Sink) -> eras.Outcome:
        session_id = headers.get(eras.SESSION_HEADER)
        session = None
        if session_id is not None:
            session = self.relay.sessions.get(session_id)
            if session is None:
                request_id = body.get("id") if isinstance(body, dict) else None
                return eras.unknown_session(request_id, session_id)
        return await eras.handshake(self.relay, body, session, sink)

    async def deliver(
        self,
        outcome: eras.Outcome,
        send: Send,
        receive: Receive,
        *,
        modern: bool,
        cors: list[tuple[bytes, bytes]],
    ) -> None:
        headers = outcome.headers + cors
        if outcome.listener is not None:
            from .listen import close_listener

            try:
                await responses.stream(send, receive, outcome.listener.stream, headers)
            finally:
                await close_listener(self.relay, outcome.listener)
            return
        if outcome.exchange is None or outcome.sink is None:
            await send_json(send, outcome.status, outcome.message, headers)
            return
        ex = outcome.exchange
        completed = await responses.answer(send, receive, outcome.sink, modern=modern, headers=headers)
        if not completed and modern and ex.state is None:
            # 2026-07-28: closing the request is how a client cancels it (the handshake era sends
            # notifications/cancelled instead: a dropped connection there is not a cancellation).
            await self.relay.cancel(ex, "the client closed the request")

    async def standing_stream(
        self, receive: Receive, send: Send, headers: dict[str, str], cors: list[tuple[bytes, bytes]]
    ) -> None:
        session_id = headers.get(eras.SESSION_HEADER)
        session = self.relay.sessions.get(session_id) if session_id else None
        if session_id and session is None:
            await send_json(send, 404, eras.unknown_session(None, session_id).message, cors)
            return
        if session is None or not _has_standing_news(self.relay.capabilities):
            await send_plain(send, 405, [(b"allow", b"POST, DELETE"), *cors])
            return
        if session.stream is not None:
            await send_plain(send, 409, cors)
            return
        sink = session.stream = Sink(persistent=True)
        try:
            await responses.stream(send, receive, sink, cors)
        finally:
            if session.stream is sink:
                session.stream = None

    async def sse_stream(self, receive: Receive, send: Send, cors: list[tuple[bytes, bytes]]) -> None:
        """GET /sse (HTTP+SSE, 2024-11-05): one session per connection, its POSTs answered here."""
        session = Session(eras.secrets.token_hex(16), "2024-11-05", {}, None)
        session.stream = Sink(persistent=True)
        self.relay.sessions[session.id] = session
        endpoint = f"event: endpoint\ndata: {MESSAGES_PATH}?session_id={session.id}\n\n".encode()
        try:
            await responses.stream(send, receive, session.stream, cors, first=endpoint)
        finally:
            for uri in self.relay.end_session(session):
                await self.relay.notify_unsubscribe(uri)

    async def sse_message(
        self, scope: dict[str, Any], receive: Receive, send: Send, cors: list[tuple[bytes, bytes]]
    ) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        session = self.relay.sessions.get((query.get("session_id") or [""])[0])
        if session is None or session.stream is None:
            await send_json(send, 404, wire.error(None, -32001, "Session not found (GET /sse first)"), cors)
            return
        ok, body = await self.parse(scope, receive, send, cors)
        if not ok:
            return
        outcome = await eras.handshake(self.relay, body, session, session.stream, sse=True)
        if outcome.exchange is None and outcome.message is not None and outcome.status == 200:
            session.stream.put(outcome.message)
        elif outcome.exchange is None and outcome.message is not None:
            await send_json(send, outcome.status, outcome.message, cors)
            return
        await send_plain(send, 202, cors)


def _accepts(accept: str | None) -> bool:
    """A POST must accept JSON and SSE (spec); a client that sends no Accept at all is served anyway."""
    if accept is None:
        return True
    wide = "*/*" in accept
    return (wide or "application/json" in accept) and (wide or "text/event-stream" in accept)


def _has_standing_news(caps: dict[str, Any]) -> bool:
    """Whether the server can send anything a standing stream would carry."""
    if "logging" in caps:
        return True
    for name in ("tools", "prompts", "resources"):
        cap = caps.get(name)
        if isinstance(cap, dict) and (cap.get("listChanged") or cap.get("subscribe")):
            return True
    return False


def _cors(origin: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", EXPOSED),
        (b"vary", b"origin"),
    ]


def _preflight(scope: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    asked = next((v for k, v in scope["headers"] if k == b"access-control-request-headers"), b"")
    return [
        (b"access-control-allow-methods", b"GET, POST, DELETE, OPTIONS"),
        (b"access-control-allow-headers", asked or b"content-type"),
        (b"access-control-max-age", b"600"),
    ]


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
