"""The periodic work `celery beat` sends (`mcp-fc beat`, or `celery -A tasks beat`), built from settings.

One entry per kind of periodic work, each with an interval setting of its own (0 leaves it out). Every
entry goes to a queue of its own kind, never one a deploy waits in, and expires after one interval: a
beat that sent while no worker listened does not leave a pile of stale runs for when one comes back.
tasks/beat.py makes sure one beat per fleet sends them, however many run.

To add periodic work: a task (its name in deployer/celery_app.py), an interval in deployer/settings.py, and an
entry below.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from deployer import celery_app as queue
from deployer.settings import Settings


def _every(seconds: float, task: str, queue_name: str) -> dict[str, Any]:
    return {
        "task": task,
        "schedule": timedelta(seconds=seconds),
        "options": {"queue": queue_name, "expires": max(1.0, seconds)},
    }


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery's `beat_schedule`: entry name -> {task, schedule, options}."""
    entries: dict[str, dict[str, Any]] = {}
    if settings.health_interval_s > 0:
        # The sweep runs at the check interval and sends out the deployments that are due (tasks/health.py).
        entries["health-checks"] = _every(
            settings.health_interval_s, queue.HEALTH_SWEEP_TASK, queue.HEALTH_QUEUE
        )
    if settings.drift_check_enabled:
        # One check per succeeded deployment, spread over the interval (tasks/drift.py).
        entries["config-drift"] = _every(
            settings.drift_check_interval_s, queue.DRIFT_SWEEP_TASK, queue.HEALTH_QUEUE
        )
    # Endpoint tokens near expiry: flagged, and rotated when token_auto_rotate (tasks/tokens.py).
    entries["endpoint-token-expiry"] = _every(
        settings.token_check_interval_s, queue.TOKEN_SWEEP_TASK, queue.HEALTH_QUEUE
    )
    return entries
