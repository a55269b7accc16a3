"""The beat entries of issue 15 items 4 and 5, for the schedule in tasks/schedule.py.

``ops_schedule(settings)`` gives Celery ``beat_schedule`` entries: the config drift sweep every
``drift_check_interval_s`` (off with ``MCPFC_DRIFT_CHECK_ENABLED=false``) and the endpoint token check every
``token_check_interval_s``. Merge it into the one schedule: ``beat_schedule = {**health, **ops_schedule(s)}``.
Both sweeps are harmless when run twice (each check takes the deployment's lease and records what it saw),
so a second beat wastes FC reads but never doubles a write.
"""

from __future__ import annotations

from typing import Any

from deployer.settings import Settings
from tasks.drift import DRIFT_SWEEP_TASK, OPS_QUEUE
from tasks.tokens import TOKEN_SWEEP_TASK


def ops_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    if settings.drift_check_enabled:
        entries["config-drift"] = {
            "task": DRIFT_SWEEP_TASK,
            "schedule": settings.drift_check_interval_s,
            "options": {"queue": OPS_QUEUE, "expires": settings.drift_check_interval_s},
        }
    entries["endpoint-token-expiry"] = {
        "task": TOKEN_SWEEP_TASK,
        "schedule": settings.token_check_interval_s,
        "options": {"queue": OPS_QUEUE, "expires": settings.token_check_interval_s},
    }
    return entries
