"""`mcp-fc logs NAME [--follow] [--since] [--tail N] [--json]` (issue 15).

The MCP server's own stdout and stderr, from GET /v1/deployments/{id}/logs (Simple Log Service on FC, the
emulator's kept output locally). Deploy progress is `mcp-fc events`. `--follow` asks the API again every
FOLLOW_POLL_S with the cursor of the last page, so each line is printed once, until Ctrl-C.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from deployer.cli.base import ApiKey, ApiUrl, NameOrId, get_state
from deployer.client import APIClient

FOLLOW_POLL_S = 1.0


def format_line(line: dict[str, Any]) -> str:
    return f"{line.get('time')} {line.get('instance_id') or '-'} {line.get('stream') or '-'} {line.get('message')}"


def logs(
    ctx: typer.Context,
    name: NameOrId,
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
    bridge: Annotated[
        bool, typer.Option("--bridge", help="Also the lines of the bridge in front of the server.")
    ] = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Show the MCP server's own output (stdout and stderr; --bridge adds the bridge's); deploy progress is
    `mcp-fc events`."""
    state = get_state(ctx)
    with state.client(api_url, api_key) as api:
        page = api.logs(name, since=since, tail=tail, bridge=bridge)
        show(page, json_out=json_out)
        if not page.get("lines") and not follow and not json_out:
            typer.echo(f"no output from {page.get('name') or name} in that time", err=True)
        if follow:
            follow_logs(api, name, since=since, cursor=page.get("cursor"), json_out=json_out, bridge=bridge)


def show(page: dict[str, Any], *, json_out: bool) -> None:
    for line in page.get("lines") or []:
        typer.echo(json.dumps(line) if json_out else format_line(line))


def follow_logs(
    api: APIClient, name: str, *, since: str | None, cursor: str | None, json_out: bool, bridge: bool = False
) -> None:
    """Ask again every FOLLOW_POLL_S from the last cursor, printing the new lines, until Ctrl-C."""
    try:
        while True:
            time.sleep(FOLLOW_POLL_S)  # the follow interval itself, not a synchronisation
            page = api.logs(name, since=None if cursor else since, after=cursor, bridge=bridge)
            show(page, json_out=json_out)
            cursor = page.get("cursor") or cursor
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
