"""The stdio MCP server behind the bridge: one child process for the bridge's whole life, never respawned.

The bridge spawns the server itself (so its exit code is known), writes newline-delimited JSON-RPC to its
stdin and reassembles its stdout into lines in linear time, bounded by ``max_line_bytes``. It sets
:attr:`Upstream.exited` the moment the server ends; the bridge ends with it, so the platform sees a dead
instance and starts a fresh one instead of a respawning proxy hiding the crash.

The server gets the bridge's whole environment (the function's ``environmentVariables``: the user's env
and secret env): that is what a user deploying a server with an API key in its env expects.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream, Process

log = logging.getLogger("mcp_fc_bridge")

#: How long the server may take to exit after its stdin closes before it is terminated, then killed.
STOP_GRACE_S = 2.0
#: How much of an oversized line is kept (each end) to find the JSON-RPC id it answers.
EDGE_BYTES = 4096
#: Complaints about non-JSON stdout: the first few lines in full, then one summary per interval.
NOISE_FIRST = 3
NOISE_INTERVAL_S = 60.0


class ServerExited(RuntimeError):
    """The stdio server ended; the bridge ends with it."""


class LineSplitter:
    """Newline-delimited stdout to whole lines in linear time (each byte is scanned and copied once).

    A line over ``max_bytes`` is not kept: only its first and last :data:`EDGE_BYTES` are, handed to
    ``on_oversize`` with its full length once its newline arrives, so the caller can fail the one request
    it answered instead of the bridge holding hundreds of megabytes.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.pieces: list[bytes] = []
        self.size = 0
        self.head: bytes | None = None  # set while skipping an oversized line
        self.tail = b""

    def feed(self, chunk: bytes) -> list[tuple[bytes, int]]:
        """Whole lines completed by ``chunk``: ``(line, 0)``, or ``(head + tail, full_length)`` if oversized."""
        out: list[tuple[bytes, int]] = []
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            part = chunk[start:] if nl < 0 else chunk[start:nl]
            self._add(part)
            if nl < 0:
                return out
            out.append(self._finish())
            start = nl + 1

    def _add(self, part: bytes) -> None:
        if not part:
            return
        self.size += len(part)
        if self.head is not None:
            self.tail = (self.tail + part)[-EDGE_BYTES:]
            return
        self.pieces.append(part)
        if self.size > self.max_bytes:
            joined = b"".join(self.pieces)
            self.head, self.tail, self.pieces = joined[:EDGE_BYTES], joined[-EDGE_BYTES:], []

    def _finish(self) -> tuple[bytes, int]:
        if self.head is not None:
            result = (self.head + b"\n" + self.tail, self.size)
            self.head, self.tail = None, b""
        else:
            result = (b"".join(self.pieces), 0)
        self.pieces, self.size = [], 0
        return result


class NoiseLimiter:
    """Rate-limited warnings for stdout lines that are not JSON-RPC (a server logging to stdout)."""

    def __init__(self) -> None:
        self.count = 0
        self.suppressed = 0
        self.last = 0.0

    def complain(self, line: bytes) -> None:
        self.count += 1
        now = time.monotonic()
        if self.count <= NOISE_FIRST:
            log.warning("the MCP server wrote a line that is not JSON-RPC to stdout: %.200r", line)
            self.last = now
        elif now - self.last >= NOISE_INTERVAL_S:
            log.warning(
                "the MCP server wrote %d more non-JSON-RPC lines to stdout (it should log to stderr)",
                self.suppressed + 1,
            )
            self.suppressed, self.last = 0, now
        else:
            self.suppressed += 1


class Upstream:
    """The running stdio server: its process, a line writer and how it ended."""

    def __init__(self, argv: Sequence[str], *, max_line_bytes: int) -> None:
        self.argv = list(argv)
        self.max_line_bytes = max_line_bytes
        self.process: Process | None = None
        self.exited = anyio.Event()
        self.returncode: int | None = None
        self.noise = NoiseLimiter()

    @property
    def alive(self) -> bool:
        return self.process is not None and not self.exited.is_set()

    def describe_exit(self) -> str:
        code = self.returncode
        if code is None:
            return "is running"
        if code < 0:
            return f"was killed by signal {-code}"
        return f"exited with code {code}"

    def exit_status(self) -> int:
        """The bridge's own exit code once the server ended: the server's, or 128+N for signal N."""
        code = self.returncode if self.returncode is not None else 1
        return 128 - code if code < 0 else code

    async def start(self) -> Process:
        process = await anyio.open_process(
            self.argv, env=dict(os.environ), stderr=sys.stderr, start_new_session=False
        )
        self.process = process
        log.info("started the MCP server (pid %s): %s", process.pid, " ".join(self.argv))
        return process

    async def send(self, message: dict[str, Any]) -> None:
        """Write one JSON-RPC message as one line; a dead server raises :class:`ServerExited`."""
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        process = self.process
        if process is None or process.stdin is None or self.exited.is_set():
            raise ServerExited(f"the MCP server {self.describe_exit()}")
        try:
            # No lock: the write itself is synchronous and whole (a line never interleaves with another);
            # concurrent senders only share the wait for the pipe to drain.
            await process.stdin.send(data)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
            raise ServerExited(f"the MCP server {self.describe_exit()}") from exc

    async def read(
        self,
        on_message: Callable[[dict[str, Any]], Awaitable[None]],
        on_oversize: Callable[[bytes, int], Awaitable[None]],
    ) -> None:
        """Read stdout until it closes, handing each JSON-RPC object to ``on_message``."""
        assert self.process is not None and self.process.stdout is not None
        stream: ByteReceiveStream = self.process.stdout
        splitter = LineSplitter(self.max_line_bytes)
        try:
            async for chunk in stream:
                for line, oversized in splitter.feed(chunk):
                    if oversized:
                        await on_oversize(line, oversized)
                    elif line.strip():
                        await self._dispatch(line, on_message)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async def _dispatch(self, line: bytes, on_message: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            self.noise.complain(line)
            return
        if isinstance(message, dict) and message.get("jsonrpc") == "2.0":
            await on_message(message)
        else:
            self.noise.complain(line)

    async def wait_exit(self) -> None:
        assert self.process is not None
        self.returncode = await self.process.wait()
        log.warning("the MCP server (pid %s) %s", self.process.pid, self.describe_exit())
        self.exited.set()

    async def stop(self) -> None:
        process = self.process
        if process is None or self.exited.is_set():
            return
        if process.stdin is not None:
            await process.stdin.aclose()
        with anyio.move_on_after(STOP_GRACE_S):
            await self.exited.wait()
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                process.send_signal(sig)
            except ProcessLookupError:
                return
            with anyio.move_on_after(STOP_GRACE_S):
                await self.exited.wait()
                return


def start_timeout() -> float:
    # A server started with `uvx`/`npx` may download itself first; FC's own health check bounds the rest.
    return float(os.environ.get("MCP_FC_BRIDGE_START_TIMEOUT_S") or 300.0)
