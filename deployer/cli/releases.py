"""`mcp-fc rollback NAME [--to VERSION]` and `mcp-fc history NAME` (issue 14), registered by deployer/cli/main.py.

Both talk to the API only: a rollback is queued and waited for like a redeploy (the worker probes the
target version before `live` moves); history prints the versions the API lists.
"""

import json
from typing import Annotated, Any

import typer

from deployer.client import APIClient
from schemas import TERMINAL, Deployment, Status


def rollback_request(api: APIClient, id_or_name: str, to: str | None) -> Deployment:
    body = {"to": to} if to else None
    return api._deployment(api._request("POST", api._path(id_or_name, "/rollback"), json_body=body))


def versions_request(api: APIClient, id_or_name: str) -> dict[str, Any]:
    return api._json(api._request("GET", api._path(id_or_name, "/versions"), idempotent=True))


def register(app: typer.Typer) -> None:
    from deployer.cli import main as cli
    from deployer.cli import render

    @app.command(no_args_is_help=True)
    def rollback(
        ctx: typer.Context,
        name: Annotated[
            str, typer.Argument(metavar="NAME|ID", help="Deployment name or id.", show_default=False)
        ],
        to: Annotated[
            str | None,
            typer.Option("--to", metavar="VERSION", help="Version to serve (default: the previous)."),
        ] = None,
        json_out: cli.JsonOut = False,
        api_url: cli.ApiUrl = None,
        api_key: cli.ApiKey = None,
    ) -> None:
        """Move the `live` alias back to an earlier verified version (probed first); the URL stays."""
        state = cli._state(ctx)
        with state.client(api_url, api_key) as api:
            dep = rollback_request(api, name, to)
            dep = cli._wait(state, api, dep, lambda d: d.status in TERMINAL, json_out=json_out)
        if json_out:
            typer.echo(render.deployment_json(dep))
        if dep.status != Status.succeeded:
            raise cli.DeploymentFailed(render.error_line(dep).replace("deployment", "rollback of", 1))
        if not json_out:
            alias = ((dep.result or {}).get("alias_result") or {}).get("body") or {}
            typer.echo(f"rolled back {dep.name}: live serves version {alias.get('versionId')}")

    @app.command(no_args_is_help=True)
    def history(
        ctx: typer.Context,
        name: Annotated[
            str, typer.Argument(metavar="NAME|ID", help="Deployment name or id.", show_default=False)
        ],
        json_out: cli.JsonOut = False,
        api_url: cli.ApiUrl = None,
        api_key: cli.ApiKey = None,
    ) -> None:
        """List the published versions (image, command, env keys, probe, tools fingerprint) and which is live."""
        state = cli._state(ctx)
        with state.client(api_url, api_key) as api:
            data = versions_request(api, name)
        if json_out:
            typer.echo(json.dumps(data, indent=2))
            return
        for v in data.get("versions") or []:
            probe = v.get("probe") or {}
            verdict = "verified" if probe.get("ok") else ("failed" if probe else "unprobed")
            mark = "* live" if v.get("live") else ("  deleted" if v.get("deleted") else "")
            keys = ",".join(v.get("env_keys") or []) or "-"
            typer.echo(
                f"v{v['version']:<4} {verdict:<9} {v.get('created') or '-':<21} {v.get('image')} "
                f"{' '.join(v.get('command') or [])} env={keys} "
                f"fingerprint={v.get('fingerprint') or '-'} {mark}".rstrip()
            )
