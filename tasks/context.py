"""What every task run shares: per-process clients, the row it works on, and how it ends.

A task message carries a deployment id only. A run takes the deployment's lease (two runs never interleave
FC calls for one deployment), then loads the row and checks that it is still the current task for it (a
redeploy or delete replaces the task id, so stale messages do nothing), and writes every step to the row
before moving on, so a redelivered message resumes where the last run stopped.

The lease is short (settings.lease_s) and a keeper thread renews it while the run lives, so a dead run
(a SIGKILLed worker, a lost task) lets go within lease_s and tasks/recovery.py can re-queue its work.
Every write of a run is conditional on its lease: a run that lost it (a hang past the hard time limit,
a database outage longer than the lease) can no longer write, and stops at its next step.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NoReturn

from celery import Task
from sqlalchemy.exc import SQLAlchemyError

from deployer.celery_app import TIME_LIMIT_S
from deployer.crypto import Vault
from deployer.fc.gateway import FCGateway
from deployer.logcontext import deployment_logs
from deployer.settings import Settings, get_settings
from deployer.store import lifecycle
from deployer.store import reads as store
from deployer.store.checkpoint import Checkpoint
from deployer.store.db import session_scope
from deployer.store.run_writes import RunWrites
from deployer.store.tables import DeploymentRow
from schemas import MASK, TERMINAL, Status

log = logging.getLogger("tasks")

# A keeper stops renewing after this long, so a run hung past the hard time limit (or in a pool that does
# not enforce time limits, e.g. threads) lets its lease expire and recovery can take over.
MAX_RUN_S = TIME_LIMIT_S + 30


@dataclass
class WorkerContext:
    settings: Settings
    vault: Vault
    gateway: FCGateway  # the default region's (settings.region)
    _gateways: dict[str, FCGateway] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def gateway_for(self, region: str | None) -> FCGateway:
        """The gateway (SDK client, endpoint, rate limiter) of a deployment's own region, one per region and
        process, built on first use: a deploy to ap-southeast-1 must never land in the default region."""
        if not region or region == self.settings.region:
            return self.gateway
        with self._lock:
            gateway = self._gateways.get(region)
            if gateway is None:
                gateway = self._gateways[region] = FCGateway.from_settings(self.settings, region=region)
            return gateway


@lru_cache(maxsize=1)
def context() -> WorkerContext:
    """Built on first use in each worker process (after the prefork fork)."""
    settings = get_settings()
    return WorkerContext(
        settings=settings, vault=Vault.from_settings(settings), gateway=FCGateway.from_settings(settings)
    )


def execution_id(task: Task) -> str:
    """Unique per run and at most 64 characters (the lease_owner column): a long host name (a Kubernetes pod)
    must not make PostgreSQL refuse the lease."""
    return f"{task.request.id}:{secrets.token_hex(4)}:{os.getpid()}@{socket.gethostname()}"[:64]


def mask_result(result: dict[str, Any] | None, secret_keys: set[str]) -> dict[str, Any] | None:
    """The SDK's to_map() shape with secret env values replaced by *** (the stored function_result)."""
    if not result or not secret_keys:
        return result
    body = dict(result.get("body") or {})
    env = body.get("environmentVariables")
    if isinstance(env, dict):
        body["environmentVariables"] = {k: (MASK if k in secret_keys else v) for k, v in env.items()}
    return {**result, "body": body}


#: A run that met a database error runs again this much later (the same message, re-published by Celery).
DB_RETRY_S = 15


def log_database_error(deployment_id: str, exc: BaseException) -> None:
    log.warning(
        "deploy.database_error",
        extra={"deployment_id": deployment_id, "error": type(getattr(exc, "orig", None) or exc).__name__},
    )


def database_retry(task: Task, deployment_id: str, exc: BaseException) -> BaseException:
    """The Retry to raise when the database failed before the run could start: never an acknowledged
    failure. The countdown is short, as nothing was recorded for the recovery sweep to wait on."""
    log_database_error(deployment_id, exc)
    return task.retry(countdown=DB_RETRY_S, exc=None)


def now() -> datetime:
    return datetime.now(UTC)


class Superseded(Exception):
    """This message is not the deployment's current task (or the deployment is gone)."""


class Busy(Exception):
    """Another run holds the deployment's lease."""


class LeaseLost(Exception):
    """This run no longer holds the deployment's lease: it must stop without writing."""


class LeaseKeeper:
    """Renews a run's lease every lease_s/3 from a daemon thread, until stopped or MAX_RUN_S has passed.

    `lost` turns true when the lease is gone (taken over after expiry) or could not be renewed for a whole
    lease period (database unreachable); the run checks it between steps.
    """

    def __init__(self, settings: Settings, deployment_id: str, owner: str, lease_s: float) -> None:
        self.settings = settings
        self.deployment_id = deployment_id
        self.owner = owner
        self.lease_s = lease_s
        self.started = time.monotonic()
        self.renewed = self.started
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{deployment_id}", daemon=True)

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def expired(self) -> bool:
        return self.lost or time.monotonic() - self.renewed > self.lease_s

    def _loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            if time.monotonic() - self.started > MAX_RUN_S:
                log.warning("lease.given_up", extra={"deployment_id": self.deployment_id})
                return
            try:
                with session_scope(self.settings) as session:
                    held = lifecycle.renew_lease(session, self.deployment_id, self.owner, self.lease_s)
            except Exception:  # noqa: BLE001 - the database may be back at the next tick
                log.warning("lease.renew_failed", extra={"deployment_id": self.deployment_id}, exc_info=True)
                continue
            if not held:
                self.lost = True
                return
            self.renewed = time.monotonic()


class Run(RunWrites):
    """One execution of a task for one deployment: its guarded writes (deployer.store.run_writes.RunWrites), and
    the lease keeper and row checks around them."""

    def __init__(self, task: Task, deployment_id: str, expected: set[Status]) -> None:
        self.task = task
        self.ctx = context()
        super().__init__(self.ctx.settings, deployment_id, task.request.id, execution_id(task))
        self.expected = expected
        self.keeper: LeaseKeeper | None = None
        self._acquired_row: DeploymentRow | None = None

    def load(self) -> DeploymentRow:
        row, self._acquired_row = self._acquired_row, None
        if row is None:
            with session_scope(self.ctx.settings) as session:
                row = store.get(session, self.deployment_id)
        if row is None or row.task_id != self.task_id:
            raise Superseded()
        if Status(row.status) in TERMINAL or Status(row.status) not in self.expected:
            raise Superseded()
        self.cancel_flag = bool(row.cancel_requested)
        return row

    def acquire(self) -> None:
        """Take the lease and read the row (`load` answers it), then keep the lease while the run lives."""
        row = self.take_lease()
        if row is None:
            raise Busy()
        self._acquired_row = row
        self.keeper = LeaseKeeper(
            self.ctx.settings, self.deployment_id, self.execution, self.settings.lease_s
        )
        self.keeper.start()

    def release(self) -> None:
        if self.keeper is not None:
            self.keeper.stop()
            self.keeper = None
        try:
            self.hand_back()
        except SQLAlchemyError:
            # The database is down: the lease expires on its own (lease_s) and the next run takes it.
            log.warning("lease.release_failed", extra={"deployment_id": self.deployment_id})

    def check_lease(self) -> None:
        """Between steps: go on only while the lease is ours. A keeper that could not renew in time (a slow
        database) is not proof of loss: take the lease again if it is still ours or nobody took it."""
        if self.keeper is None or not self.keeper.expired():
            return
        if not self.keeper.lost and self.retake_lease():
            self.keeper.renewed = time.monotonic()
            return
        raise LeaseLost()

    def reschedule_in(self, checkpoint: Checkpoint, countdown: float, queue: str | None = None) -> NoReturn:
        """Record when the next run is due and hand the lease back, then re-schedule (LeasedTask does)."""
        self.reschedule(checkpoint, countdown, now=time.time())
        raise Reschedule(countdown, queue)

    def past_deadline(self, row: DeploymentRow) -> bool:
        return row.deadline_at is not None and now() > row.deadline_at


class Reschedule(Exception):
    """Run again in `countdown` seconds (from `queue`, else the queue this run came from)."""

    def __init__(self, countdown: float, queue: str | None = None) -> None:
        self.countdown = countdown
        self.queue = queue


class LeasedTask(Task):
    """The Celery base class of the deploy and delete tasks: one run under the deployment's lease.

    `leased(deployment_id, steps)` takes the lease (another run holds it: retry in 2 s; the database is
    away: retry without acknowledging a failure), loads the row (a stale message does nothing), calls
    steps(run, row) with the deployment id on every log record, and always hands the lease back before
    a re-schedule is published, so the next run never finds its own lease taken.
    """

    #: the statuses a run of this task works on (anything else: the message is stale).
    expected: frozenset[Status] = frozenset()

    def leased(
        self, deployment_id: str, steps: Callable[[Run, DeploymentRow], dict[str, Any]]
    ) -> dict[str, Any]:
        with deployment_logs(deployment_id):
            return self._leased(deployment_id, steps)

    def _leased(
        self, deployment_id: str, steps: Callable[[Run, DeploymentRow], dict[str, Any]]
    ) -> dict[str, Any]:
        run = Run(self, deployment_id, expected=set(self.expected))
        try:
            run.acquire()
        except Busy:
            raise self.retry(countdown=2) from None
        except SQLAlchemyError as exc:
            # The database is away: the message must not be acknowledged as a failure (the deployment
            # would wait for the recovery sweep and spend one of its re-queues). Run again once it may be back.
            raise database_retry(self, deployment_id, exc) from None
        countdown: float | None = None
        queue: str | None = None
        try:
            return steps(run, run.load())
        except Superseded:
            return {"status": "superseded"}
        except LeaseLost:
            log.warning("deploy.lease_lost", extra={"deployment_id": deployment_id})
            return {"status": "lease-lost"}
        except Reschedule as again:
            countdown, queue = again.countdown, again.queue
        except SQLAlchemyError as exc:
            # Anywhere in a run (starting, a step's checkpoint, recording a failure or a re-schedule): the
            # steps are idempotent, so the next run redoes what this one could not record.
            log_database_error(deployment_id, exc)
            countdown = DB_RETRY_S
        finally:
            run.release()
        raise self.retry(countdown=countdown, queue=queue)
