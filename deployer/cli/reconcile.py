"""`mcp-fc reconcile NAME [--no-wait] [--json]` (issue 15 #4), registered by deployer/cli/main.py.

Queues POST /v1/deployments/{id}/reconcile and waits like a redeploy: the worker writes the deployment's
spec to FC again, so whatever `drift` the scheduled check found (see `mcp-fc status`) is gone.
"""

import time
from typing import Annotated

import typer

from deployer.client import APIClient
from schemas import Deployment


def reconcile_request(api: APIClient, id_or_name: str) -> Deployment:
    return api._deployment(api._request("POST", api._path(id_or_name, "/reconcile")))


def register(app: typer.Typer) -> None:
    from deployer.cli import main as cli

    @app.command(no_args_is_help=True)
    def reconcile(
        ctx: typer.Context,
        name: Annotated[
            str, typer.Argument(metavar="NAME|ID", help="Deployment name or id.", show_default=False)
        ],
        no_wait: cli.NoWait = False,
        json_out: cli.JsonOut = False,
        api_url: cli.ApiUrl = None,
        api_key: cli.ApiKey = None,
    ) -> None:
        """Converge config drift: write the deployment's spec to FC again (function, trigger, live alias)."""
        state = cli._state(ctx)
        started = time.monotonic()
        with state.client(api_url, api_key) as api:
            before = api.get(name)
            fields = [f.field for f in before.drift.fields] if before.drift and before.drift.drifted else []
            if fields and not json_out:
                typer.echo(f"{before.name}: converging {', '.join(fields)}", err=True)
            cli._follow(
                state,
                api,
                reconcile_request(api, name),
                no_wait=no_wait,
                json_out=json_out,
                what="reconciling",
                verb="reconciled",
                started=started,
            )
