"""`mcp-fc`: deploy stdio MCP servers to Function Compute through the mcp-fc API.

Client commands (deploy, redeploy, status, list, delete, cancel, events, logs, config) talk to the HTTP API
(`MCPFC_API_URL`, `MCPFC_API_KEY`, or --api-url / --api-key). Server commands (api, worker, dev,
emulator, keys) run or administer the service itself.

Exit codes: 0 success, 1 deployment failed, 2 usage or validation error, 3 service unreachable.
Errors are one line on standard error, `error: ...`.

One module (~970 lines) on purpose: the Typer app, its error-to-exit-code handling and the core commands
(deploy, redeploy, status, list, delete, cancel, api, worker, dev) share one `State`; commands of a topic live in
`cli_<topic>.py` modules registered here, input parsing in cli_input.py and rendering in cli_render.py.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from pydantic import ValidationError
from typer.core import TyperCommand, TyperGroup

from deployer.cli import config as cli_config
from deployer.cli import image as cli_image
from deployer.cli import mcp_json, render
from deployer.cli.input import (
    InputError,
    build_deploy_body,
    build_redeploy_body,
    field_errors,
    load_file,
    parse_pairs,
    redact,
)
from deployer.client import VERSION, APIClient, APIError, ServiceUnreachable
from deployer.client_configs import ClientKind
from deployer.errors import ConfigError, DeploymentFailed, MCPFCError, SpecError
from deployer.settings import Settings
from schemas import TERMINAL, AuthType, Deployment, HealthStatus, Priority, Status, Transport

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
SERVER_CMD = "mcpfc.server_cmd"
WAIT_POLL_S = 20.0
LIST_CAP = 1000


# -- error handling -------------------------------------------------------------------------------


def _exit_code(exc: MCPFCError) -> int:
    if isinstance(exc, DeploymentFailed):
        return EXIT_FAILED
    if isinstance(exc, ServiceUnreachable):
        return EXIT_UNREACHABLE
    if isinstance(exc, APIError):
        return EXIT_UNREACHABLE if exc.unavailable else EXIT_USAGE
    if isinstance(exc, InputError | ConfigError | SpecError):
        return EXIT_USAGE
    return EXIT_FAILED


def _error_message(exc: MCPFCError, key_source: str | None = None) -> str:
    if isinstance(exc, APIError):
        if exc.status == 401 and key_source is None:
            return (
                "no API key: set MCPFC_API_KEY or pass --api-key (`mcp-fc dev` prints one, "
                "`mcp-fc keys create` makes one)"
            )
        if exc.status == 401:
            return (
                f"the API refused the API key from {key_source}: it is unknown to this service or revoked "
                "(`mcp-fc dev` prints its key, `mcp-fc keys create` makes one)"
            )
        if exc.status == 403:
            return f"the API key may not do this: {exc.message}"
        if exc.status in (502, 503, 504):
            return f"the mcp-fc API is unavailable: {exc.message}"
    return exc.message


def _fail(exc: MCPFCError, secrets: list[str], key_source: str | None = None) -> typer.Exit:
    message = " ".join(redact(_error_message(exc, key_source), secrets).split())
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(_exit_code(exc))


class CLIGroup(TyperGroup):
    """Turns our exceptions into one `error: ...` line and the contract's exit code (for every command,
    under `main()` and under test runners alike). Typer's own usage errors keep their exit 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except MCPFCError as exc:
            state = ctx.obj if isinstance(ctx.obj, State) else None
            raise _fail(exc, state.secrets if state else [], state.key_source if state else None) from None
        except (typer.TyperException, typer.Exit, typer.Abort, KeyboardInterrupt):  # usage errors keep exit 2
            raise
        except Exception as exc:  # a bug of ours: still one line, unless asked for the traceback
            if os.environ.get("MCPFC_DEBUG"):
                raise
            state = ctx.obj if isinstance(ctx.obj, State) else None
            first = redact((str(exc).splitlines() or [""])[0], state.secrets if state else [])
            typer.echo(
                f"error: unexpected {type(exc).__name__}: {first} (set MCPFC_DEBUG=1 for the traceback)",
                err=True,
            )
            raise typer.Exit(EXIT_FAILED) from None


class PassthroughCommand(TyperCommand):
    """A command whose arguments after `--` are the MCP server's argv, kept verbatim (`ctx.meta`)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        cut = args.index("--") if "--" in args else None
        if cut is not None:
            ctx.meta[SERVER_CMD] = args[cut + 1 :]
            args = args[:cut]
        # Extra words are collected instead of click's "Got unexpected extra argument(s)", which does not say
        # that the usual cause is a server command typed without `--` in front of it.
        ctx.allow_extra_args = True
        try:
            rest = super().parse_args(ctx, args)
        except typer.TyperException as exc:
            option = getattr(exc, "option_name", None)  # NoSuchOption: perhaps the server's own option
            if cut is None and option and isinstance(getattr(exc, "message", None), str):
                exc.message += (
                    f"; if {option} is the MCP server's option, put the server's command after `--`"
                )
            raise
        if ctx.args:
            extra = shlex.join(ctx.args)
            if cut is None:
                example = "NAME --image IMAGE" if ctx.info_name == "deploy" else "NAME"
                ctx.fail(  # typer's own click: a usage error, exit 2
                    f"unexpected argument(s) {extra}: put the MCP server's command after `--`, as in "
                    f"`{ctx.command_path} {example} -- {extra}`"
                )
            ctx.fail(
                f"unexpected argument(s) {extra} before `--`: only NAME and options go before `--`, "
                "the MCP server's command after it"
            )
        return rest

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "[-- SERVER_CMD [ARGS]...]"]


def _hide_flag_types() -> None:
    """typer (0.29) shows a flag's type in help (`--json <bool>`) as if the flag took a value; it takes
    none, so a flag shows no type. Options with a value keep theirs (`--image <str>`)."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "hides_flag_types", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    display_type_rich.hides_flag_types = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_hide_flag_types()


# -- state ----------------------------------------------------------------------------------------


@dataclass
class State:
    api_url: str | None = None
    api_key: str | None = None
    secrets: list[str] = field(default_factory=list)
    key_source: str | None = None  # where the API key came from, for the hint when the API refuses it
    out: Any = None
    err: Any = None

    def __post_init__(self) -> None:
        self.out, self.err = render.make_consoles()

    def settings(self, **overrides: Any) -> Settings:
        try:
            return Settings(**{k: v for k, v in overrides.items() if v is not None})
        except ValidationError as exc:
            problems = "; ".join(str(e) for e in field_errors(exc))
            raise ConfigError(f"invalid settings (MCPFC_* environment or .env): {problems}") from None

    def client(self, api_url: str | None = None, api_key: str | None = None) -> APIClient:
        settings = self.settings(api_url=api_url or self.api_url, api_key=api_key or self.api_key)
        key = settings.api_key.get_secret_value() if settings.api_key else None
        if key:
            self.key_source = "--api-key" if (api_key or self.api_key) else "MCPFC_API_KEY"
        return APIClient(settings.api_url, key)


def _state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


# -- the app --------------------------------------------------------------------------------------

app = typer.Typer(
    cls=CLIGroup,
    name="mcp-fc",
    help="Deploy stdio MCP servers to Alibaba Cloud Function Compute 3.0.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
keys_app = typer.Typer(
    help="Create, list and revoke API keys (opens the service database directly).", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
token_app = typer.Typer(help="Manage a deployment's endpoint token.", no_args_is_help=True)
app.add_typer(token_app, name="token")

ApiUrl = Annotated[
    str | None,
    typer.Option("--api-url", help="mcp-fc API base URL (env MCPFC_API_URL; default http://127.0.0.1:8000)"),
]
ApiKey = Annotated[
    str | None, typer.Option("--api-key", help="API key (env MCPFC_API_KEY)", show_default=False)
]
TRANSPORT_HELP = "MCP transport (default: streamable-http; sse is deprecated by MCP 2026-07-28)"
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON only (progress, if any, goes to stderr).")]
NoWait = Annotated[bool, typer.Option("--no-wait", help="Return once the API has accepted the request.")]
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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mcp-fc {VERSION}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Deploy stdio MCP servers to Alibaba Cloud Function Compute 3.0.

    Exit codes: 0 success, 1 deployment failed, 2 usage or validation error, 3 service unreachable.
    """
    state = _state(ctx)
    state.api_url, state.api_key = api_url, api_key


# -- waiting --------------------------------------------------------------------------------------


def _wait(
    state: State, api: APIClient, dep: Deployment, until: Callable[[Deployment], bool], *, json_out: bool
) -> Deployment:
    """Long-poll until `until` holds, showing progress on stderr. Ctrl-C stops waiting, not the work."""
    display = render.WaitDisplay(state.err, quiet=json_out and not state.err.is_terminal)
    try:
        with display:
            return api.wait(dep.id, until=until, on_update=display.update, current=dep, poll_s=WAIT_POLL_S)
    except KeyboardInterrupt:
        typer.echo(
            f"stopped waiting; {dep.name} carries on in the service (see `mcp-fc status {dep.name}`)",
            err=True,
        )
        raise typer.Exit(130) from None


def _finish_deploy(state: State, dep: Deployment, *, json_out: bool, verb: str, started: float) -> None:
    if json_out:
        typer.echo(render.deployment_json(dep))
    if dep.status != Status.succeeded:
        raise DeploymentFailed(render.error_line(dep))
    if not json_out:
        render.print_success(state.out, dep, verb=verb, elapsed=time.monotonic() - started)


def _follow(
    state: State,
    api: APIClient,
    dep: Deployment,
    *,
    no_wait: bool,
    json_out: bool,
    what: str,
    verb: str,
    started: float,
) -> Deployment:
    """After a 202: report it (--no-wait), or wait for the end and report success or failure."""
    if no_wait:
        _accepted(state, dep, json_out=json_out, what=what)
        return dep
    dep = _wait(state, api, dep, lambda d: d.status in TERMINAL, json_out=json_out)
    _finish_deploy(state, dep, json_out=json_out, verb=verb, started=started)
    return dep


def _accepted(state: State, dep: Deployment, *, json_out: bool, what: str) -> None:
    if json_out:
        typer.echo(render.deployment_json(dep))
        return
    typer.echo(f"{what} {dep.name} (id {dep.id}): {dep.status.value}")
    typer.echo(f"follow it with: mcp-fc status {dep.name}", err=True)


def _remember_secrets(state: State, *maps: dict[str, Any] | None) -> None:
    for mapping in maps:
        if isinstance(mapping, dict):
            state.secrets.extend(str(v) for v in mapping.values() if v is not None)


# -- client commands ------------------------------------------------------------------------------


@app.command(cls=PassthroughCommand, no_args_is_help=True)
def deploy(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(metavar="NAME", help="Function name (may come from --file).", show_default=False),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            "-i",
            help="Container image with the MCP server, in ACR in the function's region (the local emulator "
            "of `mcp-fc dev` pulls none: there it may be left out).",
        ),
    ] = None,
    env: EnvOpt = None,
    secret_env: SecretOpt = None,
    region: Annotated[
        str | None, typer.Option(help="FC region, e.g. cn-hangzhou (default: the service's)")
    ] = None,
    cpu: Annotated[float | None, typer.Option(help="vCPU, a multiple of 0.05 (default: 0.5)")] = None,
    memory: Annotated[
        int | None, typer.Option("--memory", metavar="MB", help="Memory in MB (default: 512)")
    ] = None,
    timeout: Annotated[
        int | None, typer.Option("--timeout", metavar="S", help="Request/session timeout (default: 600)")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="Requests per instance (default: 10)")] = None,
    transport: Annotated[Transport | None, typer.Option(help=TRANSPORT_HELP)] = None,
    auth: Annotated[AuthType | None, typer.Option(help="Endpoint auth (default: jwt)")] = None,
    priority: Annotated[Priority | None, typer.Option(help="Queue priority (default: normal)")] = None,
    file: Annotated[
        str | None,
        typer.Option(
            "--file", "-f", metavar="PATH", help="YAML DeployRequest ('-' = stdin); flags override it."
        ),
    ] = None,
    from_mcp_json: Annotated[
        str | None,
        typer.Option(
            "--from-mcp-json",
            metavar="FILE",
            help="Deploy every stdio server of a Claude/Cursor mcp.json (with --image); prints the remote config.",
        ),
    ] = None,
    no_wait: NoWait = False,
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Deploy a stdio MCP server: mcp-fc deploy NAME --image IMAGE -- SERVER_CMD [ARGS...]

    Waits until the endpoint answers MCP, then prints its URLs and tools.
    """
    state = _state(ctx)
    started = time.monotonic()
    secret_pairs = parse_pairs(secret_env, "--secret-env", secret=True)
    _remember_secrets(state, secret_pairs)
    if from_mcp_json:
        if name or ctx.meta.get(SERVER_CMD) or file:
            raise InputError(
                "--from-mcp-json takes the names and commands from the file: drop NAME, --file and --"
            )
        flags = dict(
            image=image,
            env=parse_pairs(env, "--env"),
            region=region,
            cpu=cpu,
            memory_mb=memory,
            timeout_s=timeout,
            instance_concurrency=concurrency,
            transport=transport.value if transport else None,
            auth=auth.value if auth else None,
            priority=priority.value if priority else None,
        )
        _deploy_mcp_json(
            state,
            from_mcp_json,
            flags,
            secret_pairs,
            no_wait=no_wait,
            json_out=json_out,
            api_url=api_url,
            api_key=api_key,
        )
        return
    file_data = load_file(file) if file else None
    if file_data:
        _remember_secrets(state, file_data.get("secret_env"))
    stand_in = None
    if not image and not (file_data or {}).get("image"):
        with state.client(api_url, api_key) as api:
            image = stand_in = cli_image.default_image(api)
    _, body = build_deploy_body(
        file_data,
        name=name,
        image=image,
        command=ctx.meta.get(SERVER_CMD) or None,
        env=parse_pairs(env, "--env"),
        secret_env=secret_pairs,
        region=region,
        cpu=cpu,
        memory_mb=memory,
        timeout_s=timeout,
        instance_concurrency=concurrency,
        transport=transport.value if transport else None,
        auth=auth.value if auth else None,
        priority=priority.value if priority else None,
    )
    cli_config.warn_if_deprecated(body.get("transport"), body.get("name"))
    cli_image.warn(body.get("image"), stand_in=stand_in)
    with state.client(api_url, api_key) as api:
        # One key per invocation: if the HTTP request is retried, the API deploys once.
        dep, replaced = api.deploy_replacing(body, idempotency_key=str(uuid.uuid4()))
        render.say_replaced(dep, replaced)
        _follow(
            state,
            api,
            dep,
            no_wait=no_wait,
            json_out=json_out,
            what="queued",
            verb="deployed",
            started=started,
        )


def _deploy_mcp_json(
    state: State,
    path: str,
    flags: dict[str, Any],
    secret_pairs: dict[str, str],
    *,
    no_wait: bool,
    json_out: bool,
    api_url: str | None,
    api_key: str | None,
) -> None:
    """Deploy each stdio server of an mcp.json, report each one, print the remote mcpServers config."""
    servers, skipped = mcp_json.load(path)
    for skip in skipped:
        typer.echo(f"skipped {skip.key}: {skip.reason}", err=True)
    if not servers:
        raise InputError(f"{path} has no stdio servers to deploy")
    stand_in = None
    if not flags.get("image"):
        with state.client(api_url, api_key) as api:
            flags = {**flags, "image": (stand_in := cli_image.default_image(api))}
    cli_image.warn(flags["image"], stand_in=stand_in)
    bodies = []
    for server in servers:
        _remember_secrets(state, server.env)
        _, body = build_deploy_body(
            None, name=server.name, command=server.command, secret_env={**server.env, **secret_pairs}, **flags
        )
        bodies.append(body)
    with state.client(api_url, api_key) as api:
        deps = []
        for body in bodies:
            dep, replaced = api.deploy_replacing(body, idempotency_key=str(uuid.uuid4()))
            render.say_replaced(dep, replaced)
            deps.append(dep)
        if no_wait:
            for dep in deps:
                _accepted(state, dep, json_out=json_out, what="queued")
            return
        finals = [_wait(state, api, dep, lambda d: d.status in TERMINAL, json_out=json_out) for dep in deps]
        merged: dict[str, Any] = {}
        for server, dep in zip(servers, finals, strict=True):
            if dep.status == Status.succeeded:
                entry = api.client_config(dep.id)["mcpServers"]
                merged[server.key] = next(iter(entry.values()))
                typer.echo(
                    f"deployed {server.key} as {dep.name}: {render.endpoint_url(dep)} "
                    f"({len(dep.tools)} tools)",
                    err=True,
                )
            else:
                typer.echo(f"failed {server.key}: {render.error_line(dep)}", err=True)
    config_out = {"mcpServers": merged}
    if json_out:
        typer.echo(render.to_json({"deployments": [d.model_dump(mode="json") for d in finals], **config_out}))
    else:
        typer.echo(render.to_json(config_out))
    failed = [d.name for d in finals if d.status != Status.succeeded]
    if failed:
        raise DeploymentFailed(f"{len(failed)} of {len(finals)} deployments failed: {', '.join(failed)}")


@app.command(cls=PassthroughCommand, no_args_is_help=True)
def redeploy(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME|ID", help="Deployment name or id.", show_default=False)
    ],
    image: Annotated[str | None, typer.Option("--image", "-i", help="New container image.")] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", "-e", metavar="KEY=VALUE", help="Replaces the whole env map (repeatable)."),
    ] = None,
    secret_env: Annotated[
        list[str] | None,
        typer.Option(
            "--secret-env", "-s", metavar="KEY=VALUE", help="Replaces the whole secret env map (repeatable)."
        ),
    ] = None,
    cpu: Annotated[float | None, typer.Option(help="vCPU")] = None,
    memory: Annotated[int | None, typer.Option("--memory", metavar="MB", help="Memory in MB")] = None,
    timeout: Annotated[int | None, typer.Option("--timeout", metavar="S", help="Timeout in seconds")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Requests per instance")] = None,
    priority: Annotated[Priority | None, typer.Option(help="Queue priority")] = None,
    transport: Annotated[
        Transport | None,
        typer.Option(
            help="Convert to this transport (streamable-http; sse is deprecated); prints the new config"
        ),
    ] = None,
    no_wait: NoWait = False,
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Update a deployment in place (only the fields given change; the URL stays the same).

    With no changes it runs the deploy again, e.g. after a failure. A new server command goes after `--`.
    """
    state = _state(ctx)
    started = time.monotonic()
    secret_pairs = parse_pairs(secret_env, "--secret-env", secret=True)
    _remember_secrets(state, secret_pairs)
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
        dep = _follow(
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


@app.command(no_args_is_help=True)
def status(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME|ID", help="Deployment name or id.", show_default=False)
    ],
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Show one deployment: status, stage, URLs, tools, health, error. Exits 1 when it failed or was
    cancelled."""
    state = _state(ctx)
    with state.client(api_url, api_key) as api:
        dep = api.get(name)
    if json_out:
        typer.echo(render.deployment_json(dep))
    else:
        render.print_deployment(state.out, dep)
    if dep.status in (Status.failed, Status.cancelled):
        # The contract's "1 deployment failed", so `mcp-fc status NAME && ...` never goes on with a broken one.
        raise typer.Exit(EXIT_FAILED)


@app.command("list")
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
    state = _state(ctx)
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


@app.command(no_args_is_help=True)
def delete(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME|ID", help="Deployment name or id.", show_default=False)
    ],
    no_wait: NoWait = False,
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Tear down the trigger and the function; waits until the deployment is deleted."""
    state = _state(ctx)
    with state.client(api_url, api_key) as api:
        dep = api.delete(name)
        if no_wait:
            _accepted(state, dep, json_out=json_out, what="deleting")
            return
        try:
            dep = _wait(
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


@app.command(no_args_is_help=True)
def cancel(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME|ID", help="Deployment name or id.", show_default=False)
    ],
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Cancel a pending or running deploy."""
    state = _state(ctx)
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


@token_app.command("rotate", no_args_is_help=True)
def token_rotate(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME|ID", help="Deployment name or id.", show_default=False)
    ],
    no_wait: NoWait = False,
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """New endpoint signing key and token: the trigger is rewritten, every earlier token stops working."""
    state = _state(ctx)
    started = time.monotonic()
    with state.client(api_url, api_key) as api:
        dep = _follow(
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


@app.command(no_args_is_help=True)
def config(
    ctx: typer.Context,
    names: Annotated[
        list[str], typer.Argument(metavar="NAME...", help="Deployment names or ids.", show_default=False)
    ],
    client: Annotated[
        ClientKind | None, typer.Option(help=cli_config.CLIENT_HELP, show_default=False)
    ] = None,
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Print the config an MCP client reads for these deployments, merged (contains endpoint tokens)."""
    with _state(ctx).client(api_url, api_key) as api:
        cli_config.run(api, names, client, json_out=json_out)


def _events(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME|ID", help="Deployment name or id.", show_default=False)
    ],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per event (NDJSON).")] = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Stream a deployment's progress events until it reaches a final state."""
    state = _state(ctx)
    with state.client(api_url, api_key) as api:
        try:
            for event in api.events(name):
                data = event.data
                if json_out:
                    typer.echo(render.to_json(data).replace("\n", "") if not isinstance(data, str) else data)
                elif isinstance(data, dict):
                    parts = [str(data.get(k)) for k in ("status", "stage") if data.get(k)]
                    if data.get("progress") is not None:
                        parts.append(f"{data['progress']}%")
                    if data.get("message"):
                        parts.append(str(data["message"]))
                    typer.echo("  ".join(parts) or event.raw)
                elif data is not None:
                    typer.echo(str(data))
                if isinstance(data, dict) and data.get("status") in {s.value for s in TERMINAL}:
                    break
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


app.command("events", no_args_is_help=True)(_events)


# -- server-side commands -------------------------------------------------------------------------


def _lazy(what: str, importer: Callable[[], Any]) -> Any:
    try:
        return importer()
    except ImportError as exc:
        raise ConfigError(f"{what} is not available in this installation ({exc})") from None


@app.command()
def emulator(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            help="Port to listen on (any free one but 9000: FC's default container port, which a function "
            "without a port flag listens on itself)."
        ),
    ] = 8931,
    pending_seconds: Annotated[
        float, typer.Option(help="How long new and updated functions stay Pending / InProgress.")
    ] = 1.0,
    state_file: Annotated[
        Path | None, typer.Option(help="Keep functions and triggers in this JSON file across restarts.")
    ] = None,
) -> None:
    """Run the local FC 3.0 emulator (keys from ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET, else mcpfc-local)."""

    def load() -> Any:
        from fc_emulator.server import run

        return run

    _lazy("the FC emulator", load)(
        host=host, port=port, pending_seconds=pending_seconds, state_file=state_file
    )


@app.command()
def api(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: MCPFC_API_HOST or 127.0.0.1)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: MCPFC_API_PORT or 8000)")] = None,
) -> None:
    """Run the HTTP API (production; or `uvicorn`)."""

    def load() -> Any:
        from deployer.api import serve

        return serve

    serve = _lazy("the HTTP API", load)
    serve(_state(ctx).settings(api_host=host, api_port=port))


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Worker processes/threads (default: CPUs)")
    ] = None,
    pool: Annotated[str, typer.Option(help="prefork, threads or solo")] = "prefork",
    queues: Annotated[
        str,
        typer.Option(
            help="Queues to consume, highest priority first. At scale, give `waiting` (deploys re-polling "
            "a function FC is still starting) workers of its own: --queues high,default,low here and "
            "--queues waiting --pool threads on another; scheduled health checks use `health`."
        ),
    ] = "high,default,low,waiting,health",
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    hostname: Annotated[
        str | None,
        typer.Option(
            "--hostname",
            "-n",
            help="Celery node name (default mcpfc-<pid>@<host>, so several workers on one host never "
            "share one; Celery's %h, %n and %d work).",
        ),
    ] = None,
) -> None:
    """Run a Celery worker (production; or `celery -A tasks worker`)."""
    if pool not in ("prefork", "threads", "solo"):
        raise InputError(f"--pool must be prefork, threads or solo, not {pool!r}")

    def load() -> Any:
        from tasks import app as celery_app

        return celery_app

    celery_app = _lazy("the Celery worker", load)
    # Celery's default node name is celery@<host>: a second worker on the same host then collides on
    # RabbitMQ (the pidbox queue of a node name is exclusive) and dies. The pid makes it unique per host.
    node = hostname or f"mcpfc-{os.getpid()}@%h"
    argv = ["worker", f"--pool={pool}", f"--queues={queues}", f"--loglevel={loglevel}", f"--hostname={node}"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    raise typer.Exit(_run_celery(celery_app, argv))


def _run_celery(celery_app: Any, argv: list[str]) -> int:
    """Celery's own command line, keeping its exit code. `app.worker_main` / `app.start` drop it (click's
    standalone_mode=False returns the code instead of raising), so a worker that could not start (an
    unrecoverable error, e.g. its node name already taken) would exit 0."""
    from celery.bin.celery import celery as celery_cli

    celery_cli.params[0].default = celery_app  # what app.start does: `-A` defaults to this app
    try:
        code = celery_cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    finally:
        celery_cli.params[0].default = None
    return code if isinstance(code, int) else 0


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    data_dir: Annotated[
        Path | None, typer.Option(help="State directory (default: MCPFC_DATA_DIR or ~/.mcp-fc)")
    ] = None,
    demo: Annotated[bool, typer.Option(help="Also deploy a sample MCP server.")] = False,
) -> None:
    """API + worker + local FC emulator in one process: no external services needed."""

    def load() -> Any:
        from deployer.cli.devstack import run_dev

        return run_dev

    code = _lazy("the embedded dev stack", load)(port=port, data_dir=data_dir, demo=demo)
    raise typer.Exit(code or 0)


from deployer.cli import keys as cli_keys  # noqa: E402 - register commands on `app`
from deployer.cli import logs as cli_logs  # noqa: E402 - register commands on `app`
from deployer.cli import reconcile as cli_reconcile  # noqa: E402 - register commands on `app`
from deployer.cli import releases as cli_releases  # noqa: E402 - register commands on `app`

cli_releases.register(app)
cli_keys.register(keys_app)
cli_logs.register(app)
cli_reconcile.register(app)

from deployer.cli import beat as cli_beat  # noqa: E402 - registers beat on `app`

cli_beat.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (`mcp-fc`)."""
    try:
        app(args=argv, prog_name="mcp-fc")
    except MCPFCError as exc:  # raised outside a command (e.g. while building settings)
        raise SystemExit(_fail(exc, []).exit_code) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:
        if os.environ.get("MCPFC_DEBUG"):
            raise
        typer.echo(
            f"error: unexpected {type(exc).__name__}: {exc} (set MCPFC_DEBUG=1 for the traceback)", err=True
        )
        raise SystemExit(EXIT_FAILED) from None


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
