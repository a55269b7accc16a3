"""mcp-fc-bridge: serve a stdio MCP server over HTTP, MCP 2026-07-28 and the handshake revisions on one URL.

    mcp-fc-bridge --port 8080 --host 0.0.0.0 [--transport streamable-http|sse] [--allow-origin O ...]
                  [--health-timeout S] -- SERVER_CMD [ARGS...]

What the function's container runs in front of the user's stdio server (docs/decisions.md has the
measurements that chose it over mcp-proxy 0.13, fastmcp 4's proxy and npm mcp-proxy 6.7). One stdio child
for the bridge's whole life, given the bridge's environment; when it exits the bridge exits with its code
(so the platform sees a dead instance and starts a fresh one), and ``GET /status`` fails as soon as it stops
answering. See :mod:`.app` for the routes and :mod:`.upstream` for the child.

This package imports only the standard library, ``mcp`` and ``uvicorn`` (never the rest of ``deployer``):
runtime/Dockerfile copies it alone into the image as ``mcp_fc_bridge``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

#: Flags of mcp-proxy 0.13's command line that mean nothing here but are accepted, so a command written
#: for it keeps working: the bridge is always stateless and always passes its environment on.
IGNORED_FLAGS = ("--stateless", "--pass-environment")
DEFAULT_HEALTH_TIMEOUT_S = 2.0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        flags, command = argv[:cut], argv[cut + 1 :]
    else:
        flags, command = argv, []
    parser = argparse.ArgumentParser(
        prog="mcp-fc-bridge",
        description="Serve a stdio MCP server over Streamable HTTP (MCP 2026-07-28 and 2024-11-05..2025-11-25, "
        "stateless) and, with --transport sse, the deprecated HTTP+SSE transport.",
        usage="%(prog)s [--port P] [--host H] [--transport streamable-http|sse] [--allow-origin O ...] -- CMD ...",
    )
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument(
        "--transport",
        choices=["streamable-http", "sse"],
        default="streamable-http",
        help="streamable-http: /mcp only; sse: /sse and /messages/ as well (deprecated by MCP 2026-07-28)",
    )
    parser.add_argument(
        "--allow-origin", nargs="+", default=["*"], help="browser origins allowed (default: *)"
    )
    parser.add_argument(
        "--health-timeout",
        type=float,
        default=DEFAULT_HEALTH_TIMEOUT_S,
        help="seconds the stdio server has to answer the health check's ping",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    for flag in IGNORED_FLAGS:
        parser.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(flags)
    if not command:
        parser.error("give the stdio MCP server's command after --")
    args.command = command
    return args


async def serve(args: argparse.Namespace) -> int:
    import anyio

    from .upstream import ServerExited, Upstream

    upstream = Upstream(args.command)
    try:
        async with upstream.run():
            # After the spawn: the server starts while the SDK and uvicorn load (cold start).
            import uvicorn

            from .app import build_app

            app = build_app(
                upstream,
                sse=args.transport == "sse",
                allow_origins=args.allow_origin,
                health_timeout_s=args.health_timeout,
            )
            config = uvicorn.Config(
                app,
                host=args.host,
                port=args.port,
                log_level=args.log_level,
                access_log=False,
                lifespan="on",
                # a dead server ends the bridge even while clients hold connections open
                timeout_graceful_shutdown=2,
            )
            server = uvicorn.Server(config)
            async with anyio.create_task_group() as tg:

                async def stop_with_server() -> None:
                    await upstream.exited.wait()
                    server.should_exit = True

                tg.start_soon(stop_with_server)
                await server.serve()
                tg.cancel_scope.cancel()
    except (Exception, ExceptionGroup) as exc:  # anyio wraps what a task group raises
        leaves = _leaves(exc)
        exited = next((e for e in leaves if isinstance(e, ServerExited)), None)
        if exited is not None:
            print(f"mcp-fc-bridge: {exited}", file=sys.stderr)
            return upstream.exit_status()
        if upstream.process is None and leaves and isinstance(leaves[0], OSError):
            what = leaves[0]
            print(
                f"mcp-fc-bridge: could not start the MCP server {args.command[0]!r}: {what}", file=sys.stderr
            )
            return 127 if isinstance(what, FileNotFoundError) else 126
        raise
    if upstream.exited.is_set() and upstream.returncode is not None:
        print(f"mcp-fc-bridge: the MCP server {upstream.describe_exit()}; stopping", file=sys.stderr)
        return upstream.exit_status()
    return 0


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
    sys.exit(anyio.run(serve, args))
