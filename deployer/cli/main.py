"""`mcp-fc`: deploy stdio MCP servers to Function Compute through the mcp-fc API.

Client commands (deploy, redeploy, status, list, delete, cancel, events, logs, config) talk to the HTTP API
(`MCPFC_API_URL`, `MCPFC_API_KEY`, or --api-url / --api-key). Server commands (api, worker, dev,
emulator, keys) run or administer the service itself.

Exit codes: 0 success, 1 deployment failed, 2 usage or validation error, 3 service unreachable.
Errors are one line on standard error, `error: ...`.

The root of the command line, as celery/bin/celery.py is Celery's: the Typer app, `main()`, and the one
place that imports and registers every command. Commands are plain functions, one module per command
group (deploy, deployments, releases, logs, reconcile, config, keys, server); what they share is
deployer/cli/base.py. The arrows run main -> command -> base, never back. The order of registration is
the order of `mcp-fc --help`.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from deployer import __version__ as VERSION
from deployer.cli import config, deploy, deployments, keys, logs, reconcile, releases, server
from deployer.cli.base import (
    EXIT_FAILED,
    ApiKey,
    ApiUrl,
    CLIGroup,
    PassthroughCommand,
    fail,
    get_state,
    hide_flag_types,
)
from deployer.errors import MCPFCError

hide_flag_types()

app = typer.Typer(
    cls=CLIGroup,
    name="mcp-fc",
    help="Deploy stdio MCP servers to Alibaba Cloud Function Compute 3.0.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
keys_app = typer.Typer(
    help="Create, list and revoke API keys (opens the service database directly).", no_args_is_help=True
)
token_app = typer.Typer(help="Manage a deployment's endpoint token.", no_args_is_help=True)


def show_version(value: bool) -> None:
    if value:
        typer.echo(f"mcp-fc {VERSION}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=show_version, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    """Deploy stdio MCP servers to Alibaba Cloud Function Compute 3.0.

    Exit codes: 0 success, 1 deployment failed, 2 usage or validation error, 3 service unreachable.
    """
    state = get_state(ctx)
    state.api_url, state.api_key = api_url, api_key


# -- every command, in the order `mcp-fc --help` lists them ---------------------------------------

app.command("deploy", cls=PassthroughCommand, no_args_is_help=True)(deploy.deploy)
app.command("redeploy", cls=PassthroughCommand, no_args_is_help=True)(deploy.redeploy)
app.command("status", no_args_is_help=True)(deployments.status)
app.command("list")(deployments.list_)
app.command("delete", no_args_is_help=True)(deployments.delete)
app.command("cancel", no_args_is_help=True)(deployments.cancel)
app.command("config", no_args_is_help=True)(config.config)
app.command("events", no_args_is_help=True)(deployments.events)
app.command("emulator")(server.emulator)
app.command("api")(server.api)
app.command("worker")(server.worker)
app.command("dev")(server.dev)
app.command("rollback", no_args_is_help=True)(releases.rollback)
app.command("history", no_args_is_help=True)(releases.history)
app.command("logs", no_args_is_help=True)(logs.logs)
app.command("reconcile", no_args_is_help=True)(reconcile.reconcile)
app.command("beat")(server.beat)

app.add_typer(keys_app, name="keys")
keys_app.command("create")(keys.create)
keys_app.command("list")(keys.list_)
keys_app.command("revoke", no_args_is_help=True)(keys.revoke)
keys_app.command("rotate-secrets")(keys.rotate_secrets)

app.add_typer(token_app, name="token")
token_app.command("rotate", no_args_is_help=True)(deployments.token_rotate)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (`mcp-fc`)."""
    try:
        app(args=argv, prog_name="mcp-fc")
    except MCPFCError as exc:  # raised outside a command (e.g. while building settings)
        raise SystemExit(fail(exc, []).exit_code) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:
        if os.environ.get("MCPFC_DEBUG"):
            raise
        typer.echo(
            f"error: unexpected {type(exc).__name__}: {exc} (set MCPFC_DEBUG=1 for the traceback)", err=True
        )
        raise SystemExit(EXIT_FAILED) from None


if __name__ == "__main__":  # pragma: no cover - `python -m deployer.cli.main` (tests/integration)
    main(sys.argv[1:])
