"""Stuck-deploy recovery: nothing stays pending, running or deleting because its task was lost.

A task can vanish: the embedded file broker drops in-flight messages when a whole worker is SIGKILLed,
Redis forgets its queues when it restarts without persistence, a Redis-backed worker killed with its
messages unacked gets them back only after the visibility timeout (an hour), a retry can fail to
publish, the API can die between committing a row and sending its task. The database row is the truth,
so a loop in every worker looks at the rows instead of at the broker.

A deployment is *stalled* when it is pending, running or deleting, no run holds its lease (a live run
renews it every lease_s/3; a dead one lets it expire), no re-scheduled run is due (the run records
`due_at` before it re-schedules itself) and it has not changed for `recovery_stall_s`. A sweep then:

- fails it with the reason (`DeadlineExceeded`) when it is past its deadline;
- fails it (`TaskLost`) when it has already been re-queued `recovery_max_requeues` times;
- re-queues it otherwise, with the same task id (`deployer.celery_app.enqueue`): the steps are idempotent and
  checkpointed, so the new run resumes where the lost one stopped. It does so only when the
  deployment's queue is empty (else its message may simply be waiting behind others), or once the
  deployment has been stalled five times as long (a queue that never drains must not hide a lost
  message until the deadline).

Every change is a compare-and-set on (task id, status, updated_at, lease free): if a run starts or
anything else moves the row between the sweep's read and its write, the sweep leaves the row alone.
On top of that only one sweep runs at a time across all workers: a PostgreSQL advisory lock (held on
its own connection for the sweep; PostgreSQL drops it if the worker dies), or, on the embedded SQLite
store (one machine), an exclusive `flock` on a file beside the database. Other databases rely on the
compare-and-set alone, which is enough for correctness; the lock (deployer/store/locks.py, which the
migrations use too) only saves duplicate work.

The loop runs in each worker's main process (started on Celery's `worker_ready`, stopped on
`worker_shutdown`): a first sweep right away (a restarted worker cleans up after its dead self), then
every `recovery_interval_s`. It uses its own NullPool engine, so the prefork parent keeps no database
connection that a forked child could inherit. `python -m tasks.recovery` runs one sweep by hand.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from deployer import celery_app as queue
from deployer.errors import error_body
from deployer.settings import Settings, get_settings
from deployer.store import lifecycle
from deployer.store import reads as store
from deployer.store.checkpoint import Checkpoint
from deployer.store.db import normalise_url, session_scope
from deployer.store.locks import exclusive
from deployer.store.tables import DeploymentRow
from schemas import Status

log = logging.getLogger("tasks.recovery")

#: the PostgreSQL advisory lock key of the sweep (an arbitrary constant, fixed for every mcp-fc version).
ADVISORY_LOCK_KEY = 0x3C1B6E0F5A7D2291
#: a stalled deployment is re-queued even behind a busy queue once stalled this many times stall_s.
BACKLOG_FACTOR = 5


@dataclass
class SweepReport:
    """What one sweep did (also returned by `sweep()` for tests and `python -m tasks.recovery`)."""

    locked: bool = True
    looked_at: int = 0
    requeued: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # stalled, but its queue has messages: not yet

    def __bool__(self) -> bool:
        return bool(self.requeued or self.failed)


# -- database access of the loop -------------------------------------------------------------------


@lru_cache(maxsize=4)
def _engine(url: str) -> Engine:
    url = normalise_url(url)
    args: dict[str, Any] = {"poolclass": NullPool}
    if url.startswith("sqlite"):
        args["connect_args"] = {"timeout": 30}
    return create_engine(url, **args)


def _session(settings: Settings) -> AbstractContextManager[Session]:
    return session_scope(engine=_engine(settings.effective_database_url))


@contextmanager
def sweep_lock(settings: Settings) -> Iterator[bool]:
    """True when this process may sweep now; False when another sweep holds the lock."""
    engine = _engine(settings.effective_database_url)
    with exclusive(engine, key=ADVISORY_LOCK_KEY, name="recovery", wait=False) as held:
        yield held.acquired


# -- the broker ------------------------------------------------------------------------------------


def queue_depth(app: Celery, name: str) -> int | None:
    """Messages waiting in a queue (not those a worker holds); None when the broker cannot say."""
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=3)
            channel = conn.default_channel
            size = getattr(channel, "_size", None)
            if callable(size):  # kombu's virtual transports (Redis, filesystem, ...): counts every priority
                return int(size(name))
            return int(channel.queue_declare(queue=name, passive=True).message_count)
    except Exception as exc:  # noqa: BLE001 - unknown depth: the caller treats it as "maybe waiting"
        log.info("recovery: depth of queue %s unknown: %s", name, type(exc).__name__)
        return None


# -- one sweep -------------------------------------------------------------------------------------


def _task_for(row: DeploymentRow) -> str:
    return queue.DELETE_TASK if row.status == Status.deleting.value else queue.DEPLOY_TASK


def _idle_since(row: DeploymentRow) -> datetime:
    """The last sign of life: a change of the row, the end of a lease, or a re-scheduled run's due time."""
    moments = [row.updated_at]
    if row.lease_until is not None:
        moments.append(row.lease_until)
    due = Checkpoint.from_json(row.checkpoint).due_at
    if isinstance(due, int | float):
        moments.append(datetime.fromtimestamp(due, UTC))
    return max(moments)


def _error(code: str, message: str, row: DeploymentRow) -> dict[str, Any]:
    return error_body(code, message, step=row.stage or "queued", retryable=True)


def sweep(settings: Settings, app: Celery, *, now: datetime | None = None) -> SweepReport:
    """Look at stalled deployments once: re-queue them, or fail them with the reason."""
    report = SweepReport()
    with sweep_lock(settings) as locked:
        if not locked:
            report.locked = False
            return report
        now = now or datetime.now(UTC)
        stall = timedelta(seconds=settings.recovery_stall_s)
        depths: dict[str, int | None] = {}
        with _session(settings) as session:
            rows = store.unleased_idle(session, idle_before=now - stall, now=now)
            for row in rows:
                session.expunge(row)
        for row in rows:
            report.looked_at += 1
            past_deadline = row.deadline_at is not None and row.deadline_at < now
            idle = now - _idle_since(row)
            if not past_deadline and idle < stall:
                continue  # a re-scheduled run is due later
            recovered = int(Checkpoint.from_json(row.checkpoint).recovered)
            where = f"last stage: {row.stage or 'queued'}"
            if past_deadline:
                message = (
                    f"not done within {settings.deploy_deadline_s:.0f} s and no worker is running it "
                    f"({where}); failed by the stuck-deploy recovery"
                )
                _fail(settings, row, now, report, _error("DeadlineExceeded", message, row))
                continue
            if recovered >= settings.recovery_max_requeues:
                message = (
                    f"its task was lost {recovered + 1} times ({where}); failed by the stuck-deploy "
                    "recovery; deploy it again"
                )
                _fail(settings, row, now, report, _error("TaskLost", message, row))
                continue
            queue_name = queue.PRIORITY_QUEUE.get(store.priority_of(row), "default")
            if queue_name not in depths:
                depths[queue_name] = queue_depth(app, queue_name)
            depth = depths[queue_name]
            if depth != 0 and idle < stall * BACKLOG_FACTOR:
                report.waiting.append(row.id)
                continue
            _requeue(settings, app, row, now, recovered + 1, idle, report)
    if report:
        log.warning(
            "recovery: re-queued %d, failed %d",
            len(report.requeued),
            len(report.failed),
            extra={"requeued": report.requeued, "failed": [i for i, _ in report.failed]},
        )
    return report


def _fail(
    settings: Settings, row: DeploymentRow, now: datetime, report: SweepReport, error: dict[str, Any]
) -> None:
    with _session(settings) as session:
        if lifecycle.fail_stuck(session, row, now=now, error=error, message=f"recovery: {error['code']}"):
            report.failed.append((row.id, error["code"]))


def _requeue(
    settings: Settings,
    app: Celery,
    row: DeploymentRow,
    now: datetime,
    count: int,
    idle: timedelta,
    report: SweepReport,
) -> None:
    message = (
        f"recovery: re-queued {row.operation} (no live run for {idle.total_seconds():.0f} s, "
        f"re-queue {count} of at most {settings.recovery_max_requeues})"
    )
    with _session(settings) as session:
        if not lifecycle.claim_requeue(session, row, now=now, count=count, message=message):
            return
    try:
        queue.enqueue(
            app,
            task=_task_for(row),
            deployment_id=row.id,
            task_id=row.task_id or "",
            priority=store.priority_of(row),
        )
    except Exception as exc:  # noqa: BLE001 - broker down: the row stays stalled, the next sweeps retry
        log.warning("recovery: re-queue of %s failed: %s", row.id, type(exc).__name__)
        return
    report.requeued.append(row.id)


# -- the loop in the worker ------------------------------------------------------------------------


class RecoveryLoop:
    """A daemon thread: a sweep at once, then one every interval (with ±10% jitter so workers spread)."""

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.sweeps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mcpfc-recovery", daemon=True)

    def start(self) -> RecoveryLoop:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        interval = self.settings.recovery_interval_s
        wait = 0.0
        while not self._stop.wait(wait):
            try:
                sweep(self.settings, self.app)
            except Exception:  # noqa: BLE001 - a database or broker outage: try again next time
                log.warning("recovery: sweep failed", exc_info=True)
            self.sweeps += 1
            wait = interval * random.uniform(0.9, 1.1)


_loop: RecoveryLoop | None = None


@worker_ready.connect
def start_recovery(sender: Any = None, **_: Any) -> None:
    global _loop
    settings = get_settings()
    if not settings.recovery_enabled or _loop is not None:
        return
    from tasks.app import app

    _loop = RecoveryLoop(app, settings).start()
    log.info(
        "recovery: sweeping every %.0f s (stall %.0f s, lease %.0f s) in pid %d",
        settings.recovery_interval_s,
        settings.recovery_stall_s,
        settings.lease_s,
        os.getpid(),
    )


@worker_shutdown.connect
def stop_recovery(**_: Any) -> None:
    global _loop
    if _loop is not None:
        _loop.stop()
        _loop = None


def main() -> int:  # pragma: no cover - a manual tool
    from tasks.app import app

    logging.basicConfig(level=logging.INFO)
    report = sweep(get_settings(), app)
    print(
        f"locked={report.locked} looked_at={report.looked_at} requeued={report.requeued} "
        f"failed={report.failed} waiting={report.waiting}"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
