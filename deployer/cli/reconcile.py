"""`mcp-fc reconcile NAME [--no-wait] [--json]` (issue 15 #4).

Queues POST /v1/deployments/{id}/reconcile and waits like a redeploy: the worker writes again what FC shows
drifted from the deployment's spec (nothing when nothing drifted, and never a new version: `live` stays
where it is), so whatever `drift` the scheduled check found (see `mcp-fc status`) is gone. The run's last
event says what it did.
"""

from __future__ import annotations

import time

import typer

from deployer.cli.base import ApiKey, ApiUrl, JsonOut, NameOrId, NoWait, follow, get_state


def reconcile(
    ctx: typer.Context,
    name: NameOrId,
    no_wait: NoWait = False,
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Converge config drift: write again what drifted (function, trigger, live alias); no new release."""
    state = get_state(ctx)
    started = time.monotonic()
    with state.client(api_url, api_key) as api:
        before = api.get(name)
        fields = [f.field for f in before.drift.fields] if before.drift and before.drift.drifted else []
        if fields and not json_out:
            typer.echo(f"{before.name}: converging {', '.join(fields)}", err=True)
        dep = follow(
            state,
            api,
            api.reconcile(name),
            no_wait=no_wait,
            json_out=json_out,
            what="reconciling",
            verb="reconciled",
            started=started,
        )
        if not (no_wait or json_out):
            # What the run did: only what had drifted, or nothing at all; never a new release (issue 26 #2).
            last = [e.data.get("message") for e in api.events(dep.id) if isinstance(e.data, dict)]
            if last and last[-1]:
                typer.echo(last[-1], err=True)
