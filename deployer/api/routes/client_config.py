"""GET /v1/deployments/{id}/client-config: what an MCP client reads to use a deployment's endpoint.

The one response meant to hand out an endpoint token. A deployment whose last deploy succeeded has an
endpoint a client can use, and so has one whose failed or cancelled redeploy left `live` serving an earlier
version (with a warning header); every other state answers 409 saying why, never an entry that looks usable.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from deployer import client_configs
from deployer.api.deps import CurrentOwner, SessionDep, VaultDep
from deployer.api.problems import Problem, ProblemDetail
from deployer.api.routes.common import PREFIX, IdOrName, get_row
from deployer.client_configs import ClientKind, Endpoint
from deployer.crypto import Vault
from deployer.ops import releases
from deployer.store import reads as store
from deployer.store.tables import DeploymentRow
from schemas import AuthType, Status, Transport

#: A config handed out with a caveat (the endpoint serves another release than the spec).
WARNING_HEADER = "Mcpfc-Warning"

router = APIRouter(
    tags=["deployments"],
    responses={401: {"model": ProblemDetail, "description": "missing, unknown or revoked API key"}},
)

CLIENT_HELP = (
    "the client whose form to answer: `json` (default) or `claude-code` is "
    '`{"mcpServers": {NAME: {"type": "http"|"sse", "url", "headers"}}}` (Claude Code and Cursor read it); '
    '`cursor` drops `type`; `vscode` is `{"servers": ...}`; `claude-desktop` is an `npx mcp-remote` stdio '
    'entry; `inspector` is `{"commands": [{"argv", "shell"}]}`, the MCP Inspector CLI command line'
)


def still_serving(row: DeploymentRow) -> str | None:
    """The warning that goes with the config of a deployment whose last run failed or was cancelled while
    `live` still serves an earlier version (issue 26 #14): the endpoint works, the spec is not what it
    serves. None: nothing to warn about."""
    status = Status(row.status)
    version = releases.serving_version(status.value, row.result)
    if status not in (Status.failed, Status.cancelled) or version is None:
        return None
    what = "failed" if status == Status.failed else "was cancelled"
    return (
        f"the last deploy of {row.name} {what}: the endpoint still serves version {version}, not the spec "
        f"`mcp-fc status {row.name}` shows"
    )


def not_usable(row: DeploymentRow) -> Problem | None:
    """Why this deployment has no endpoint a client could use (None when it has one)."""
    status, name = Status(row.status), row.name
    error = row.error or {}
    extra = {"deployment_id": row.id, "deployment_status": status.value}
    if still_serving(row):
        return None
    if status in (Status.pending, Status.running):
        what = "a deploy" if row.operation == "deploy" else "a redeploy"
        return Problem(
            409,
            f"{what} of {name} is in progress ({status.value}, stage {row.stage}): its endpoint "
            "(or token) is not settled yet; ask again once `mcp-fc status` says succeeded",
            kind="not-ready",
            **extra,
        )
    if status == Status.failed:
        step = f" at step {error['step']}" if error.get("step") else ""
        code = f" ({error['code']})" if error.get("code") else ""
        return Problem(
            409,
            f"{name} failed{step}{code}: it has no working endpoint; see `mcp-fc status {name}`, fix it and "
            f"run `mcp-fc redeploy {name}`",
            kind="deployment-failed",
            **extra,
        )
    if status == Status.cancelled:
        return Problem(
            409,
            f"the last deploy of {name} was cancelled: its endpoint is not known to work; run "
            f"`mcp-fc redeploy {name}`",
            kind="deployment-cancelled",
            **extra,
        )
    if status in (Status.deleting, Status.deleted):
        return Problem(
            409,
            f"{name} {'is being deleted' if status == Status.deleting else 'was deleted'}: it has no "
            "endpoint; deploy it again to get one",
            kind="deleted",
            **extra,
        )
    return None


def endpoint_of(row: DeploymentRow, vault: Vault) -> Endpoint:
    """The endpoint of a succeeded deployment, with its token; a 409 Problem when it has none."""
    problem = not_usable(row)
    if problem is not None:
        raise problem
    dep = store.to_public(row)
    transport = dep.spec.transport
    url = dep.urls.sse if transport == Transport.sse else dep.urls.mcp
    extra = {"deployment_id": row.id, "deployment_status": row.status}
    if not url:
        raise Problem(409, f"{row.name} has no endpoint URL (status {row.status})", kind="no-url", **extra)
    auth = dep.spec.auth.type
    if auth == AuthType.function:
        raise Problem(
            409,
            f"{row.name} uses FC signature auth, which MCP clients cannot produce; redeploy it with auth jwt",
            kind="unusable-auth",
            **extra,
        )
    headers: dict[str, str] = {}
    if auth == AuthType.jwt:
        if not row.endpoint_token_enc:
            raise Problem(
                409, f"{row.name} has no endpoint token (status {row.status})", kind="no-token", **extra
            )
        headers["Authorization"] = f"Bearer {vault.decrypt(row.endpoint_token_enc)}"
    return Endpoint(row.name, url, transport, headers)


@router.get(
    PREFIX + "/{id}/client-config",
    responses={
        404: {"model": ProblemDetail, "description": "no such deployment for this API key"},
        409: {
            "model": ProblemDetail,
            "description": "the deployment has no usable endpoint: pending, running, failed, cancelled, "
            "deleting or deleted (the detail says which and what to do), or it uses auth `function`",
        },
        422: {"model": ProblemDetail, "description": "an unknown client"},
    },
)
def client_config(
    id: IdOrName,
    owner: CurrentOwner,
    session: SessionDep,
    vault: VaultDep,
    response: Response,
    client: Annotated[ClientKind, Query(description=CLIENT_HELP)] = ClientKind.json,
) -> dict[str, Any]:
    """The config an MCP client reads for this deployment (contains the endpoint token). A failed or
    cancelled redeploy whose `live` still serves an earlier version gets it too, with a `Mcpfc-Warning`
    header saying so."""
    row = get_row(session, owner, id)
    endpoint = endpoint_of(row, vault)
    if warning := still_serving(row):
        response.headers[WARNING_HEADER] = warning
    return client_configs.render(client, [endpoint]).body()
