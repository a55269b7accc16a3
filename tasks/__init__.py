"""Celery tasks: the only code that calls Function Compute. `celery -A tasks worker` finds `app` here."""

from tasks import delete, deploy, drift, health, recovery, startup, tokens, verify  # noqa: E402,F401  (tasks, recovery, start-up)
from tasks.app import app

__all__ = ["app"]
