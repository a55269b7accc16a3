"""The server-side commands: `api`, `worker`, `beat`, `dev` and `emulator` run the service (or a part of it)
on this host; they do not talk to an mcp-fc API.

Each loads what it runs only when it runs, so an installation without a part still runs the others: the
service image has no FC emulator (`fc_emulator`), and `mcp-fc api` must start there. The worker and the
beat run Celery's own command line on the Celery app named by string (`-A tasks`), as `celery -A tasks
worker` does: deployer never imports the worker's package.

`beat` runs the periodic scheduler (`celery -A tasks beat` with our scheduler). Run one per fleet, beside
the workers. A second one is harmless: it stands by until the first ends (tasks/beat.py). The entries and
their intervals come from settings (tasks/schedule.py).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from deployer.cli.base import get_state
from deployer.cli.input import InputError
from deployer.errors import ConfigError

#: The Celery app, by module name: `celery -A tasks` finds `tasks.app`.
CELERY_APP = "tasks"
POOLS = ("prefork", "threads", "solo")


def lazy(what: str, importer: Callable[[], Any]) -> Any:
    """What `importer` loads, or a usage error (exit 2) naming the part this installation lacks."""
    try:
        return importer()
    except ImportError as exc:
        raise ConfigError(f"{what} is not available in this installation ({exc})") from None


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

    lazy("the FC emulator", load)(
        host=host, port=port, pending_seconds=pending_seconds, state_file=state_file
    )


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

    serve = lazy("the HTTP API", load)
    serve(get_state(ctx).settings(api_host=host, api_port=port))


QueuesOpt = Annotated[
    str,
    typer.Option(
        help="Queues to consume, highest priority first. At scale, give `waiting` (deploys re-polling "
        "a function FC is still starting) workers of its own: --queues high,default,low here and "
        "--queues waiting --pool threads on another; scheduled health checks use `health`."
    ),
]
HostnameOpt = Annotated[
    str | None,
    typer.Option(
        "--hostname",
        "-n",
        help="Celery node name (default mcpfc-<pid>@<host>, so several workers on one host never "
        "share one; Celery's %h, %n and %d work).",
    ),
]


def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Worker processes/threads (default: CPUs)")
    ] = None,
    pool: Annotated[str, typer.Option(help="prefork, threads or solo")] = "prefork",
    queues: QueuesOpt = "high,default,low,waiting,health,build",
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    hostname: HostnameOpt = None,
) -> None:
    """Run a Celery worker (production; or `celery -A tasks worker`)."""
    if pool not in POOLS:
        raise InputError(f"--pool must be prefork, threads or solo, not {pool!r}")
    celery_cli = celery_command("the Celery worker")
    # Celery's default node name is celery@<host>: a second worker on the same host then collides on
    # RabbitMQ (the pidbox queue of a node name is exclusive) and dies. The pid makes it unique per host.
    node = hostname or f"mcpfc-{os.getpid()}@%h"
    argv = ["worker", f"--pool={pool}", f"--queues={queues}", f"--loglevel={loglevel}", f"--hostname={node}"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    raise typer.Exit(run_celery(celery_cli, argv))


def beat(
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run the periodic scheduler: health checks and the other scheduled work (one per fleet)."""
    celery_cli = celery_command("the beat")
    raise typer.Exit(run_celery(celery_cli, ["beat", f"--loglevel={loglevel}"]))


def celery_command(what: str) -> Any:
    """Celery's own command line (a click group), once we know the app it will load is installed."""

    def load() -> Any:
        if importlib.util.find_spec(CELERY_APP) is None:  # located, not imported
            raise ImportError(f"No module named {CELERY_APP!r}")
        from celery.bin.celery import celery

        return celery

    return lazy(what, load)


def run_celery(celery_cli: Any, argv: list[str]) -> int:
    """`celery -A tasks ARGV...`, keeping its exit code. `app.worker_main` / `app.start` drop it (click's
    standalone_mode=False returns the code instead of raising), so a worker that could not start (an
    unrecoverable error, e.g. its node name already taken) would exit 0."""
    try:
        code = celery_cli.main(args=["-A", CELERY_APP, *argv], standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    return code if isinstance(code, int) else 0


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

    code = lazy("the embedded dev stack", load)(port=port, data_dir=data_dir, demo=demo)
    raise typer.Exit(code or 0)
