"""The commands about existing deployments: `status`, `list`, `delete`, `cancel`, `events` and
`token rotate`. Each talks to the HTTP API only."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from deployer.cli import render
from deployer.cli.base import (
    EXIT_FAILED,
    ApiKey,
    ApiUrl,
    JsonOut,
    NameOrId,
    NoWait,
    accepted,
    follow,
    get_state,
    wait,
)
from deployer.client import APIError, Event
from deployer.errors import DeploymentFailed
from schemas import TERMINAL, HealthStatus, Status

LIST_CAP = 1000
FINAL_STATUSES = {s.value for s in TERMINAL}


def status(
    ctx: typer.Context,
    name: NameOrId,
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Show one deployment: status, stage, URLs, tools, health, error. Exits 1 when it failed or was
    cancelled."""
    state = get_state(ctx)
    with state.client(api_url, api_key) as api:
        dep = api.get(name)
    if json_out:
        typer.echo(render.deployment_json(dep))
    else:
        render.print_deployment(state.out, dep)
    if dep.status in (Status.failed, Status.cancelled):
        # The contract's "1 deployment failed", so `mcp-fc status NAME && ...` never goes on with a broken one.
        raise typer.Exit(EXIT_FAILED)


def list_(
    ctx: typer.Context,
    status_filter: Annotated[
        Status | None, typer.Option("--status", help="Only deployments in this status.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Only deployments with this name.")] = None,
    health: Annotated[
        HealthStatus | None,
        typer.Option("--health", help="Only deployments whose scheduled MCP checks found this."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = LIST_CAP,
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """List deployments, newest first (all pages, up to --limit)."""
    state = get_state(ctx)
    with state.client(api_url, api_key) as api:
        items, truncated = api.list_all(
            status=status_filter.value if status_filter else None,
            name=name,
            max_items=limit,
            health=health.value if health else None,
        )
    if json_out:
        typer.echo(render.to_json([d.model_dump(mode="json") for d in items]))
    elif items:
        state.out.print(render.deployments_table(items))
    else:
        typer.echo("No deployments.")
    if truncated:
        typer.echo(f"showing the first {len(items)} deployments; raise --limit to see more", err=True)


def delete(
    ctx: typer.Context,
    name: NameOrId,
    no_wait: NoWait = False,
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Tear down the trigger and the function; waits until the deployment is deleted."""
    state = get_state(ctx)
    with state.client(api_url, api_key) as api:
        dep = api.delete(name)
        if no_wait:
            accepted(state, dep, json_out=json_out, what="deleting")
            return
        try:
            dep = wait(
                state, api, dep, lambda d: d.status in (Status.deleted, Status.failed), json_out=json_out
            )
        except APIError as exc:
            if exc.status != 404:
                raise
            dep = dep.model_copy(update={"status": Status.deleted, "progress": 100})
    if json_out:
        typer.echo(render.deployment_json(dep))
    if dep.status != Status.deleted:
        raise DeploymentFailed(render.error_line(dep).replace("deployment", "delete of", 1))
    if not json_out:
        typer.echo(f"deleted {dep.name} (id {dep.id})")


def cancel(
    ctx: typer.Context,
    name: NameOrId,
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Cancel a pending or running deploy."""
    state = get_state(ctx)
    busy = {Status.pending, Status.running}
    with state.client(api_url, api_key) as api:
        dep = api.cancel(name)
        if dep.status in busy:
            # A running deploy stops at its next check (during the probe, within a second): wait and say so.
            if not json_out:
                typer.echo(f"{dep.name}: cancel requested, waiting for the deploy to stop ...", err=True)
            dep = api.wait(dep.id, until=lambda d: d.status not in busy, current=dep, deadline_s=120)
    if json_out:
        typer.echo(render.deployment_json(dep))
    elif dep.status == Status.cancelled:
        typer.echo(f"{dep.name} (id {dep.id}): cancelled")
    else:
        typer.echo(f"{dep.name} (id {dep.id}): not cancelled: it is {dep.status.value}")


def token_rotate(
    ctx: typer.Context,
    name: NameOrId,
    no_wait: NoWait = False,
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """New endpoint signing key and token: the trigger is rewritten, every earlier token stops working."""
    state = get_state(ctx)
    started = time.monotonic()
    with state.client(api_url, api_key) as api:
        dep = follow(
            state,
            api,
            api.rotate_token(name),
            no_wait=no_wait,
            json_out=json_out,
            what="rotating the token of",
            verb="rotated the token of",
            started=started,
        )
    if not json_out:
        typer.echo(f"get the new client config with: mcp-fc config {dep.name}", err=True)


def events(
    ctx: typer.Context,
    name: NameOrId,
    run: Annotated[
        str | None,
        typer.Option(
            "--run", metavar="TASK_ID", help="Follow this run (a task id) instead of the current one."
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per event (NDJSON).")] = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Follow the current run's progress (a redeploy in progress, else the last run), from its start to
    its end; --run TASK_ID follows another."""
    state = get_state(ctx)
    with state.client(api_url, api_key) as api:
        try:
            for event in api.events(name, run=run):
                line = event_line(event, json_out=json_out)
                if line is not None:
                    typer.echo(line)
                if isinstance(event.data, dict) and event.data.get("status") in FINAL_STATUSES:
                    break
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


def event_line(event: Event, *, json_out: bool) -> str | None:
    """One event as printed: its JSON (--json), or status, stage, progress and message (None: nothing)."""
    data: Any = event.data
    if json_out:
        return render.to_json(data).replace("\n", "") if not isinstance(data, str) else data
    if isinstance(data, dict):
        parts = [str(data.get(k)) for k in ("status", "stage") if data.get(k)]
        if data.get("progress") is not None:
            parts.append(f"{data['progress']}%")
        if data.get("message"):
            parts.append(str(data["message"]))
        return "  ".join(parts) or event.raw
    return str(data) if data is not None else None
