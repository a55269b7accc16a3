"""The deployment id on every log record of a run, and on every line the worker writes.

`deployment_logs(id)` (tasks.context.LeasedTask wraps each run in it) sets a context variable;
`DeploymentIdFilter`, on the worker's handlers (tasks/app.py installs it when Celery sets up logging),
copies it onto each record that does not name a deployment itself. A filter rather than a record factory:
a factory's attribute would clash with the `extra={"deployment_id": ...}` many calls pass.

The worker's formats (`WORKER_LOG_FORMAT`, `WORKER_TASK_LOG_FORMAT`, Celery's own with the id added) print
it as `[deployment=<id>]`, `-` outside a run, from the record's `deployment` attribute: the filter sets it
from `deployment_id`, and `install` makes every record carry a `-` from the start, so a handler without
the filter (Celery's multiprocessing logger) still formats the line.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("mcpfc_deployment_id", default=None)

#: What a line says when no deployment is in progress.
NO_DEPLOYMENT = "-"
#: Celery's worker_log_format and worker_task_log_format, with the deployment.
WORKER_LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] [deployment=%(deployment)s] %(message)s"
WORKER_TASK_LOG_FORMAT = (
    "[%(asctime)s: %(levelname)s/%(processName)s] [deployment=%(deployment)s] "
    "%(task_name)s[%(task_id)s]: %(message)s"
)


def current_deployment() -> str | None:
    return _current.get()


@contextmanager
def deployment_logs(deployment_id: str) -> Iterator[None]:
    token = _current.set(deployment_id)
    try:
        yield
    finally:
        _current.reset(token)


class DeploymentIdFilter(logging.Filter):
    """Sets record.deployment_id from the run in progress (None outside one), and record.deployment (what
    the formats print: the id, or `-`); never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "deployment_id", None) is None:
            record.deployment_id = _current.get()
        record.deployment = record.deployment_id or NO_DEPLOYMENT
        return True


_FILTER = DeploymentIdFilter()


class _Factory:
    """The record factory that gives each record `deployment` = `-` before any filter ran."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        record.deployment = NO_DEPLOYMENT
        return record


def install(logger: logging.Logger) -> None:
    """Put the filter on each of the logger's handlers (once): a handler sees the records of every
    logger below it, which a filter on one logger would not. Every record gets a default `deployment`."""
    if not isinstance(logging.getLogRecordFactory(), _Factory):
        logging.setLogRecordFactory(_Factory(logging.getLogRecordFactory()))
    for handler in logger.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
