"""What every `mcp-fc` command shares (as celery/bin/base.py is to Celery's commands): the exit codes, the
error-to-exit-code handling, `State` (settings, the API client, secrets to keep out of output), the shared
options and the wait/follow helpers of the commands that start a run.

Command modules import this module and never `main.py`; `main.py` imports them and registers every command.

Exit codes: 0 success, 1 deployment failed, 2 usage or validation error, 3 service unreachable.
Errors are one line on standard error, `error: ...`.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from typer.core import TyperCommand, TyperGroup

from deployer.cli import render
from deployer.cli.input import InputError, field_errors, redact
from deployer.client import APIClient, APIError, ServiceUnreachable
from deployer.errors import ConfigError, DeploymentFailed, MCPFCError, SpecError
from deployer.settings import Settings
from schemas import TERMINAL, Deployment, Status

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
#: `ctx.meta` key of the MCP server's argv, the words after `--` (PassthroughCommand).
SERVER_CMD = "mcpfc.server_cmd"
WAIT_POLL_S = 20.0


# -- error handling -------------------------------------------------------------------------------


def exit_code(exc: MCPFCError) -> int:
    """The contract's exit code for one of our errors."""
    if isinstance(exc, DeploymentFailed):
        return EXIT_FAILED
    if isinstance(exc, ServiceUnreachable):
        return EXIT_UNREACHABLE
    if isinstance(exc, APIError):
        return EXIT_UNREACHABLE if exc.unavailable else EXIT_USAGE
    if isinstance(exc, InputError | ConfigError | SpecError):
        return EXIT_USAGE
    return EXIT_FAILED


def error_message(exc: MCPFCError, key_source: str | None = None) -> str:
    """The `error: ...` line's text; an API refusal of the key says where the key came from."""
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


def fail(exc: MCPFCError, secrets: list[str], key_source: str | None = None) -> typer.Exit:
    """Print the one `error:` line (secrets redacted) and return the Exit to raise."""
    message = " ".join(redact(error_message(exc, key_source), secrets).split())
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(exit_code(exc))


class CLIGroup(TyperGroup):
    """Turns our exceptions into one `error: ...` line and the contract's exit code (for every command,
    under `main()` and under test runners alike). Typer's own usage errors keep their exit 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except MCPFCError as exc:
            state = ctx.obj if isinstance(ctx.obj, State) else None
            raise fail(exc, state.secrets if state else [], state.key_source if state else None) from None
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
            self.refuse_extra(ctx, shlex.join(ctx.args), after_cut=cut is not None)
        return rest

    @staticmethod
    def refuse_extra(ctx: Any, extra: str, *, after_cut: bool) -> None:
        """A usage error (exit 2) that says where the stray words go."""
        if not after_cut:
            example = "NAME --image IMAGE" if ctx.info_name == "deploy" else "NAME"
            ctx.fail(  # typer's own click: a usage error, exit 2
                f"unexpected argument(s) {extra}: put the MCP server's command after `--`, as in "
                f"`{ctx.command_path} {example} -- {extra}`"
            )
        ctx.fail(
            f"unexpected argument(s) {extra} before `--`: only NAME and options go before `--`, "
            "the MCP server's command after it"
        )

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "[-- SERVER_CMD [ARGS]...]"]


def hide_flag_types() -> None:
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


def get_state(ctx: typer.Context) -> State:
    """The invocation's State, kept on the root context (created on first use)."""
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def remember_secrets(state: State, *maps: dict[str, Any] | None) -> None:
    """Secret values the user gave: redacted from any error line."""
    for mapping in maps:
        if isinstance(mapping, dict):
            state.secrets.extend(str(v) for v in mapping.values() if v is not None)


# -- shared options -------------------------------------------------------------------------------

ApiUrl = Annotated[
    str | None,
    typer.Option("--api-url", help="mcp-fc API base URL (env MCPFC_API_URL; default http://127.0.0.1:8000)"),
]
ApiKey = Annotated[
    str | None, typer.Option("--api-key", help="API key (env MCPFC_API_KEY)", show_default=False)
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON only (progress, if any, goes to stderr).")]
NoWait = Annotated[bool, typer.Option("--no-wait", help="Return once the API has accepted the request.")]
NameOrId = Annotated[
    str, typer.Argument(metavar="NAME|ID", help="Deployment name or id.", show_default=False)
]


# -- waiting --------------------------------------------------------------------------------------


def wait(
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


def finish_deploy(state: State, dep: Deployment, *, json_out: bool, verb: str, started: float | None) -> None:
    """Report a finished run: the deployment (--json) or success; a failure raises (exit 1). `started`
    None: no run was started (a deploy that changed nothing), so no time is shown."""
    if json_out:
        typer.echo(render.deployment_json(dep))
    if dep.status != Status.succeeded:
        raise DeploymentFailed(render.error_line(dep))
    if not json_out:
        elapsed = time.monotonic() - started if started is not None else None
        render.print_success(state.out, dep, verb=verb, elapsed=elapsed)


def follow(
    state: State,
    api: APIClient,
    dep: Deployment,
    *,
    no_wait: bool,
    json_out: bool,
    what: str,
    verb: str,
    started: float | None,
) -> Deployment:
    """After a 202: report it (--no-wait), or wait for the end and report success or failure."""
    if no_wait:
        accepted(state, dep, json_out=json_out, what=what)
        return dep
    dep = wait(state, api, dep, lambda d: d.status in TERMINAL, json_out=json_out)
    finish_deploy(state, dep, json_out=json_out, verb=verb, started=started)
    return dep


def accepted(state: State, dep: Deployment, *, json_out: bool, what: str) -> None:
    """What --no-wait prints: the deployment (--json), or one line and how to follow it."""
    if json_out:
        typer.echo(render.deployment_json(dep))
        return
    typer.echo(f"{what} {dep.name} (id {dep.id}): {dep.status.value}")
    typer.echo(f"follow it with: mcp-fc status {dep.name}", err=True)
