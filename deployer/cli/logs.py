"""`mcp-fc logs NAME [--follow] [--since] [--tail N] [--json]` (issue 15), registered by deployer/cli/main.py.

The MCP server's own stdout and stderr, from GET /v1/deployments/{id}/logs (Simple Log Service on FC, the
emulator's kept output locally). Deploy progress is `mcp-fc events`. `--follow` asks the API again every
FOLLOW_POLL_S with the cursor of the last page, so each line is printed once, until Ctrl-C.
"""

import json
import time
from typing import Annotated, Any

import typer

from deployer.client import APIClient

FOLLOW_POLL_S = 1.0


def logs_request(
    api: APIClient,
    id_or_name: str,
    *,
    since: str | None = None,
    tail: int | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    params = {"since": since, "tail": tail, "after": after}
    return api._json(api._request("GET", api._path(id_or_name, "/logs"), params=params, idempotent=True))


def format_line(line: dict[str, Any]) -> str:
    return f"{line.get('time')} {line.get('instance_id') or '-'} {line.get('stream') or '-'} {line.get('message')}"


def register(app: typer.Typer) -> None:
    from deployer.cli import main as cli

    @app.command(no_args_is_help=True)
    def logs(
        ctx: typer.Context,
        name: Annotated[
            str, typer.Argument(metavar="NAME|ID", help="Deployment name or id.", show_default=False)
        ],
        follow: Annotated[
            bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")
        ] = False,
        since: Annotated[
            str | None,
            typer.Option(help="Only lines newer than this: 30s, 10m, 2h, 1d or an ISO 8601 time."),
        ] = None,
        tail: Annotated[
            int | None,
            typer.Option("--tail", "-n", min=0, help="Only the last N lines (default 100 without --since)."),
        ] = None,
        json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line (NDJSON).")] = False,
        api_url: cli.ApiUrl = None,
        api_key: cli.ApiKey = None,
    ) -> None:
        """Show the MCP server's own output (stdout and stderr); deploy progress is `mcp-fc events`."""
        state = cli._state(ctx)

        def show(page: dict[str, Any]) -> None:
            for line in page.get("lines") or []:
                typer.echo(json.dumps(line) if json_out else format_line(line))

        with state.client(api_url, api_key) as api:
            page = logs_request(api, name, since=since, tail=tail)
            show(page)
            if not page.get("lines") and not follow and not json_out:
                typer.echo(f"no output from {page.get('name') or name} in that time", err=True)
            cursor = page.get("cursor")
            if not follow:
                return
            try:
                while True:
                    time.sleep(FOLLOW_POLL_S)  # the follow interval itself, not a synchronisation
                    page = logs_request(api, name, since=None if cursor else since, after=cursor)
                    show(page)
                    cursor = page.get("cursor") or cursor
            except KeyboardInterrupt:
                raise typer.Exit(130) from None
