"""The stdio MCP server behind the bridge: one child process for the bridge's whole life, never respawned.

The SDK's ``stdio_client`` hides its process, so a bridge on it cannot tell a dead server from a slow one,
and a respawning proxy hides a crash from the platform. This transport spawns the server itself (so its
exit code is known), hands the SDK's ``ClientSession`` the same newline-delimited JSON-RPC streams, and
sets :attr:`Upstream.exited` the moment the server ends.

The server gets the bridge's whole environment (the function's ``environmentVariables``: the user's env
and secret env), not the SDK's short default list: that is what a user deploying a server with an API key
in its env expects.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

if TYPE_CHECKING:
    import mcp_types as types
    from mcp import ClientSession
    from mcp.shared.message import SessionMessage

log = logging.getLogger("mcp_fc_bridge")

#: How long the server may take to exit after its stdin closes before it is terminated, then killed.
STOP_GRACE_S = 2.0
#: How long a closed stdout may precede the server's exit status.
EXIT_WAIT_S = 2.0


class Upstream:
    """The running stdio server: its process, its MCP session and how it ended."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.process: Process | None = None
        self.session: ClientSession | None = None
        self.exited = anyio.Event()
        self.returncode: int | None = None
        self.initialize_result: types.InitializeResult | None = None

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

    @asynccontextmanager
    async def run(self) -> AsyncIterator[ClientSession]:
        """Spawn the server, run the initialize handshake and yield the session; stop the server on exit."""
        process = await anyio.open_process(
            self.argv, env=dict(os.environ), stderr=sys.stderr, start_new_session=False
        )
        self.process = process
        log.info("started the MCP server (pid %s): %s", process.pid, " ".join(self.argv))
        # The SDK takes about a second to import: only now, so the server starts meanwhile (cold start).
        from mcp import ClientSession
        from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
        from mcp.shared.message import SessionMessage

        to_session, from_server = anyio.create_memory_object_stream[SessionMessage | Exception](16)
        to_server, from_session = anyio.create_memory_object_stream[SessionMessage](16)

        async def read_stdout() -> None:
            assert process.stdout is not None
            buffer = ""
            try:
                async with to_session:
                    async for chunk in TextReceiveStream(process.stdout, errors="replace"):
                        lines = (buffer + chunk).split("\n")
                        buffer = lines.pop()
                        for line in lines:
                            if line.strip():
                                await to_session.send(_parse(line))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass

        async def write_stdin() -> None:
            assert process.stdin is not None
            try:
                async with from_session:
                    async for message in from_session:
                        data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                        await process.stdin.send((data + "\n").encode())
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                await to_session.aclose()

        async def wait_exit() -> None:
            self.returncode = await process.wait()
            log.warning("the MCP server (pid %s) %s", process.pid, self.describe_exit())
            self.exited.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_stdout)
            tg.start_soon(write_stdin)
            tg.start_soon(wait_exit)
            try:
                session = ClientSession(dispatcher=JSONRPCDispatcher(from_server, to_server))
                async with session:
                    with anyio.fail_after(_start_timeout()):
                        self.initialize_result = await _initialize(session, self)
                    self.session = session
                    yield session
            finally:
                self.session = None
                with anyio.CancelScope(shield=True):
                    await self._stop(process)
                tg.cancel_scope.cancel()

    async def _stop(self, process: Process) -> None:
        if self.exited.is_set():
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


def _start_timeout() -> float:
    # A server started with `uvx`/`npx` may download itself first; FC's own health check bounds the rest.
    return float(os.environ.get("MCP_FC_BRIDGE_START_TIMEOUT_S") or 300.0)


async def _initialize(session: ClientSession, upstream: Upstream) -> types.InitializeResult:
    """The handshake, abandoned as soon as the server exits (no reply will ever come)."""
    result: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:

        async def handshake() -> None:
            try:
                result["init"] = await session.initialize()
            except Exception:
                # "connection closed" because the server is exiting: wait for its code to say so
                with anyio.move_on_after(EXIT_WAIT_S):
                    await upstream.exited.wait()
                if not upstream.exited.is_set():
                    raise
            tg.cancel_scope.cancel()

        async def watch() -> None:
            await upstream.exited.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(handshake)
        tg.start_soon(watch)
    if "init" not in result:
        raise ServerExited(f"the MCP server {upstream.describe_exit()} before answering initialize")
    return result["init"]


class ServerExited(RuntimeError):
    """The stdio server ended; the bridge ends with it."""


def _parse(line: str) -> SessionMessage | Exception:
    import mcp_types as types
    from mcp.shared.message import SessionMessage

    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        # A server that prints logs to stdout breaks the protocol; say so once per line, keep going.
        log.warning("the MCP server wrote a line that is not JSON-RPC to stdout: %.200s", line)
        return exc
