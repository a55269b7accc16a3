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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from celery import Task
from sqlalchemy.exc import SQLAlchemyError

from deployer import store
from deployer.crypto import Vault
from deployer.db import session_scope
from deployer.errors import DeployError, FCError, MCPFCError
from deployer.failure_text import keep_end
from deployer.gateway import FCGateway
from deployer.queue import TIME_LIMIT_S
from deployer.settings import Settings, get_settings
from deployer.tables import DeploymentRow
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


def error_payload(exc: BaseException, step: str) -> dict[str, Any]:
    """The `error` field of a deployment. Messages are ours or FC's, never an SDK dump."""
    if isinstance(exc, FCError):
        return {
            "code": exc.code,
            "message": keep_end(exc.message),
            "retryable": exc.retryable,
            "request_id": exc.request_id,
            "step": step,
        }
    if isinstance(exc, DeployError):
        return {
            "code": exc.code,
            "message": keep_end(exc.message),
            "retryable": exc.retryable,
            "request_id": None,
            "step": exc.step or step,
        }
    if isinstance(exc, MCPFCError):
        return {
            "code": exc.code,
            "message": keep_end(exc.message),
            "retryable": False,
            "request_id": None,
            "step": step,
        }
    # Unexpected: keep the type only; the traceback goes to the worker log.
    return {
        "code": "InternalError",
        "message": f"unexpected {type(exc).__name__} in step {step}",
        "retryable": True,
        "request_id": None,
        "step": step,
    }


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
                    held = store.renew_lease(session, self.deployment_id, self.owner, self.lease_s)
            except Exception:  # noqa: BLE001 - the database may be back at the next tick
                log.warning("lease.renew_failed", extra={"deployment_id": self.deployment_id}, exc_info=True)
                continue
            if not held:
                self.lost = True
                return
            self.renewed = time.monotonic()


class Run:
    """One execution of a task for one deployment."""

    def __init__(self, task: Task, deployment_id: str, expected: set[Status]) -> None:
        self.task = task
        self.deployment_id = deployment_id
        self.task_id: str = task.request.id
        self.execution = execution_id(task)
        self.ctx = context()
        self.expected = expected
        self.keeper: LeaseKeeper | None = None
        self.lease_cleared = False  # a terminal or re-scheduling write cleared the lease in its UPDATE
        self._acquired_row: DeploymentRow | None = None
        # The row's cancel flag as this run last read or wrote it (every guarded write answers it), so
        # checking for a cancel between steps costs no extra read. None: unknown, read the database.
        self.cancel_flag: bool | None = None

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
        """Take the lease, then read the row in the same transaction (so what the run reads is what no
        other run is changing; `load` answers it)."""
        lease_s = self.ctx.settings.lease_s
        with session_scope(self.ctx.settings) as session:
            if not store.acquire_lease(session, self.deployment_id, self.execution, lease_s):
                raise Busy()
            self._acquired_row = store.get(session, self.deployment_id)
        self.keeper = LeaseKeeper(self.ctx.settings, self.deployment_id, self.execution, lease_s).start()

    def _written(self, written: Any) -> bool:
        """Note the cancel flag a guarded write answered; None (no row matched) leaves it unknown."""
        self.cancel_flag = bool(written.cancel_requested) if written else None
        return bool(written)

    def release(self) -> None:
        if self.keeper is not None:
            self.keeper.stop()
            self.keeper = None
        if self.lease_cleared:
            return
        try:
            with session_scope(self.ctx.settings) as session:
                store.release_lease(session, self.deployment_id, self.execution)
        except SQLAlchemyError:
            # The database is down: the lease expires on its own (lease_s) and the next run takes it.
            log.warning("lease.release_failed", extra={"deployment_id": self.deployment_id})

    def check_lease(self) -> None:
        """Between steps: go on only while the lease is ours. A keeper that could not renew in time (a slow
        database) is not proof of loss: take the lease again if it is still ours or nobody took it."""
        if self.keeper is None or not self.keeper.expired():
            return
        if not self.keeper.lost:
            with session_scope(self.ctx.settings) as session:
                if store.acquire_lease(
                    session, self.deployment_id, self.execution, self.ctx.settings.lease_s
                ):
                    self.keeper.renewed = time.monotonic()
                    return
        raise LeaseLost()

    def save(self, **fields: Any) -> bool:
        with session_scope(self.ctx.settings) as session:
            written = store.set_fields_returning(
                session, self.deployment_id, expect_task=self.task_id, expect_lease=self.execution, **fields
            )
        return self._written(written)

    def save_and_release(self, **fields: Any) -> bool:
        """The run's last write before it re-schedules itself: the lease goes in the same UPDATE (a waiting
        deploy re-polls FC every few seconds; one transaction fewer per poll)."""
        self.lease_cleared = self.save(lease_owner=None, lease_until=None, **fields)
        return self.lease_cleared

    def progress(self, stage: str, progress: int, message: str, **fields: Any) -> None:
        with session_scope(self.ctx.settings) as session:
            written = store.set_fields_with_event(
                session,
                self.deployment_id,
                message,
                expect_task=self.task_id,
                expect_lease=self.execution,
                stage=stage,
                progress=progress,
                **fields,
            )
        self._written(written)
        log.info("deploy.progress", extra={"deployment_id": self.deployment_id, "stage": stage})

    def finish(self, status: Status, message: str, **fields: Any) -> bool:
        if status in TERMINAL:
            fields.update(lease_owner=None, lease_until=None)
        with session_scope(self.ctx.settings) as session:
            done = store.transition(
                session,
                self.deployment_id,
                status,
                expect_task=self.task_id,
                expect_lease=self.execution,
                message=message,
                **fields,
            )
        self.lease_cleared = bool(done) and status in TERMINAL
        return self._written(done)

    def fail(self, exc: BaseException, step: str, **fields: Any) -> dict[str, Any]:
        error = error_payload(exc, step)
        if error["code"] == "InternalError":
            log.exception("deploy.internal_error", extra={"deployment_id": self.deployment_id, "step": step})
        else:
            log.warning(
                "deploy.failed",
                extra={"deployment_id": self.deployment_id, "step": step, "code": error["code"]},
            )
        # The event says why too: `mcp-fc events` is where a user watching a deploy sees it fail.
        message = f"failed at {step}: {error['code']}: {error['message']}"
        self.finish(Status.failed, message, stage=step, error=error, **fields)
        return {"status": "failed", "code": error["code"], "step": step}

    def past_deadline(self, row: DeploymentRow) -> bool:
        return row.deadline_at is not None and now() > row.deadline_at
