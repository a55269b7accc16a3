"""The Celery application the worker runs (`celery -A tasks worker`), configured from settings; `celery -A
tasks beat` (or `mcp-fc beat`) sends the periodic work of tasks/schedule.py with tasks/beat.py's scheduler."""

import logging
from typing import Any

from celery.signals import after_setup_logger, after_setup_task_logger

from deployer import logcontext
from deployer.celery_app import make_celery
from deployer.settings import get_settings
from tasks.schedule import beat_schedule

app = make_celery(main="mcpfc")
app.conf.include = [
    "tasks.deploy",
    "tasks.delete",
    "tasks.recovery",
    "tasks.verify",
    "tasks.health",
    "tasks.drift",
    "tasks.tokens",
]
app.conf.beat_schedule = beat_schedule(get_settings())
app.conf.beat_scheduler = "tasks.beat:LeaderScheduler"
# Every line the worker (and beat) writes says which deployment it is about: `[deployment=<id>]`.
app.conf.worker_log_format = logcontext.WORKER_LOG_FORMAT
app.conf.worker_task_log_format = logcontext.WORKER_TASK_LOG_FORMAT


@after_setup_logger.connect
@after_setup_task_logger.connect
def _deployment_id_on_records(logger: logging.Logger | None = None, **_: Any) -> None:
    """Every record a worker's handlers write during a run carries its deployment id."""
    logcontext.install(logging.getLogger())
    if logger is not None:
        logcontext.install(logger)
