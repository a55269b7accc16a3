"""Celery tasks: the only code that calls Function Compute. `celery -A tasks worker` finds `app` here."""

from tasks import delete, deploy, recovery  # noqa: E402,F401  (registers the tasks and the recovery loop)
from tasks.app import app

__all__ = ["app"]
