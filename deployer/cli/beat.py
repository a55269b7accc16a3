"""`mcp-fc beat`: the periodic scheduler (`celery -A tasks beat` with our scheduler), registered by
deployer/cli/main.py.

Run one per fleet, beside the workers. A second one is harmless: it stands by until the first ends
(tasks/beat.py). The entries and their intervals come from settings (tasks/schedule.py).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    from deployer.cli import main as cli

    @app.command()
    def beat(
        loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    ) -> None:
        """Run the periodic scheduler: health checks and the other scheduled work (one per fleet)."""

        def load() -> Any:
            from tasks import app as celery_app

            return celery_app

        celery_app = cli._lazy("the beat", load)
        raise typer.Exit(cli._run_celery(celery_app, ["beat", f"--loglevel={loglevel}"]))
