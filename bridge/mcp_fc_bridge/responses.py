"""Writing answers on raw ASGI: plain JSON, or Server-Sent Events decided lazily.

An exchange's answer is ``application/json`` unless a notification or a server request arrives before it:
only then does the response switch to ``text/event-stream`` (so a 5 MB result is one JSON body, not one
SSE event that the official Python client refuses above 1 MiB). A request that stays silent past the
keep-alive interval also switches, so a proxy's idle timeout does not cut it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from . import wire
from .relay import Sink

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

KEEPALIVE_S = 15.0
SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


def sse_event(message: dict[str, Any]) -> bytes:
    return b"event: message\ndata: " + wire.dumps(message) + b"\n\n"


async def send_json(
    send: Send, status: int, message: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = b"" if message is None else wire.dumps(message)
    head = [(b"content-type", b"application/json")] if message is not None else []
    head.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": head + (headers or [])})
    await send({"type": "http.response.body", "body": body})


async def send_plain(send: Send, status: int, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send_json(send, status, None, headers)


def error_status(message: dict[str, Any], modern: bool) -> int:
    """2026-07-28 gives JSON errors an HTTP status (the spec's table); the handshake era answers 200."""
    if not modern or "error" not in message:
        return 200
    code = message["error"].get("code") if isinstance(message["error"], dict) else None
    return wire.ERROR_HTTP_STATUS.get(code, 200)  # type: ignore[arg-type]


async def watch_disconnect(receive: Receive, scope: anyio.CancelScope, gone: list[bool]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.append(True)
    scope.cancel()


async def answer(
    send: Send,
    receive: Receive,
    sink: Sink,
    *,
    modern: bool,
    headers: list[tuple[bytes, bytes]],
) -> bool:
    """Write an exchange's answer from ``sink``: JSON, or SSE once something arrives first. False when
    the client went away before its answer was written."""
    gone: list[bool] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_disconnect, receive, tg.cancel_scope, gone)
        await _write(send, sink, modern, headers)
        tg.cancel_scope.cancel()
    return not gone


async def _write(send: Send, sink: Sink, modern: bool, headers: list[tuple[bytes, bytes]]) -> None:
    first: tuple[bool, dict[str, Any]] | None = None
    with anyio.move_on_after(KEEPALIVE_S):
        first = await sink.receive.receive()
    if first is not None and first[0]:
        await send_json(send, error_status(first[1], modern), first[1], headers)
        return
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers})
    pending = first
    while True:
        if pending is None:
            with anyio.move_on_after(KEEPALIVE_S):
                pending = await sink.receive.receive()
            if pending is None:
                await send({"type": "http.response.body", "body": b": keep-alive\n\n", "more_body": True})
                continue
        final, message = pending
        pending = None
        await send({"type": "http.response.body", "body": sse_event(message), "more_body": not final})
        if final:
            return


async def stream(
    send: Send, receive: Receive, sink: Sink, headers: list[tuple[bytes, bytes]], first: bytes = b""
) -> None:
    """A standing SSE stream (GET /mcp of a session, GET /sse) until the client goes or the sink closes."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_disconnect, receive, tg.cancel_scope, [])
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers})
        await send({"type": "http.response.body", "body": first or b": stream open\n\n", "more_body": True})
        while True:
            item: tuple[bool, dict[str, Any]] | None = None
            with anyio.move_on_after(KEEPALIVE_S):
                try:
                    item = await sink.receive.receive()
                except anyio.EndOfStream:
                    break
            body = sse_event(item[1]) if item is not None else b": keep-alive\n\n"
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        tg.cancel_scope.cancel()
