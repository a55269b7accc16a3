"""`mcp-fc config NAME... --client ...` and the transport notes of deploy/redeploy (the CLI side).

The API answers each deployment's default form (`mcpServers` with `type`, `url`, `headers`); the CLI reads
it back into endpoints and renders the asked client's form locally with `deployer.client_configs`, so
several names merge into one document and commands (`claude mcp add ...`) come out of the same code.
Standard output carries the document, so `mcp-fc config a b --client vscode > .vscode/mcp.json` works;
commands that go with a document go to standard error.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import typer

from deployer import client_configs
from deployer.cli import render
from deployer.cli.base import ApiKey, ApiUrl, JsonOut, get_state
from deployer.client import APIClient, APIError, InvalidResponse
from deployer.client_configs import ClientKind, Endpoint, Rendered
from deployer.errors import DeploymentFailed
from schemas import Deployment, Transport, sse_deprecated

#: 409 kinds that mean the deployment's own deploy ended badly: exit 1, like a failed deploy. The other
#: 409s (in progress, deleted, function auth) are the caller's to wait for or change: exit 2.
#: (deployer.api.problems.TYPE_PREFIX, spelled out: the CLI does not import the API's web stack.)
FAILED_KINDS = {"urn:mcp-fc:problem:deployment-failed", "urn:mcp-fc:problem:deployment-cancelled"}

CLIENT_HELP = (
    "Print the form this client reads: claude-code (also prints `claude mcp add`), cursor, vscode "
    "(`servers`), claude-desktop (an `npx mcp-remote` stdio entry), inspector (the MCP Inspector CLI "
    "command) or json. Default: an mcpServers file Claude Code and Cursor both read."
)


def endpoints(api: APIClient, names: Iterable[str]) -> list[Endpoint]:
    """Each deployment's endpoint, in order, from the API's default form. Any error stops before output."""
    found: list[Endpoint] = []
    for name in dict.fromkeys(names):
        try:
            document, warning = api.client_config_warned(name)
        except APIError as exc:
            if exc.status == 409 and exc.type in FAILED_KINDS:
                raise DeploymentFailed(exc.detail or exc.message) from None
            raise
        if warning:  # e.g. the last deploy failed, `live` still serves an earlier version
            typer.echo(f"warning: {warning}", err=True)
        try:
            found += client_configs.endpoints_from(document)
        except client_configs.BadDocument as exc:
            raise InvalidResponse(f"the API's client config for {name} is unreadable: {exc}") from None
    return found


def emit(rendered: Rendered, *, json_out: bool) -> None:
    if json_out:
        typer.echo(render.to_json(rendered.as_json()))
        return
    if rendered.document is None:
        for line in rendered.shell_lines():
            typer.echo(line)
        return
    typer.echo(render.to_json(rendered.document))
    if rendered.commands:
        typer.echo("or add it from a terminal:", err=True)
        for line in rendered.shell_lines():
            typer.echo(f"  {line}", err=True)


def config(
    ctx: typer.Context,
    names: Annotated[
        list[str], typer.Argument(metavar="NAME...", help="Deployment names or ids.", show_default=False)
    ],
    client: Annotated[ClientKind | None, typer.Option(help=CLIENT_HELP, show_default=False)] = None,
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Print the config an MCP client reads for these deployments, merged (contains endpoint tokens)."""
    with get_state(ctx).client(api_url, api_key) as api:
        run(api, names, client, json_out=json_out)


def run(api: APIClient, names: list[str], client: ClientKind | None, *, json_out: bool) -> None:
    """The `config` command's work, once it has a client."""
    emit(client_configs.render(client or ClientKind.json, endpoints(api, names)), json_out=json_out)


def warn_if_deprecated(transport: object, name: str | None) -> None:
    """One stderr line when a deploy asks for the deprecated SSE transport (its events say it too)."""
    if transport == Transport.sse:
        typer.echo(f"warning: {sse_deprecated(name or 'NAME')}", err=True)


def show_converted(api: APIClient, dep: Deployment) -> None:
    """After `redeploy --transport`: the new URL and the config clients must now use."""
    rendered = client_configs.render(ClientKind.json, endpoints(api, [dep.name]))
    url = next(iter(rendered.document["mcpServers"].values()))["url"] if rendered.document else ""
    typer.echo(
        f"{dep.name} now uses transport {dep.spec.transport.value} at {url}; update your clients "
        f"(`mcp-fc config {dep.name} --client ...` prints other forms):",
        err=True,
    )
    emit(rendered, json_out=False)
