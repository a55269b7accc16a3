"""Writing answers on raw ASGI: plain JSON, or Server-Sent Events decided lazily.

An exchange's answer is ``application/json`` unless a notification or a server request arrives before it:
only then does the response switch to ``text/event-stream`` (so a 5 MB result is one JSON body, not one
SSE event that the official Python client refuses above 1 MiB). A request that stays silent past the
keep-alive interval also switches, so a proxy's idle timeout does not cut it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

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


async def _watch(receive: Receive, sink: Sink) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    sink.close()


async def answer(
    send: Send,
    receive: Receive,
    sink: Sink,
    *,
    modern: bool,
    headers: list[tuple[bytes, bytes]],
) -> bool:
    """Write an exchange's answer from ``sink``: JSON, or SSE once something arrives first. False when
    the client went away before its answer was written (the sink is closed then)."""
    # A bare task, not a task group: on every call's path, and it only has to close the sink.
    watcher = asyncio.ensure_future(_watch(receive, sink))
    try:
        return await _write(send, sink, modern, headers)
    finally:
        watcher.cancel()


async def _write(send: Send, sink: Sink, modern: bool, headers: list[tuple[bytes, bytes]]) -> bool:
    item = await sink.get(KEEPALIVE_S)
    if item is None:
        return False
    if item is not False and item[0]:
        await send_json(send, error_status(item[1], modern), item[1], headers)
        return True
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers})
    while True:
        if item is None:
            return False
        if item is False:
            await send({"type": "http.response.body", "body": b": keep-alive\n\n", "more_body": True})
        else:
            final, message = item
            await send({"type": "http.response.body", "body": sse_event(message), "more_body": not final})
            if final:
                return True
        item = await sink.get(KEEPALIVE_S)


async def stream(
    send: Send, receive: Receive, sink: Sink, headers: list[tuple[bytes, bytes]], first: bytes = b""
) -> None:
    """A standing SSE stream (GET /mcp of a session, GET /sse) until the client goes or the sink closes."""
    watcher = asyncio.ensure_future(_watch(receive, sink))
    try:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers})
        await send({"type": "http.response.body", "body": first or b": stream open\n\n", "more_body": True})
        while (item := await sink.get(KEEPALIVE_S)) is not None:
            body = sse_event(item[1]) if item is not False else b": keep-alive\n\n"
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        watcher.cancel()
