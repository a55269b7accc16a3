"""`mcp-fc deploy` (one server, or every stdio server of an mcp.json) and `mcp-fc redeploy`.

Flags become a DeployRequest body (deployer/cli/input.py), the API queues the run (202), and the command
waits until the endpoint answers MCP (base.follow), unless --no-wait.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from deployer.cli import config as cli_config
from deployer.cli import image as cli_image
from deployer.cli import mcp_json, render
from deployer.cli.base import (
    SERVER_CMD,
    ApiKey,
    ApiUrl,
    JsonOut,
    NameOrId,
    NoWait,
    State,
    accepted,
    follow,
    get_state,
    remember_secrets,
    wait,
)
from deployer.cli.input import InputError, build_deploy_body, build_redeploy_body, load_file, parse_pairs
from deployer.client import APIClient
from deployer.errors import DeploymentFailed
from schemas import TERMINAL, AuthType, Deployment, Priority, Status, Transport

TRANSPORT_HELP = "MCP transport (default: streamable-http; sse is deprecated by MCP 2026-07-28)"

# -- deploy's options -----------------------------------------------------------------------------

NameArg = Annotated[
    str | None,
    typer.Argument(metavar="NAME", help="Function name (may come from --file).", show_default=False),
]
ImageOpt = Annotated[
    str | None,
    typer.Option(
        "--image",
        "-i",
        help="Container image with the MCP server, in ACR in the function's region (the local emulator "
        "of `mcp-fc dev` pulls none: there it may be left out).",
    ),
]
EnvOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--env", "-e", metavar="KEY=VALUE", help="Environment variable (repeatable; bare KEY copies yours)."
    ),
]
SecretOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--secret-env",
        "-s",
        metavar="KEY=VALUE",
        help="Secret env variable: stored encrypted, never shown (repeatable; bare KEY copies yours).",
    ),
]
RegionOpt = Annotated[str | None, typer.Option(help="FC region, e.g. cn-hangzhou (default: the service's)")]
CpuOpt = Annotated[float | None, typer.Option(help="vCPU, a multiple of 0.05 (default: 0.5)")]
MemoryOpt = Annotated[int | None, typer.Option("--memory", metavar="MB", help="Memory in MB (default: 512)")]
TimeoutOpt = Annotated[
    int | None, typer.Option("--timeout", metavar="S", help="Request/session timeout (default: 600)")
]
ConcurrencyOpt = Annotated[int | None, typer.Option(help="Requests per instance (default: 10)")]
TransportOpt = Annotated[Transport | None, typer.Option(help=TRANSPORT_HELP)]
AuthOpt = Annotated[AuthType | None, typer.Option(help="Endpoint auth (default: jwt)")]
PriorityOpt = Annotated[Priority | None, typer.Option(help="Queue priority (default: normal)")]
FileOpt = Annotated[
    str | None,
    typer.Option("--file", "-f", metavar="PATH", help="YAML DeployRequest ('-' = stdin); flags override it."),
]
FromMcpJsonOpt = Annotated[
    str | None,
    typer.Option(
        "--from-mcp-json",
        metavar="FILE",
        help="Deploy every stdio server of a Claude/Cursor mcp.json (with --image); prints the remote config.",
    ),
]


@dataclass(frozen=True)
class SpecFlags:
    """The deploy flags that become DeployRequest fields (--env is parsed when the body is built)."""

    image: str | None
    env: list[str] | None
    region: str | None
    cpu: float | None
    memory: int | None
    timeout: int | None
    concurrency: int | None
    transport: Transport | None
    auth: AuthType | None
    priority: Priority | None

    def fields(self, image: str | None) -> dict[str, Any]:
        """build_deploy_body's keyword arguments, with this image."""
        return dict(
            image=image,
            env=parse_pairs(self.env, "--env"),
            region=self.region,
            cpu=self.cpu,
            memory_mb=self.memory,
            timeout_s=self.timeout,
            instance_concurrency=self.concurrency,
            transport=self.transport.value if self.transport else None,
            auth=self.auth.value if self.auth else None,
            priority=self.priority.value if self.priority else None,
        )


@dataclass(frozen=True)
class Run:
    """One invocation's connection and reporting choices."""

    state: State
    api_url: str | None
    api_key: str | None
    no_wait: bool
    json_out: bool
    started: float

    def client(self) -> APIClient:
        return self.state.client(self.api_url, self.api_key)


def deploy(
    ctx: typer.Context,
    name: NameArg = None,
    image: ImageOpt = None,
    env: EnvOpt = None,
    secret_env: SecretOpt = None,
    region: RegionOpt = None,
    cpu: CpuOpt = None,
    memory: MemoryOpt = None,
    timeout: TimeoutOpt = None,
    concurrency: ConcurrencyOpt = None,
    transport: TransportOpt = None,
    auth: AuthOpt = None,
    priority: PriorityOpt = None,
    file: FileOpt = None,
    from_mcp_json: FromMcpJsonOpt = None,
    no_wait: NoWait = False,
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Deploy a stdio MCP server: mcp-fc deploy NAME --image IMAGE -- SERVER_CMD [ARGS...]

    Waits until the endpoint answers MCP, then prints its URLs and tools.
    """
    state = get_state(ctx)
    run = Run(state, api_url, api_key, no_wait=no_wait, json_out=json_out, started=time.monotonic())
    secret_pairs = parse_pairs(secret_env, "--secret-env", secret=True)
    remember_secrets(state, secret_pairs)
    flags = SpecFlags(image, env, region, cpu, memory, timeout, concurrency, transport, auth, priority)
    command = ctx.meta.get(SERVER_CMD) or None
    if from_mcp_json:
        if name or command or file:
            raise InputError(
                "--from-mcp-json takes the names and commands from the file: drop NAME, --file and --"
            )
        deploy_mcp_json(run, from_mcp_json, flags.fields(image), secret_pairs)
        return
    deploy_one(run, flags, name=name, command=command, file=file, secret_pairs=secret_pairs)


def deploy_one(
    run: Run,
    flags: SpecFlags,
    *,
    name: str | None,
    command: list[str] | None,
    file: str | None,
    secret_pairs: dict[str, str],
) -> None:
    """Deploy one server from flags (and --file), and follow it."""
    file_data = load_file(file) if file else None
    if file_data:
        remember_secrets(run.state, file_data.get("secret_env"))
    image, stand_in = flags.image, None
    if not image and not (file_data or {}).get("image"):
        with run.client() as api:
            image = stand_in = cli_image.default_image(api)
    _, body = build_deploy_body(
        file_data, name=name, command=command, secret_env=secret_pairs, **flags.fields(image)
    )
    cli_config.warn_if_deprecated(body.get("transport"), body.get("name"))
    cli_image.warn(body.get("image"), stand_in=stand_in)
    with run.client() as api:
        # One key per invocation: if the HTTP request is retried, the API deploys once.
        dep, replaced = api.deploy_replacing(body, idempotency_key=str(uuid.uuid4()))
        render.say_replaced(dep, replaced)
        same = bool(replaced and replaced.unchanged)  # nothing was queued: say so, not "deployed in 0s"
        follow(
            run.state,
            api,
            dep,
            no_wait=run.no_wait,
            json_out=run.json_out,
            what="unchanged" if same else "queued",
            verb="unchanged, no new release" if same else "deployed",
            started=None if same else run.started,
        )


# -- deploy --from-mcp-json -----------------------------------------------------------------------


def deploy_mcp_json(run: Run, path: str, flags: dict[str, Any], secret_pairs: dict[str, str]) -> None:
    """Deploy each stdio server of an mcp.json, report each one, print the remote mcpServers config."""
    servers, bodies = mcp_json_bodies(run, path, flags, secret_pairs)
    with run.client() as api:
        deps, same = [], set()
        for body in bodies:
            dep, replaced = api.deploy_replacing(body, idempotency_key=str(uuid.uuid4()))
            render.say_replaced(dep, replaced)
            deps.append(dep)
            if replaced and replaced.unchanged:
                same.add(dep.id)
        if run.no_wait:
            for dep in deps:
                accepted(run.state, dep, json_out=run.json_out, what="queued")
            return
        finals = [
            wait(run.state, api, d, lambda d: d.status in TERMINAL, json_out=run.json_out) for d in deps
        ]
        merged = remote_config(api, servers, finals, unchanged=same)
    report_mcp_json(finals, {"mcpServers": merged}, json_out=run.json_out)


def mcp_json_bodies(
    run: Run, path: str, flags: dict[str, Any], secret_pairs: dict[str, str]
) -> tuple[list[mcp_json.StdioServer], list[dict[str, Any]]]:
    """The file's stdio servers and a DeployRequest body for each (skipped ones are said on stderr)."""
    servers, skipped = mcp_json.load(path)
    for skip in skipped:
        typer.echo(f"skipped {skip.key}: {skip.reason}", err=True)
    if not servers:
        raise InputError(f"{path} has no stdio servers to deploy")
    stand_in = None
    if not flags.get("image"):
        with run.client() as api:
            flags = {**flags, "image": (stand_in := cli_image.default_image(api))}
    cli_image.warn(flags["image"], stand_in=stand_in)
    bodies = []
    for server in servers:
        remember_secrets(run.state, server.env)
        _, body = build_deploy_body(
            None, name=server.name, command=server.command, secret_env={**server.env, **secret_pairs}, **flags
        )
        bodies.append(body)
    return servers, bodies


def remote_config(
    api: APIClient,
    servers: list[mcp_json.StdioServer],
    finals: list[Deployment],
    *,
    unchanged: set[str] | frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The mcpServers entries of the deployments that succeeded, under the file's keys (`unchanged`: the
    ids of those the API found unchanged: no new release)."""
    merged: dict[str, Any] = {}
    for server, dep in zip(servers, finals, strict=True):
        if dep.status == Status.succeeded:
            entry = api.client_config(dep.id)["mcpServers"]
            merged[server.key] = next(iter(entry.values()))
            verb = "unchanged (no new release)" if dep.id in unchanged else "deployed"
            typer.echo(
                f"{verb} {server.key} as {dep.name}: {render.endpoint_url(dep)} "
                f"({render.plural(len(dep.tools), 'tool')})",
                err=True,
            )
        else:
            typer.echo(f"failed {server.key}: {render.error_line(dep)}", err=True)
    return merged


def report_mcp_json(finals: list[Deployment], config_out: dict[str, Any], *, json_out: bool) -> None:
    if json_out:
        typer.echo(render.to_json({"deployments": [d.model_dump(mode="json") for d in finals], **config_out}))
    else:
        typer.echo(render.to_json(config_out))
    failed = [d.name for d in finals if d.status != Status.succeeded]
    if failed:
        raise DeploymentFailed(f"{len(failed)} of {len(finals)} deployments failed: {', '.join(failed)}")


# -- redeploy -------------------------------------------------------------------------------------

RedeployImageOpt = Annotated[str | None, typer.Option("--image", "-i", help="New container image.")]
RedeployEnvOpt = Annotated[
    list[str] | None,
    typer.Option("--env", "-e", metavar="KEY=VALUE", help="Replaces the whole env map (repeatable)."),
]
RedeploySecretOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--secret-env", "-s", metavar="KEY=VALUE", help="Replaces the whole secret env map (repeatable)."
    ),
]
ConvertOpt = Annotated[
    Transport | None,
    typer.Option(
        help="Convert to this transport (streamable-http; sse is deprecated); prints the new config"
    ),
]


def redeploy(
    ctx: typer.Context,
    name: NameOrId,
    image: RedeployImageOpt = None,
    env: RedeployEnvOpt = None,
    secret_env: RedeploySecretOpt = None,
    cpu: Annotated[float | None, typer.Option(help="vCPU")] = None,
    memory: Annotated[int | None, typer.Option("--memory", metavar="MB", help="Memory in MB")] = None,
    timeout: Annotated[int | None, typer.Option("--timeout", metavar="S", help="Timeout in seconds")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Requests per instance")] = None,
    priority: Annotated[Priority | None, typer.Option(help="Queue priority")] = None,
    transport: ConvertOpt = None,
    no_wait: NoWait = False,
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Update a deployment in place (only the fields given change; the URL stays the same).

    With no changes it runs the deploy again, e.g. after a failure. A new server command goes after `--`.
    """
    state = get_state(ctx)
    started = time.monotonic()
    secret_pairs = parse_pairs(secret_env, "--secret-env", secret=True)
    remember_secrets(state, secret_pairs)
    body = build_redeploy_body(
        image=image,
        command=ctx.meta.get(SERVER_CMD) or None,
        env=parse_pairs(env, "--env"),
        secret_env=secret_pairs,
        cpu=cpu,
        memory_mb=memory,
        timeout_s=timeout,
        instance_concurrency=concurrency,
        priority=priority.value if priority else None,
        transport=transport.value if transport else None,
    )
    cli_config.warn_if_deprecated(transport, name)
    with state.client(api_url, api_key) as api:
        dep = follow(
            state,
            api,
            api.redeploy(name, body),
            no_wait=no_wait,
            json_out=json_out,
            what="redeploying",
            verb="redeployed",
            started=started,
        )
        if transport is not None and dep.status == Status.succeeded and not json_out:
            cli_config.show_converted(api, dep)
