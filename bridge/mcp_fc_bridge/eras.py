"""What one POSTed JSON-RPC message becomes, per protocol era.

Handshake era (2024-11-05 .. 2025-11-25): ``initialize`` is answered from the stdio server's own
initialize result and opens a session (``Mcp-Session-Id``) holding the client's capabilities, log level
and subscriptions; requests are relayed; the client's answers to server requests are routed back by id;
``notifications/cancelled`` reaches the server under the server's id for that request.

2026-07-28: every request carries its envelope (version, client capabilities) in ``_meta`` and the
routing headers; ``server/discover`` is answered here; a request whose server asks the client something is
answered ``input_required`` and resumed on the retry that carries its ``requestState``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from . import wire
from .relay import Exchange, Relay, Session, Sink

SESSION_HEADER = "mcp-session-id"
ROUTING_HEADERS = (b"mcp-protocol-version", b"mcp-method", b"mcp-name")


@dataclass
class Outcome:
    """An immediate answer (``message`` with ``status``; none for 202) or an exchange answering on ``sink``."""

    status: int = 202
    message: dict[str, Any] | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    exchange: Exchange | None = None
    sink: Sink | None = None
    listener: Any = None  # a 2026-07-28 subscriptions/listen stream (listen.Listener)


def invalid(request_id: Any, text: str, code: int = wire.INVALID_REQUEST, status: int = 400) -> Outcome:
    return Outcome(status, wire.error(request_id, code, text))


def unknown_session(request_id: Any, session_id: str) -> Outcome:
    text = (
        f"Session not found: this mcp-fc-bridge instance has no session {session_id[:64]!r} (the instance that "
        "started it has stopped, or this request reached another instance); start a new session with initialize"
    )
    return Outcome(404, wire.error(request_id, -32001, text))


def open_session(relay: Relay, params: dict[str, Any], session: Session | None) -> Session:
    requested = params.get("protocolVersion")
    version = requested if requested in wire.HANDSHAKE_VERSIONS else wire.LATEST_HANDSHAKE
    caps = params.get("capabilities") if isinstance(params.get("capabilities"), dict) else {}
    if session is None:
        session = Session(secrets.token_hex(16), version, caps, params.get("clientInfo"))
        relay.sessions[session.id] = session
    else:  # the /sse transport made it when the stream opened
        session.protocol_version, session.capabilities = version, caps
        session.client_info = params.get("clientInfo")
    return session


async def handshake(
    relay: Relay, body: Any, session: Session | None, sink: Sink, *, sse: bool = False
) -> Outcome:
    """A handshake-era message (``session`` None: a client that sent no session id)."""
    what = wire.kind(body)
    if what == "invalid":
        return invalid(None, "Body must be one JSON-RPC request, notification or response object")
    if session is not None:
        session.last_seen = time.monotonic()
    if what == "response":
        await relay.client_response(body)
        return Outcome()
    if what == "notification":
        await _handshake_notification(relay, body, session)
        return Outcome()
    method, params = body["method"], body.get("params")
    params = params if isinstance(params, dict) else {}
    if method == "initialize":
        session = open_session(relay, params, session)
        value = {**relay.init, "protocolVersion": session.protocol_version}
        headers = [] if sse else [(SESSION_HEADER.encode(), session.id.encode())]
        return Outcome(200, wire.result(body["id"], value), headers)
    if method == "logging/setLevel" and "logging" in relay.capabilities:
        rank = wire.level_rank(params.get("level"))
        if session is not None:
            session.log_level = rank
        await relay.want_log_level(rank)
        return Outcome(200, wire.result(body["id"], {}))
    if method in ("resources/subscribe", "resources/unsubscribe") and session is not None:
        uri = params.get("uri")
        changed = (
            relay.subscribe(session, uri)
            if method.endswith("/subscribe")
            else relay.unsubscribe(session, uri)
        )
        if not changed:  # another session still holds (or already held) the server's subscription
            return Outcome(200, wire.result(body["id"], {}))
    caps = session.capabilities if session is not None else {}
    ex = await relay.forward(body, modern=False, session=session, capabilities=caps, log_level=0, sink=sink)
    return Outcome(200, exchange=ex, sink=sink)


async def _handshake_notification(relay: Relay, body: dict[str, Any], session: Session | None) -> None:
    method = body["method"]
    params = body.get("params") if isinstance(body.get("params"), dict) else {}
    if method == "notifications/initialized":
        return  # the stdio server was initialised once, by the bridge
    if method == "notifications/cancelled":
        await relay.cancel_client(session, params.get("requestId"), str(params.get("reason") or "cancelled"))
        return
    await relay.notify(body)  # roots/list_changed and the like: the server's business


def duplicated_routing_header(raw: list[tuple[bytes, bytes]]) -> str | None:
    seen: set[bytes] = set()
    for name, _ in raw:
        if name in ROUTING_HEADERS:
            if name in seen:
                return name.decode()
            seen.add(name)
    return None


def discover(relay: Relay, request_id: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "supportedVersions": list(wire.MODERN_VERSIONS),
        "capabilities": relay.capabilities,
        "resultType": "complete",
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": {wire.SERVER_INFO_KEY: relay.server_info},
    }
    if relay.init.get("instructions"):
        value["instructions"] = relay.init["instructions"]
    return wire.result(request_id, value)


async def modern(
    relay: Relay, body: Any, raw: list[tuple[bytes, bytes]], headers: dict[str, str], sink: Sink
) -> Outcome:
    """A 2026-07-28 POST (its ``MCP-Protocol-Version`` header is no handshake version)."""
    what = wire.kind(body)
    if what == "notification":
        return Outcome()  # none is defined on this wire (cancelling is closing the request); acknowledged
    if what != "request":
        return invalid(None, "Body must be a single JSON-RPC request or notification object")
    request_id = body["id"]
    duplicated = duplicated_routing_header(raw)
    if duplicated is not None:
        return invalid(request_id, f"{duplicated} header appears more than once", wire.HEADER_MISMATCH)
    problem = wire.envelope_problem(body, headers)
    if problem is not None:
        code, text, data = problem
        return Outcome(wire.ERROR_HTTP_STATUS.get(code, 400), wire.error(request_id, code, text, data))
    method = body["method"]
    if method == "server/discover":
        return Outcome(200, discover(relay, request_id))
    if method == "subscriptions/listen":
        from .listen import open_listener

        return Outcome(200, listener=await open_listener(relay, body))
    if method in wire.MODERN_REMOVED or method == "initialize":
        return Outcome(
            404, wire.error(request_id, wire.METHOD_NOT_FOUND, f"Method not found: {method} at {wire.MODERN}")
        )
    if "requestState" in body["params"]:
        ex = await relay.resume(body, sink)
        if ex is None:
            text = (
                "requestState is not known to this mcp-fc-bridge instance (the instance that began the request "
                "has stopped, the request expired, or this retry reached another instance); send the original "
                "request again without requestState and inputResponses"
            )
            return Outcome(400, wire.error(request_id, wire.INVALID_PARAMS, text, {"retryable": True}))
        return Outcome(200, exchange=ex, sink=sink)
    level = wire.modern_log_level(body)
    if level is not None:
        await relay.want_log_level(level)
    caps = wire.client_capabilities(body)
    ex = await relay.forward(body, modern=True, session=None, capabilities=caps, log_level=level, sink=sink)
    return Outcome(200, exchange=ex, sink=sink)
