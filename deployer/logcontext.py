"""The deployment id on every log record of a run, without every call passing it.

`deployment_logs(id)` (tasks.context.LeasedTask wraps each run in it) sets a context variable;
`DeploymentIdFilter`, on the worker's handlers (tasks/app.py installs it when Celery sets up logging),
copies it onto each record that does not name a deployment itself. A filter rather than a record factory:
a factory's attribute would clash with the `extra={"deployment_id": ...}` many calls pass.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("mcpfc_deployment_id", default=None)


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
    """Sets record.deployment_id from the run in progress (None outside one); never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "deployment_id", None) is None:
            record.deployment_id = _current.get()
        return True


_FILTER = DeploymentIdFilter()


def install(logger: logging.Logger) -> None:
    """Put the filter on each of the logger's handlers (once): a handler sees the records of every
    logger below it, which a filter on one logger would not."""
    for handler in logger.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
