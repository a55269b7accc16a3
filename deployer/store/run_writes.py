"""A run's writes (`RunWrites`): the verbs a task run writes its deployment row with, each guarded by the
run's task id and lease. Made of deployer/store/lifecycle.py's statements, like every other write of a
deployment row (that module's docstring has the map); tasks/context.py's `Run` is one.
"""

from __future__ import annotations

import logging
from typing import Any

from deployer.errors import error_payload
from deployer.settings import Settings
from deployer.store.checkpoint import Checkpoint
from deployer.store.db import note_change, session_scope
from deployer.store.lifecycle import (
    acquire_lease,
    guard,
    release_lease,
    set_fields,
    transition,
    update_with_event,
)
from deployer.store.result import DeploymentResult
from deployer.store.tables import DeploymentRow
from schemas import TERMINAL, Status

log = logging.getLogger("tasks")


def as_stored(fields: dict[str, Any]) -> dict[str, Any]:
    """The row fields to write, a typed checkpoint or result as its JSON."""
    for key in ("checkpoint", "result"):
        if isinstance(fields.get(key), (Checkpoint, DeploymentResult)):
            fields[key] = fields[key].to_json()
    return fields


class RunWrites:
    """The writes of one execution of a task for one deployment: every one is conditional on the task id
    (a redeploy or delete replaced it: the message is stale) and on this execution's lease (a run that
    lost it, e.g. hung past the hard time limit, can no longer write). Each remembers the cancel flag
    the write answered, so checking for a cancel between steps costs no extra read."""

    def __init__(self, settings: Settings, deployment_id: str, task_id: str, execution: str) -> None:
        self.settings = settings
        self.deployment_id = deployment_id
        self.task_id = task_id
        self.execution = execution
        self.lease_cleared = False  # a terminal or re-scheduling write cleared the lease in its UPDATE
        # The row's cancel flag as this run last read or wrote it. None: unknown, read the database.
        self.cancel_flag: bool | None = None

    def _written(self, written: Any) -> bool:
        """Note the cancel flag a guarded write answered; None (no row matched) leaves it unknown."""
        self.cancel_flag = bool(written.cancel_requested) if written else None
        return bool(written)

    # lease

    def take_lease(self) -> DeploymentRow | None:
        """Take the lease, then read the row in the same transaction (so what the run reads is what no
        other run is changing); None when another run holds it."""
        with session_scope(self.settings) as session:
            if not acquire_lease(session, self.deployment_id, self.execution, self.settings.lease_s):
                return None
            return session.get(DeploymentRow, self.deployment_id)

    def retake_lease(self) -> bool:
        """The lease again, if it is still ours or nobody took it since it lapsed."""
        with session_scope(self.settings) as session:
            return acquire_lease(session, self.deployment_id, self.execution, self.settings.lease_s)

    def hand_back(self) -> None:
        """Release the lease (unless a terminal or re-scheduling write already did, in its UPDATE)."""
        if self.lease_cleared:
            return
        with session_scope(self.settings) as session:
            release_lease(session, self.deployment_id, self.execution)

    # steps

    def save(self, **fields: Any) -> bool:
        """Record a checkpoint, results or credentials, without an event."""
        as_stored(fields)
        with session_scope(self.settings) as session:
            written = set_fields(
                session, self.deployment_id, expect_task=self.task_id, expect_lease=self.execution, **fields
            )
            note_change(session, "d", self.deployment_id)
        return self._written(written)

    def record_step(self, stage: str, progress: int, message: str, **fields: Any) -> None:
        """Move the stage and progress, with an event watchers see."""
        as_stored(fields)
        with session_scope(self.settings) as session:
            written = update_with_event(
                session,
                guard(self.deployment_id, self.task_id, self.execution),
                message,
                stage=stage,
                progress=progress,
                **fields,
            )
            note_change(session, "d", self.deployment_id)
        self._written(written)
        log.info("deploy.progress", extra={"deployment_id": self.deployment_id, "stage": stage})

    #: Branches written before the verbs call it by its old name.
    progress = record_step

    def reschedule(self, checkpoint: Checkpoint, countdown: float, *, now: float) -> bool:
        """The run's last write before it re-schedules itself: when the next run is due (recovery leaves
        the row alone until then), and the lease in the same UPDATE (a waiting deploy re-polls FC every
        few seconds; one transaction fewer per poll)."""
        checkpoint.due_at = round(now + countdown, 3)
        self.lease_cleared = self.save(lease_owner=None, lease_until=None, checkpoint=checkpoint)
        return self.lease_cleared

    # status

    def _move(self, status: Status, message: str, **fields: Any) -> bool:
        as_stored(fields)
        if status in TERMINAL:
            fields.update(lease_owner=None, lease_until=None)
        with session_scope(self.settings) as session:
            done = transition(
                session,
                self.deployment_id,
                status,
                expect_task=self.task_id,
                expect_lease=self.execution,
                message=message,
                **fields,
            )
            note_change(session, "d", self.deployment_id)
        self.lease_cleared = bool(done) and status in TERMINAL
        return self._written(done)

    def start(self, message: str, **fields: Any) -> bool:
        """pending → running; False when the deploy was cancelled or replaced since the run read it."""
        return self._move(Status.running, message, **fields)

    def succeed(self, message: str, *, status: Status = Status.succeeded, **fields: Any) -> bool:
        """The operation's happy end: succeeded (a delete: deleted)."""
        return self._move(status, message, **fields)

    def cancel(self, message: str, **fields: Any) -> bool:
        return self._move(Status.cancelled, message, stage="cancelled", **fields)

    def fail(self, exc: BaseException, step: str, **fields: Any) -> dict[str, Any]:
        """End failed at `step` with the error's payload; answers the task's result."""
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
        self._move(Status.failed, message, stage=step, error=error, **fields)
        return {"status": "failed", "code": error["code"], "step": step}
