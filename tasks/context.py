"""What every task run shares: per-process clients, the row it works on, and how it ends.

A task message carries a deployment id only. A run loads the row, checks that it is still the current
task for it (a redeploy or delete replaces the task id, so stale messages do nothing), takes the
deployment's lease (two runs never interleave FC calls for one deployment), and writes every step
to the row before moving on, so a redelivered message resumes where the last run stopped.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from celery import Task

from deployer import store
from deployer.crypto import Vault
from deployer.db import session_scope
from deployer.errors import DeployError, FCError, MCPFCError
from deployer.gateway import FCGateway
from deployer.queue import TIME_LIMIT_S
from deployer.settings import Settings, get_settings
from deployer.tables import DeploymentRow
from schemas import MASK, TERMINAL, Status

log = logging.getLogger("tasks")

LEASE_S = TIME_LIMIT_S + 30


@dataclass
class WorkerContext:
    settings: Settings
    vault: Vault
    gateway: FCGateway


@lru_cache(maxsize=1)
def context() -> WorkerContext:
    """Built on first use in each worker process (after the prefork fork)."""
    settings = get_settings()
    return WorkerContext(settings=settings, vault=Vault.from_settings(settings), gateway=FCGateway.from_settings(settings))


def execution_id(task: Task) -> str:
    return f"{task.request.id}:{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def error_payload(exc: BaseException, step: str) -> dict[str, Any]:
    """The `error` field of a deployment. Messages are ours or FC's, never an SDK dump."""
    if isinstance(exc, FCError):
        return {
            "code": exc.code,
            "message": exc.message,
            "retryable": exc.retryable,
            "request_id": exc.request_id,
            "step": step,
        }
    if isinstance(exc, DeployError):
        return {"code": exc.code, "message": exc.message, "retryable": exc.retryable, "request_id": None,
                "step": exc.step or step}
    if isinstance(exc, MCPFCError):
        return {"code": exc.code, "message": exc.message, "retryable": False, "request_id": None, "step": step}
    # Unexpected: keep the type only; the traceback goes to the worker log.
    return {"code": "InternalError", "message": f"unexpected {type(exc).__name__} in step {step}",
            "retryable": True, "request_id": None, "step": step}


def mask_result(result: dict[str, Any] | None, secret_keys: set[str]) -> dict[str, Any] | None:
    """The SDK's to_map() shape with secret env values replaced by *** (the stored function_result)."""
    if not result or not secret_keys:
        return result
    body = dict(result.get("body") or {})
    env = body.get("environmentVariables")
    if isinstance(env, dict):
        body["environmentVariables"] = {k: (MASK if k in secret_keys else v) for k, v in env.items()}
    return {**result, "body": body}


def now() -> datetime:
    return datetime.now(UTC)


class Superseded(Exception):
    """This message is not the deployment's current task (or the deployment is gone)."""


class Busy(Exception):
    """Another run holds the deployment's lease."""


class Run:
    """One execution of a task for one deployment."""

    def __init__(self, task: Task, deployment_id: str, expected: set[Status]) -> None:
        self.task = task
        self.deployment_id = deployment_id
        self.task_id: str = task.request.id
        self.execution = execution_id(task)
        self.ctx = context()
        self.expected = expected

    def load(self) -> DeploymentRow:
        with session_scope(self.ctx.settings) as session:
            row = store.get(session, self.deployment_id)
            if row is None or row.task_id != self.task_id:
                raise Superseded()
            if Status(row.status) in TERMINAL or Status(row.status) not in self.expected:
                raise Superseded()
            return row

    def acquire(self) -> None:
        with session_scope(self.ctx.settings) as session:
            if not store.acquire_lease(session, self.deployment_id, self.execution, LEASE_S):
                raise Busy()

    def release(self) -> None:
        with session_scope(self.ctx.settings) as session:
            store.release_lease(session, self.deployment_id, self.execution)

    def save(self, **fields: Any) -> None:
        with session_scope(self.ctx.settings) as session:
            store.set_fields(session, self.deployment_id, expect_task=self.task_id, **fields)

    def progress(self, stage: str, progress: int, message: str, **fields: Any) -> None:
        with session_scope(self.ctx.settings) as session:
            if store.set_fields(
                session, self.deployment_id, expect_task=self.task_id, stage=stage, progress=progress, **fields
            ):
                row = store.get(session, self.deployment_id)
                assert row is not None
                store.add_event(session, row, message)
        log.info("deploy.progress", extra={"deployment_id": self.deployment_id, "stage": stage})

    def finish(self, status: Status, message: str, **fields: Any) -> bool:
        if status in TERMINAL:
            fields.update(lease_owner=None, lease_until=None)
        with session_scope(self.ctx.settings) as session:
            return store.transition(
                session, self.deployment_id, status, expect_task=self.task_id, message=message, **fields
            )

    def fail(self, exc: BaseException, step: str, **fields: Any) -> dict[str, Any]:
        error = error_payload(exc, step)
        if error["code"] == "InternalError":
            log.exception("deploy.internal_error", extra={"deployment_id": self.deployment_id, "step": step})
        else:
            log.warning("deploy.failed", extra={"deployment_id": self.deployment_id, "step": step, "code": error["code"]})
        self.finish(Status.failed, f"failed at {step}: {error['code']}", stage=step, error=error, **fields)
        return {"status": "failed", "code": error["code"], "step": step}

    def past_deadline(self, row: DeploymentRow) -> bool:
        return row.deadline_at is not None and now() > row.deadline_at
