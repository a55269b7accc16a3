"""The relay: JSON-RPC between HTTP clients and the one shared stdio server, by id.

Every client request forwarded upstream gets a fresh integer id (clients' ids collide with each other);
the answer goes back with the client's own id, its body untouched except where 2026-07-28 needs it
(:func:`.wire.modern_result`). Progress tokens are rewritten the same way, so a progress notification
reaches exactly the request that asked for it.

A stdio server's log messages and server -> client requests (sampling, elicitation, roots) carry no
request id. The relay gives them to the one client request in flight; when several are in flight it cannot
know which one a message belongs to: a log message then goes to the handshake sessions' standalone streams,
a server request is answered with an error saying so (docs/decisions.md, issue 24).

Handshake era: a server request goes on the request's response stream under a bridge id, and the client's
answer (a POST) is routed back by that id. 2026-07-28: it becomes the request's ``input_required`` result;
the server's request stays parked here until the client retries with ``requestState``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio

from . import wire
from .upstream import EDGE_BYTES, ServerExited, Upstream

log = logging.getLogger("mcp_fc_bridge")


class Sink:
    """Where an exchange's messages go: one HTTP response, or a session's standing stream (``persistent``:
    its "final" messages are just more events). Never blocks the stdout reader.

    Plain asyncio (a deque and one future) rather than an anyio stream: it is on every call's path, and
    the anyio machinery cost more than the rest of the relay there (docs/decisions.md, issue 24)."""

    __slots__ = ("items", "waiter", "persistent", "closed")

    def __init__(self, *, persistent: bool = False) -> None:
        self.items: deque[tuple[bool, dict[str, Any]] | None] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.persistent = persistent
        self.closed = False

    def put(self, message: dict[str, Any], *, final: bool = False) -> None:
        if not self.closed:
            self._push((final and not self.persistent, message))

    def close(self) -> None:
        """End the sink: a reader gets None (the client went away, or the session ended)."""
        if not self.closed:
            self.closed = True
            self._push(None)

    def _push(self, item: tuple[bool, dict[str, Any]] | None) -> None:
        self.items.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def get(self, timeout_s: float) -> tuple[bool, dict[str, Any]] | None | bool:
        """The next item; ``None`` once closed; ``False`` when nothing came within ``timeout_s``."""
        if not self.items:
            loop = asyncio.get_running_loop()
            self.waiter = waiter = loop.create_future()
            timer = loop.call_later(timeout_s, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self.waiter = None
            if not self.items:
                return False
        return self.items.popleft()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass(eq=False)
class Session:
    """A handshake-era client (``Mcp-Session-Id``, or one ``/sse`` connection)."""

    id: str
    protocol_version: str
    capabilities: dict[str, Any]
    client_info: Any
    log_level: int = 0  # until logging/setLevel: every message the server sends, as a direct client gets
    subscriptions: set[str] = field(default_factory=set)
    stream: Sink | None = None
    last_seen: float = field(default_factory=time.monotonic)

    def post(self, message: dict[str, Any]) -> None:
        if self.stream is not None:
            self.stream.put(message)


@dataclass(eq=False)
class Exchange:
    """One client request in flight at the stdio server."""

    upstream_id: int
    client_id: Any
    method: str
    modern: bool
    session: Session | None
    capabilities: dict[str, Any]
    log_level: int | None  # None: this request gets no log messages
    sink: Sink | None
    client_token: Any = None
    state: str | None = None  # 2026-07-28: parked under this requestState, waiting for the retry
    parked_at: float = 0.0
    pending_inputs: dict[str, Any] = field(default_factory=dict)  # input key -> the server's request id
    queued_inputs: dict[str, tuple[Any, dict[str, Any]]] = field(default_factory=dict)
    early_final: dict[str, Any] | None = None


class _Waiter:
    def __init__(self) -> None:
        self.done = anyio.Event()
        self.message: dict[str, Any] | None = None


class UpstreamError(RuntimeError):
    pass


_ID = re.compile(rb'"id"\s*:\s*(-?\d+)')


class Relay:
    def __init__(self, upstream: Upstream, *, input_timeout_s: float, session_idle_s: float) -> None:
        self.upstream = upstream
        self.input_timeout_s = input_timeout_s
        self.session_idle_s = session_idle_s
        self._ids = itertools.count(1)
        self._bridge_ids = itertools.count(1)
        self.inflight: dict[int, Exchange] = {}
        self.internal: dict[int, _Waiter] = {}
        self.server_requests: dict[str, tuple[Any, Exchange]] = {}
        self.parked: dict[str, Exchange] = {}
        self.sessions: dict[str, Session] = {}
        # Session or listen.Listener: whatever holds a resource subscription (has .subscriptions, .post)
        self.subscribers: dict[str, set[Any]] = {}
        self.listeners: set[Any] = set()
        self.init: dict[str, Any] = {}
        self.upstream_level: int | None = None
        self.dropped_logs = 0

    # --- the stdio server's side -------------------------------------------------------------------

    @property
    def capabilities(self) -> dict[str, Any]:
        caps = self.init.get("capabilities")
        return caps if isinstance(caps, dict) else {}

    @property
    def server_info(self) -> dict[str, Any]:
        info = self.init.get("serverInfo")
        return info if isinstance(info, dict) else {"name": "unknown", "version": "0"}

    async def initialize(self, timeout_s: float) -> None:
        """The one handshake with the stdio server, declaring every client capability the bridge relays."""
        from . import __version__

        params = {
            "protocolVersion": wire.LATEST_HANDSHAKE,
            "capabilities": wire.RELAYED_CLIENT_CAPABILITIES,
            "clientInfo": {"name": "mcp-fc-bridge", "version": __version__},
        }
        self.init = await self.call("initialize", params, timeout_s)
        await self.upstream.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def call(self, method: str, params: dict[str, Any] | None, timeout_s: float) -> dict[str, Any]:
        """A request of the bridge's own (initialize, the health ping, logging/setLevel)."""
        uid = next(self._ids)
        waiter = self.internal[uid] = _Waiter()
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": uid, "method": method}
        if params is not None:
            message["params"] = params
        try:
            await self.upstream.send(message)
            with anyio.fail_after(timeout_s):
                await waiter.done.wait()
        finally:
            self.internal.pop(uid, None)
        answer = waiter.message or {}
        if "error" in answer:
            raise UpstreamError(f"{method}: {answer['error']}")
        if "result" not in answer:
            raise ServerExited(f"the MCP server {self.upstream.describe_exit()}")
        return answer["result"]

    def on_exit(self) -> None:
        """The server is gone: every waiting request gets an error now, not at its timeout."""
        for waiter in self.internal.values():
            waiter.done.set()
        reason = f"the MCP server {self.upstream.describe_exit()}"
        for ex in list(self.inflight.values()):
            self._finish(ex, wire.error(ex.client_id, wire.INTERNAL_ERROR, reason))
        self.inflight.clear()

    async def on_message(self, message: dict[str, Any]) -> None:
        """One JSON-RPC object from the server's stdout."""
        if "method" not in message:
            self._on_response(message)
        elif "id" in message:
            await self._on_server_request(message)
        else:
            await self._on_notification(message)

    async def on_oversize(self, edges: bytes, size: int) -> None:
        """A line over the limit: fail the request it answers (its id is at one end), never hold it."""
        limit = self.upstream.max_line_bytes
        log.warning("the MCP server wrote a %d-byte message, over the bridge's %d-byte limit", size, limit)
        for match in [*_ID.finditer(edges[:EDGE_BYTES])][:1] + [*_ID.finditer(edges)][-1:]:
            ex = self.inflight.pop(int(match.group(1)), None)
            if ex is not None:
                text = (
                    f"the MCP server's answer is {size} bytes, over the bridge's limit of {limit} bytes "
                    "(mcp-fc-bridge --max-message-bytes)"
                )
                self._finish(ex, wire.error(ex.client_id, wire.INTERNAL_ERROR, text))
                return

    def _on_response(self, message: dict[str, Any]) -> None:
        uid = message.get("id")
        waiter = self.internal.get(uid)  # type: ignore[arg-type]
        if waiter is not None:
            waiter.message = message
            waiter.done.set()
            return
        ex = self.inflight.pop(uid, None)  # type: ignore[arg-type]
        if ex is None:
            return  # a request the bridge cancelled
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": ex.client_id}
        if "result" in message:
            value = message["result"]
            answer["result"] = wire.modern_result(ex.method, value, self.server_info) if ex.modern else value
        else:
            answer["error"] = message.get("error")
        if ex.sink is None:
            ex.early_final = answer  # parked: the retry gets it
        else:
            self._finish(ex, answer)

    def _finish(self, ex: Exchange, answer: dict[str, Any]) -> None:
        if ex.sink is not None:
            ex.sink.put(answer, final=True)
        if ex.state is not None:
            self.parked.pop(ex.state, None)

    async def _on_notification(self, message: dict[str, Any]) -> None:
        method = message["method"]
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        if method == "notifications/progress":
            ex = self.inflight.get(params.get("progressToken"))  # type: ignore[arg-type]
            if ex is not None and ex.client_token is not None and ex.sink is not None:
                ex.sink.put({**message, "params": {**params, "progressToken": ex.client_token}})
        elif method == "notifications/message":
            self._on_log(message, wire.level_rank(params.get("level")))
        elif method == "notifications/resources/updated":
            for holder in list(self.subscribers.get(params.get("uri"), ())):  # type: ignore[arg-type]
                holder.post(message)
        elif method == "notifications/cancelled":
            self._on_server_cancel(message, params.get("requestId"))
        else:  # list changes and anything else session-wide; 2026-07-28 listeners filter their own
            for holder in [*self.sessions.values(), *self.listeners]:
                holder.post(message)

    def _on_log(self, message: dict[str, Any], rank: int) -> None:
        ex = self._only_exchange()
        if ex is not None:
            wanted = ex.log_level if ex.modern else (ex.session.log_level if ex.session else 0)
            if wanted is not None and rank >= wanted and ex.sink is not None:
                ex.sink.put(message)
            return
        delivered = False
        for session in self.sessions.values():
            if session.stream is not None and rank >= session.log_level:
                session.stream.put(message)
                delivered = True
        self.dropped_logs += not delivered

    def _on_server_cancel(self, message: dict[str, Any], server_id: Any) -> None:
        for bridge_id, (sid, ex) in list(self.server_requests.items()):
            if sid == server_id:
                del self.server_requests[bridge_id]
                target = ex.sink or (ex.session.stream if ex.session else None)
                if target is not None:
                    target.put({**message, "params": {**message["params"], "requestId": bridge_id}})

    def _only_exchange(self) -> Exchange | None:
        if len(self.inflight) != 1:
            return None
        return next(iter(self.inflight.values()))

    async def _on_server_request(self, message: dict[str, Any]) -> None:
        method, server_id = message["method"], message["id"]
        if method == "ping":
            await self._answer_server(wire.result(server_id, {}))
            return
        capability = wire.REQUEST_CAPABILITY.get(method)
        ex = self._only_exchange()
        if ex is None:
            text = (
                f"mcp-fc-bridge relays {method} only while exactly one client request is in flight "
                f"({len(self.inflight)} are): it cannot tell which client this request is for"
            )
            await self._answer_server(wire.error(server_id, wire.INTERNAL_ERROR, text))
        elif capability is not None and capability not in ex.capabilities:
            await self._lacks_capability(ex, message, capability)
        elif ex.modern:
            await self._ask_modern(ex, server_id, message)
        else:
            await self._ask_handshake(ex, server_id, message)

    async def _lacks_capability(self, ex: Exchange, message: dict[str, Any], capability: str) -> None:
        text = f"the client did not declare the {capability!r} capability"
        await self._answer_server(wire.error(message["id"], wire.INVALID_REQUEST, text))
        if ex.modern:
            # 2026-07-28: the request fails with -32021 naming what it needs, and the server's work stops.
            data = {"requiredCapabilities": {capability: {}}}
            what = f"{message['method']} needs the client's {capability!r} capability, which this request's "
            self._finish(
                ex,
                wire.error(
                    ex.client_id, wire.MISSING_CLIENT_CAPABILITY, what + "clientCapabilities lack", data
                ),
            )
            await self.cancel(ex, "the client lacks a capability the server needs")

    async def _ask_handshake(self, ex: Exchange, server_id: Any, message: dict[str, Any]) -> None:
        target = ex.sink if ex.sink is not None and not ex.sink.closed else None
        target = target or (ex.session.stream if ex.session else None)
        if target is None or target.closed:
            text = "the client request this is for has no open stream to carry it"
            await self._answer_server(wire.error(server_id, wire.INTERNAL_ERROR, text))
            return
        bridge_id = f"mcp-fc-{next(self._bridge_ids)}"
        self.server_requests[bridge_id] = (server_id, ex)
        target.put({**message, "id": bridge_id})

    async def _ask_modern(self, ex: Exchange, server_id: Any, message: dict[str, Any]) -> None:
        key = f"{message['method'].split('/')[0]}-{next(self._bridge_ids)}"
        request = {"method": message["method"], "params": message.get("params", {})}
        if ex.sink is None:
            ex.queued_inputs[key] = (server_id, request)  # parked: asked with the next round
        else:
            self._park(ex, {key: (server_id, request)})

    def _park(self, ex: Exchange, inputs: dict[str, tuple[Any, dict[str, Any]]]) -> None:
        # The state is a bearer handle to the parked request: unguessable, and worthless on another instance.
        ex.state = secrets.token_urlsafe(24)
        ex.parked_at = time.monotonic()
        ex.pending_inputs = {key: sid for key, (sid, _) in inputs.items()}
        self.parked[ex.state] = ex
        asked = {
            "resultType": "input_required",
            "inputRequests": {key: request for key, (_, request) in inputs.items()},
            "requestState": ex.state,
        }
        assert ex.sink is not None
        ex.sink.put(wire.result(ex.client_id, asked), final=True)
        ex.sink = None

    async def _answer_server(self, message: dict[str, Any]) -> None:
        try:
            await self.upstream.send(message)
        except ServerExited:
            pass

    # --- the clients' side -------------------------------------------------------------------------

    async def forward(
        self,
        body: dict[str, Any],
        *,
        modern: bool,
        session: Session | None,
        capabilities: dict[str, Any],
        log_level: int | None,
        sink: Sink,
    ) -> Exchange:
        """Send a client request to the stdio server under a fresh id; its answer comes to ``sink``."""
        uid = next(self._ids)
        params = body.get("params")
        token = wire.progress_token(params)
        ex = Exchange(uid, body["id"], body["method"], modern, session, capabilities, log_level, sink, token)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": uid, "method": body["method"]}
        if params is not None:
            message["params"] = wire.forward_params(params, uid if token is not None else None)
        self.inflight[uid] = ex
        try:
            await self.upstream.send(message)
        except ServerExited as exc:
            self.inflight.pop(uid, None)
            self._finish(ex, wire.error(ex.client_id, wire.INTERNAL_ERROR, str(exc)))
        return ex

    async def notify(self, message: dict[str, Any]) -> None:
        await self._answer_server(message)

    async def client_response(self, message: dict[str, Any]) -> bool:
        """A handshake client's answer to a server request, routed back by the bridge id."""
        entry = self.server_requests.pop(message.get("id"), None)  # type: ignore[arg-type]
        if entry is None:
            return False
        answer = {k: v for k, v in message.items() if k in ("jsonrpc", "result", "error")}
        await self._answer_server({**answer, "id": entry[0]})
        return True

    async def cancel(self, ex: Exchange, reason: str) -> None:
        """Stop a request's work at the server (notifications/cancelled), at most once."""
        if ex.state is not None:
            self.parked.pop(ex.state, None)  # also when the server already answered (early_final)
        if self.inflight.pop(ex.upstream_id, None) is None:
            return
        for server_id in ex.pending_inputs.values():
            await self._answer_server(wire.error(server_id, wire.INTERNAL_ERROR, "the request was cancelled"))
        params = {"requestId": ex.upstream_id, "reason": reason}
        await self._answer_server({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params})

    async def cancel_client(self, session: Session | None, request_id: Any, reason: str) -> None:
        """A handshake client's notifications/cancelled: its own id, scoped by its session."""
        for ex in list(self.inflight.values()):
            if ex.session is session and ex.client_id == request_id and not ex.modern:
                await self.cancel(ex, reason)
                return

    async def resume(self, body: dict[str, Any], sink: Sink) -> Exchange | None:
        """A 2026-07-28 retry carrying ``requestState``: answer the parked server requests, adopt the
        retry as the request's new owner. None when the state is not parked here."""
        params = body["params"]
        ex = self.parked.get(params.get("requestState"))
        if ex is None or ex.method != body.get("method"):
            return None
        del self.parked[params["requestState"]]
        responses = params.get("inputResponses") if isinstance(params.get("inputResponses"), dict) else {}
        for key, server_id in ex.pending_inputs.items():
            answer = responses.get(key)
            if isinstance(answer, dict):
                await self._answer_server(wire.result(server_id, answer))
            else:
                text = f"the client's retry carried no response for {key!r}"
                await self._answer_server(wire.error(server_id, wire.INVALID_REQUEST, text))
        ex.client_id, ex.sink, ex.state, ex.pending_inputs = body["id"], sink, None, {}
        ex.capabilities = wire.client_capabilities(body)
        ex.log_level = wire.modern_log_level(body)
        if ex.early_final is not None:
            self._finish(ex, {**ex.early_final, "id": ex.client_id})
        elif ex.queued_inputs:
            queued, ex.queued_inputs = ex.queued_inputs, {}
            self._park(ex, queued)
        return ex

    async def want_log_level(self, rank: int) -> None:
        """Lower the server's log level to ``rank`` if it sends less; messages are then filtered per
        client. The server's level is never raised again: another client may want the lower one."""
        if "logging" not in self.capabilities:
            return
        if self.upstream_level is not None and self.upstream_level <= rank:
            return
        self.upstream_level = rank
        try:
            await self.call("logging/setLevel", {"level": wire.LOG_LEVELS[rank]}, 30.0)
        except (UpstreamError, TimeoutError) as exc:
            log.info("the MCP server refused logging/setLevel: %s", exc)

    def subscribe(self, session: Any, uri: str) -> bool:
        """Record a subscription; True when it is the first for ``uri`` (so the server must be told)."""
        holders = self.subscribers.setdefault(uri, set())
        first = not holders
        holders.add(session)
        session.subscriptions.add(uri)
        return first

    def unsubscribe(self, session: Any, uri: str) -> bool:
        """True when ``uri`` has no subscriber left (so the server must be told)."""
        holders = self.subscribers.get(uri, set())
        holders.discard(session)
        session.subscriptions.discard(uri)
        if holders:
            return False
        self.subscribers.pop(uri, None)
        return True

    def end_session(self, session: Session) -> list[str]:
        """Forget a session; the uris nobody subscribes to any more."""
        self.sessions.pop(session.id, None)
        if session.stream is not None:
            session.stream.close()
        return [uri for uri in list(session.subscriptions) if self.unsubscribe(session, uri)]

    async def janitor(self) -> None:
        """Expire parked input-required requests and idle sessions (bounded state on a long-lived instance)."""
        while True:
            await anyio.sleep(min(10.0, self.input_timeout_s / 2))
            now = time.monotonic()
            for ex in [ex for ex in self.parked.values() if now - ex.parked_at > self.input_timeout_s]:
                await self.cancel(ex, "the client did not retry within the input timeout")
            for session in list(self.sessions.values()):
                if session.stream is None and now - session.last_seen > self.session_idle_s:
                    for uri in self.end_session(session):
                        await self.notify_unsubscribe(uri)

    async def notify_unsubscribe(self, uri: str) -> None:
        try:
            await self.call("resources/unsubscribe", {"uri": uri}, 30.0)
        except (UpstreamError, TimeoutError, ServerExited):
            pass
