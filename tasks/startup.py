"""Worker start-up: bring the schema to head before the worker takes tasks or sweeps.

Every process that uses the database migrates at start-up (README), under the same lock as the API
(deployer/store/migrate.py: a PostgreSQL advisory lock, a file lock on SQLite), so a worker started before the
API on a fresh database creates the schema itself instead of failing every sweep with `relation
"deployments" does not exist`. While the database does not answer, the worker waits here, saying so once
(and again every WAIT_LOG_EVERY_S), instead of starting and logging the same failure thousands of times.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.signals import worker_init

from deployer.settings import get_settings
from deployer.store import migrate

log = logging.getLogger("tasks.startup")

RETRY_S = 2.0
WAIT_LOG_EVERY_S = 60.0


def migrate_when_reachable(url: str, *, sleep: Any = time.sleep) -> None:
    """Migrate to head; while the database is unreachable, wait and try again."""
    from sqlalchemy.exc import OperationalError

    last_log = 0.0
    while True:
        try:
            migrate.upgrade(url)
            return
        except OperationalError as exc:
            if time.monotonic() - last_log >= WAIT_LOG_EVERY_S:
                last_log = time.monotonic()
                log.warning(
                    "worker: the database does not answer (%s); waiting for it before taking tasks",
                    type(getattr(exc, "orig", exc)).__name__,
                )
            sleep(RETRY_S)


@worker_init.connect
def migrate_on_start(**_: Any) -> None:
    """In the worker's main process, before the pool forks and before worker_ready starts recovery."""
    settings = get_settings()
    migrate_when_reachable(settings.effective_database_url)
    log.info("worker: database schema at head")
    if settings.probe_enabled:
        # The MCP client (~1 s of imports) is loaded lazily, so that beat and workers that never probe skip it;
        # a worker that verifies deploys loads it here, once, before a prefork pool copies it into each child.
        import deployer.ops.probe  # noqa: F401
