"""`mcp-fc rollback NAME [--to VERSION]` and `mcp-fc history NAME` (issue 14).

Both talk to the API only: a rollback is queued and waited for like a redeploy (the worker probes the
target version before `live` moves); history prints the versions the API lists.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from deployer.cli import render
from deployer.cli.base import ApiKey, ApiUrl, JsonOut, NameOrId, get_state, wait
from deployer.errors import DeploymentFailed
from deployer.ops.releases import live_version
from schemas import TERMINAL, Status


def rollback(
    ctx: typer.Context,
    name: NameOrId,
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="VERSION", help="Version to serve (default: the previous)."),
    ] = None,
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Move the `live` alias back to an earlier verified version (probed first); the URL stays."""
    state = get_state(ctx)
    with state.client(api_url, api_key) as api:
        dep = api.rollback(name, to)
        dep = wait(state, api, dep, lambda d: d.status in TERMINAL, json_out=json_out)
    if json_out:
        typer.echo(render.deployment_json(dep))
    if dep.status != Status.succeeded:
        raise DeploymentFailed(render.error_line(dep).replace("deployment", "rollback of", 1))
    if not json_out:
        typer.echo(f"rolled back {dep.name}: live serves version {live_version(dep.result)}")


def history(
    ctx: typer.Context,
    name: NameOrId,
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """List the published versions (image, command, env keys, probe, tools fingerprint) and which is live."""
    state = get_state(ctx)
    with state.client(api_url, api_key) as api:
        data = api.versions(name)
    if json_out:
        typer.echo(json.dumps(data, indent=2))
        return
    for v in data.get("versions") or []:
        typer.echo(version_line(v))


def version_line(v: dict[str, Any]) -> str:
    """One published version as `history` prints it."""
    probe = v.get("probe") or {}
    verdict = "verified" if probe.get("ok") else ("failed" if probe else "unprobed")
    mark = "* live" if v.get("live") else ("  deleted" if v.get("deleted") else "")
    keys = ",".join(v.get("env_keys") or []) or "-"
    return (
        f"v{v['version']:<4} {verdict:<9} {v.get('created') or '-':<21} {v.get('image')} "
        f"{' '.join(v.get('command') or [])} env={keys} "
        f"fingerprint={v.get('fingerprint') or '-'} {mark}".rstrip()
    )
