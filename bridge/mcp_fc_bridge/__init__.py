"""mcp-fc-bridge: relay a stdio MCP server over HTTP, MCP 2026-07-28 and the handshake revisions on one URL.

    mcp-fc-bridge --port 8080 --host 0.0.0.0 [--transport streamable-http|sse] [--allow-origin O ...]
                  [--health-timeout S] [--max-request-bytes N] [--max-message-bytes N] -- SERVER_CMD [ARGS...]

What the function's container runs in front of the user's stdio server. A relay, not a re-server: JSON-RPC
messages pass between the HTTP clients and the one stdio child unchanged but for what the protocol era
demands (ids, the 2026-07-28 envelope; docs/decisions.md, issue 24). One stdio child for the bridge's whole
life, given the bridge's environment; when it exits the bridge exits with its code (so the platform sees a
dead instance and starts a fresh one), and ``GET /status`` fails as soon as it stops answering. The HTTP
port is bound only once the child has answered ``initialize``. See :mod:`.app` for the routes,
:mod:`.relay` for the routing and :mod:`.upstream` for the child.

This package imports only the standard library, ``anyio`` and ``uvicorn`` (never the rest of mcp-fc, nor
the MCP SDK): runtime/Dockerfile installs it alone into the image.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

__version__ = "0.2.0"

#: Flags of mcp-proxy 0.13's command line that mean nothing here but are accepted, so a command written
#: for it keeps working: the bridge always passes its environment on, and 2026-07-28 is stateless anyway.
IGNORED_FLAGS = ("--stateless", "--pass-environment")
DEFAULT_HEALTH_TIMEOUT_S = 2.0
MIB = 1024 * 1024
#: Where the optional ASGI middleware (issue 25's OAuth resource server) is named.
MIDDLEWARE_ENV = "MCP_FC_BRIDGE_ASGI_MIDDLEWARE"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Over 60 lines because it is one flat list of documented flags."""
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        flags, command = argv[:cut], argv[cut + 1 :]
    else:
        flags, command = argv, []
    parser = argparse.ArgumentParser(
        prog="mcp-fc-bridge",
        description="Relay a stdio MCP server over Streamable HTTP (MCP 2026-07-28, stateless, and "
        "2024-11-05..2025-11-25 with sessions) and, with --transport sse, the deprecated HTTP+SSE transport.",
        usage="%(prog)s [--port P] [--host H] [--transport streamable-http|sse] [--allow-origin O ...] -- CMD ...",
    )
    add = parser.add_argument
    add("--port", type=int, default=8080)
    add("--host", default="0.0.0.0")
    add(
        "--transport",
        choices=["streamable-http", "sse"],
        default="streamable-http",
        help="streamable-http: /mcp only; sse: /sse and /messages/ as well (deprecated by MCP 2026-07-28)",
    )
    add(
        "--allow-origin",
        nargs="+",
        default=None,
        help="browser origins allowed ('*' for any); default: loopback origins only",
    )
    add(
        "--health-timeout",
        type=float,
        default=DEFAULT_HEALTH_TIMEOUT_S,
        help="seconds the stdio server has to answer the health check's ping",
    )
    add(
        "--max-request-bytes",
        type=int,
        default=4 * MIB,
        help="largest request body (413 above; default 4 MiB)",
    )
    add(
        "--max-message-bytes",
        type=int,
        default=64 * MIB,
        help="largest message the stdio server may write (one line; its request fails above; default 64 MiB)",
    )
    add("--body-timeout", type=float, default=30.0, help="seconds a client has to send a request body (408)")
    add(
        "--input-timeout",
        type=float,
        default=300.0,
        help="seconds a 2026-07-28 input_required request waits for the client's retry before it is cancelled",
    )
    add("--session-idle", type=float, default=3600.0, help="seconds an idle handshake-era session is kept")
    add("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    for flag in IGNORED_FLAGS:
        add(flag, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(flags)
    if not command:
        parser.error("give the stdio MCP server's command after --")
    args.command = command
    return args


async def serve(args: argparse.Namespace) -> int:
    import anyio

    from .relay import Relay
    from .upstream import ServerExited, Upstream, start_timeout

    upstream = Upstream(args.command, max_line_bytes=args.max_message_bytes)
    relay = Relay(upstream, input_timeout_s=args.input_timeout, session_idle_s=args.session_idle)
    try:
        await upstream.start()
    except OSError as what:
        print(f"mcp-fc-bridge: could not start the MCP server {args.command[0]!r}: {what}", file=sys.stderr)
        return 127 if isinstance(what, FileNotFoundError) else 126
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(upstream.read, relay.on_message, relay.on_oversize)
            tg.start_soon(_watch_exit, upstream, relay)
            try:
                # The port is bound only once the server has answered initialize: FC's start-up health
                # check governs how long a slow start may take, and /status afterwards is a quick check.
                await relay.initialize(start_timeout())
            except ServerExited:
                await upstream.exited.wait()
                raise ServerExited(
                    f"the MCP server {upstream.describe_exit()} before answering initialize"
                ) from None
            await _serve_http(args, relay)
            tg.cancel_scope.cancel()
    except (Exception, ExceptionGroup) as exc:  # anyio wraps what a task group raises
        exited = next((e for e in _leaves(exc) if isinstance(e, ServerExited)), None)
        if exited is None:
            raise
        print(f"mcp-fc-bridge: {exited}", file=sys.stderr)
        return upstream.exit_status()
    finally:
        with anyio.CancelScope(shield=True):
            await upstream.stop()
    if upstream.exited.is_set() and upstream.returncode is not None:
        print(f"mcp-fc-bridge: the MCP server {upstream.describe_exit()}; stopping", file=sys.stderr)
        return upstream.exit_status()
    return 0


async def _watch_exit(upstream: Any, relay: Any) -> None:
    await upstream.wait_exit()
    relay.on_exit()


async def _serve_http(args: argparse.Namespace, relay: Any) -> None:
    import anyio
    import uvicorn

    from .app import BridgeApp, OriginPolicy

    app: Any = BridgeApp(
        relay,
        sse=args.transport == "sse",
        origins=OriginPolicy(args.allow_origin),
        max_request_bytes=args.max_request_bytes,
        body_timeout_s=args.body_timeout,
        health_timeout_s=args.health_timeout,
    )
    app = wrap_middleware(app, os.environ.get(MIDDLEWARE_ENV))
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        lifespan="off",
        # a dead server ends the bridge even while clients hold connections open
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:

        async def stop_with_server() -> None:
            await relay.upstream.exited.wait()
            server.should_exit = True

        tg.start_soon(stop_with_server)
        tg.start_soon(relay.janitor)
        await server.serve()
        tg.cancel_scope.cancel()


def wrap_middleware(app: Any, spec: str | None) -> Any:
    """The optional ASGI middleware slot (the OAuth resource server of issue 25 plugs in here):
    ``MCP_FC_BRIDGE_ASGI_MIDDLEWARE=package.module:factory`` wraps the app as ``factory(app)``. Unset, it
    costs nothing: no import, no extra call per request."""
    if not spec:
        return app
    import importlib

    module, _, name = spec.partition(":")
    if not module or not name:
        raise SystemExit(f"mcp-fc-bridge: {MIDDLEWARE_ENV} must be 'module:factory', not {spec!r}")
    return getattr(importlib.import_module(module), name)(app)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def main(argv: Sequence[str] | None = None) -> None:
    import anyio

    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="[mcp-fc-bridge] %(levelname)s %(message)s", stream=sys.stderr
    )
    try:
        import uvloop  # noqa: F401 - a declared dependency; absent only in a hand-made environment
    except ImportError:
        options = {}
    else:
        options = {"use_uvloop": True}
    sys.exit(anyio.run(serve, args, backend_options=options))
