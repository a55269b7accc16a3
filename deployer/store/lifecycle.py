"""The deployment lifecycle: every write of a deployment row, each a verb that carries its own guard.

Nothing else in the code base updates `deployments` (grep for `update(_DEPLOYMENTS` or `DeploymentRow(`):
the API queues and cancels through the module functions below, a task run writes through `RunWrites`
(deployer/store/run_writes.py, made of this module's statements; tasks/context.py's `Run` is one), the
recovery sweep through `claim_requeue` / `fail_stuck`. Each verb
compares-and-sets on what it expects (the task id, the run's lease, the status) and notes the change for
the process's read cache (`deployer.store.db.note_change`) itself, so no caller can forget it.

    the API                           a run (RunWrites)                 the recovery sweep
    create_deployment  → pending      take_lease / retake_lease         claim_requeue (re-queue)
    queue_deploy       → pending      start         pending → running   fail_stuck    → failed
    queue_redeploy     → pending      record_step   stage, progress
    rotate_token       → pending      save          checkpoint, result
    queue_rollback     → pending      reschedule    due_at, lease handed back
    queue_reconcile    → pending
    queue_delete       → deleting     succeed       → succeeded / deleted
    cancel_pending     → cancelled    fail          → failed (with the error)
    request_cancel     cancel flag    cancel        → cancelled
    fail_enqueue       → failed       hand_back     lease released

    the scheduled checks: record_check (result.health / tool_drift / drift / token of a succeeded release)

Status changes are compare-and-set updates along the legal edges of schemas.TRANSITIONS_INTO, so two
processes can never move a deployment along an illegal edge or overwrite each other's terminal state.
The run's writes are Core statements on the tables: the ORM's column instrumentation and bulk-update
machinery cost more CPU than the round trip itself (profiled: ~40 % of a deploy's CPU before).

That every write of a deployment row is here (and in run_writes.py, from the statements here) is the
point of it (issue 13). The JSON the writes store is typed beside: deployer/store/checkpoint.py
(`Checkpoint`, re-exported here, where callers import it) and deployer/store/result.py (`DeploymentResult`).
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Row, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from deployer.crypto import Vault
from deployer.errors import error_body
from deployer.store.checkpoint import Checkpoint  # noqa: F401 - re-exported: where callers import it
from deployer.store.db import note_change
from deployer.store.result import DeploymentResult
from deployer.store.tables import DeploymentEvent, DeploymentRow, utcnow
from schemas import TRANSITIONS_INTO, DeployRequest, Status

_DEPLOYMENTS = DeploymentRow.__table__
_EVENTS = DeploymentEvent.__table__
#: The statuses a run ends in (a delete aside): what a scheduled check's finding may be written on.
ENDED = (Status.succeeded.value, Status.failed.value, Status.cancelled.value)
_D = _DEPLOYMENTS.c
# What a guarded write answers (UPDATE … RETURNING): the row's state after it, for its event and for a
# running task's cancel check. `Written` rows are truthy.
_WRITTEN = (_D.id, _D.status, _D.stage, _D.progress, _D.cancel_requested, _D.task_id)
Written = Row[Any]


class NameTaken(Exception):
    """Another owner (or a live deployment) already uses this function name."""


def new_id() -> str:
    """Time-ordered and always starting with a digit, so an id can never be mistaken for a function name."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


# -- the guarded statements every verb is made of ---------------------------------------------------------


def guard(deployment_id: str, expect_task: str | None, expect_lease: str | None) -> list[Any]:
    conditions = [_D.id == deployment_id]
    if expect_task is not None:
        conditions.append(_D.task_id == expect_task)
    if expect_lease is not None:
        conditions.append(_D.lease_owner == expect_lease)
    return conditions


def transition(
    session: Session,
    deployment_id: str,
    new: Status,
    *,
    expect_task: str | None = None,
    expect_status: Status | None = None,
    expect_lease: str | None = None,
    message: str = "",
    **fields: Any,
) -> Written | Literal[False]:
    """Compare-and-set the status along a legal edge (optionally only from one status, for one task, or
    while one run holds the lease), with its event. Truthy (the row's state after the write) when done.

    The statement the verbs are made of; it does not note the change (tests call it to act as a worker
    in another process would, whose writes reach the read cache through the change feed)."""
    allowed = [s.value for s in TRANSITIONS_INTO[new]] + [new.value]
    if expect_status is not None:
        allowed = [expect_status.value] if expect_status.value in allowed else []
    conditions = [*guard(deployment_id, expect_task, expect_lease), _D.status.in_(allowed)]
    written = update_with_event(session, conditions, message, status=new.value, **fields)
    if written is None:
        return False
    # A caller that holds the row (the API renders it next) sees the write; a worker's fresh session holds
    # none, and pays no extra read.
    held = session.identity_map.get(identity_key(DeploymentRow, deployment_id))
    if held is not None:
        session.refresh(held)
    return written


def update_with_event(session: Session, conditions: list[Any], message: str, **values: Any) -> Written | None:
    """One guarded UPDATE … RETURNING, and an event with the row's state after it; None if no row matched."""
    written = session.execute(
        update(_DEPLOYMENTS).where(*conditions).values(updated_at=utcnow(), **values).returning(*_WRITTEN)
    ).first()
    if written is None:
        return None
    insert_event(session, written, message)
    return written


def insert_event(session: Session, written: Written, message: str) -> None:
    """An event with the row's state a guarded write answered."""
    session.execute(
        insert(_EVENTS).values(
            deployment_id=written.id,
            task_id=written.task_id,
            status=written.status,
            stage=written.stage,
            progress=written.progress,
            message=message,
            at=utcnow(),
        )
    )


def set_fields(
    session: Session,
    deployment_id: str,
    *,
    expect_task: str | None = None,
    expect_lease: str | None = None,
    **fields: Any,
) -> Written | None:
    """Write fields without touching the status, answering the row's state after the write (its cancel
    flag included) in the same round trip; None when no row matched. Like `transition`, a statement."""
    return session.execute(
        update(_DEPLOYMENTS)
        .where(*guard(deployment_id, expect_task, expect_lease))
        .values(updated_at=utcnow(), **fields)
        .returning(*_WRITTEN)
    ).first()


def add_event(session: Session, row: DeploymentRow, message: str = "") -> None:
    """An event with the row's current state (what a write that is not a status change tells watchers)."""
    session.add(
        DeploymentEvent(
            deployment_id=row.id,
            task_id=row.task_id,
            status=row.status,
            stage=row.stage,
            progress=row.progress,
            message=message,
        )
    )


def note_event(session: Session, row: DeploymentRow, message: str) -> None:
    """Tell the deployment's watchers something without changing the row (e.g. a late write corrected)."""
    add_event(session, row, message)
    note_change(session, "d", row.id)


# -- leases ----------------------------------------------------------------------------------------


def acquire_lease(session: Session, deployment_id: str, owner: str, seconds: float) -> bool:
    now = utcnow()
    result = session.execute(
        update(_DEPLOYMENTS)
        .where(
            _D.id == deployment_id,
            or_(_D.lease_owner.is_(None), _D.lease_owner == owner, _D.lease_until < now),
        )
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds))
    )
    return bool(result.rowcount)


def renew_lease(session: Session, deployment_id: str, owner: str, seconds: float) -> bool:
    """Extend a lease this owner still holds; False when it is gone (released, or taken over after expiry)."""
    result = session.execute(
        update(_DEPLOYMENTS)
        .where(_D.id == deployment_id, _D.lease_owner == owner)
        .values(lease_until=utcnow() + timedelta(seconds=seconds))
    )
    return bool(result.rowcount)


def release_lease(session: Session, deployment_id: str, owner: str) -> None:
    session.execute(
        update(_DEPLOYMENTS)
        .where(_D.id == deployment_id, _D.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


# -- the API's verbs -------------------------------------------------------------------------------------


def masked_spec(req: DeployRequest, region: str) -> dict[str, Any]:
    data = req.model_dump(mode="json")
    data["region"] = region
    return data


def create_deployment(
    session: Session, vault: Vault, *, owner_id: str, req: DeployRequest, region: str, deadline_s: float
) -> DeploymentRow:
    """A new row queued for its first deploy (NameTaken when a live deployment has the name)."""
    now = utcnow()
    row = DeploymentRow(
        id=new_id(),
        owner_id=owner_id,
        name=req.name,
        region=region,
        status=Status.pending.value,
        stage="queued",
        progress=0,
        operation="deploy",
        task_id=new_id(),
        spec=masked_spec(req, region),
        secret_env_enc=vault.encrypt_json(req.secret_values()) if req.secret_env else None,
        checkpoint={},
        deadline_at=now + timedelta(seconds=deadline_s),
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise NameTaken(req.name) from None
    add_event(session, row, "queued for deploy")
    note_change(session, "d", row.id)
    return row


def _queue(
    session: Session,
    vault: Vault | None,
    row: DeploymentRow,
    *,
    req: DeployRequest | None,
    operation: str,
    deadline_s: float,
    checkpoint: Checkpoint | None = None,
) -> bool:
    """Queue a new operation on an existing row: a new task id, a clean checkpoint; False when the row's
    status does not allow it (another request got there first)."""
    into = Status.deleting if operation == "delete" else Status.pending
    values: dict[str, Any] = dict(
        status=into.value,
        stage="queued",
        progress=0,
        operation=operation,
        task_id=new_id(),
        error=None,
        checkpoint=(checkpoint or Checkpoint()).to_json(),
        cancel_requested=False,
        deadline_at=utcnow() + timedelta(seconds=deadline_s),
        updated_at=utcnow(),
    )
    if req is not None:
        assert vault is not None
        values["spec"] = masked_spec(req, row.region)
        values["secret_env_enc"] = vault.encrypt_json(req.secret_values()) if req.secret_env else None
        if operation == "redeploy":
            # What FC runs now, so a cancel before the new spec reaches FC can put it back (else the next
            # partial redeploy would merge into, and deploy, the cancelled spec).
            restore = {"spec": row.spec, "secret_env_enc": row.secret_env_enc}
            values["checkpoint"] = Checkpoint(restore=restore).to_json()
    result = session.execute(
        update(DeploymentRow)
        .where(
            DeploymentRow.id == row.id, DeploymentRow.status.in_([s.value for s in TRANSITIONS_INTO[into]])
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:
        return False
    session.refresh(row)
    add_event(session, row, f"queued for {operation}")
    note_change(session, "d", row.id)
    return True


def queue_deploy(
    session: Session, vault: Vault, row: DeploymentRow, req: DeployRequest, *, deadline_s: float
) -> bool:
    """Deploy an existing (not in progress) deployment again with a whole new spec."""
    return _queue(session, vault, row, req=req, operation="deploy", deadline_s=deadline_s)


def queue_redeploy(
    session: Session, vault: Vault, row: DeploymentRow, req: DeployRequest | None, *, deadline_s: float
) -> bool:
    """Update the function in place with a merged spec (the previous one is kept for a cancel), or with
    the stored spec as it is (req None)."""
    return _queue(session, vault, row, req=req, operation="redeploy", deadline_s=deadline_s)


def rotate_token(session: Session, row: DeploymentRow, *, deadline_s: float) -> bool:
    """A new signing key and token on the trigger alone (operation `rotate`, issue 26 #1): the run makes
    them and rewrites the trigger, so every earlier token stops working; no function write, no version.
    The old key stays on the row until the run replaces it (a cancel before that keeps it working)."""
    return _queue(
        session,
        None,
        row,
        req=None,
        operation="rotate",
        deadline_s=deadline_s,
        checkpoint=Checkpoint(rotate=True),
    )


def queue_reconcile(session: Session, row: DeploymentRow, *, deadline_s: float) -> bool:
    """Write the stored spec to FC again (config drift, issue 15 #4): the deploy task's update path with
    operation `reconcile`, so nothing to restore on a cancel (the spec does not change)."""
    return _queue(session, None, row, req=None, operation="reconcile", deadline_s=deadline_s)


def queue_rollback(session: Session, row: DeploymentRow, *, to: str | None, deadline_s: float) -> bool:
    """Move `live` back to version `to` (None: the newest verified one older than live)."""
    return _queue(
        session,
        None,
        row,
        req=None,
        operation="rollback",
        deadline_s=deadline_s,
        checkpoint=Checkpoint(rollback_to=to),
    )


def queue_delete(session: Session, row: DeploymentRow, *, deadline_s: float) -> bool:
    """Tear the deployment down (trigger, then function)."""
    return _queue(session, None, row, req=None, operation="delete", deadline_s=deadline_s)


def fail_enqueue(session: Session, row: DeploymentRow) -> bool:
    """The broker refused the task of a committed row: it says failed, so nothing is lost silently."""
    done = transition(
        session,
        row.id,
        Status.failed,
        expect_task=row.task_id,
        message="the task broker is unreachable",
        error=error_body(
            "BrokerUnavailable",
            "the task broker is unreachable; nothing was queued, retry later",
            step="enqueue",
            retryable=True,
        ),
        stage="enqueue",
    )
    note_change(session, "d", row.id)
    return bool(done)


def cancel_pending(session: Session, row: DeploymentRow) -> bool:
    """Cancel a deploy no run has started. A pending redeploy never reached FC: its spec goes back."""
    restore = Checkpoint.from_json(row.checkpoint).restore_fields()
    done = transition(
        session,
        row.id,
        Status.cancelled,
        expect_task=row.task_id,
        expect_status=Status.pending,
        message="cancelled before it started" + ("; the spec is back to what FC runs" if restore else ""),
        **restore,
    )
    if done:
        note_change(session, "d", row.id)
    return bool(done)


def request_cancel(session: Session, row: DeploymentRow) -> bool:
    """Ask the running task to stop at its next step (it reads the flag from its own writes)."""
    done = set_fields(session, row.id, expect_task=row.task_id, cancel_requested=True)
    if done:
        note_change(session, "d", row.id)
    return done is not None


# -- the recovery sweep's verbs (tasks/recovery.py) ------------------------------------------------------


def _lease_free(now: datetime) -> Any:
    return or_(DeploymentRow.lease_owner.is_(None), DeploymentRow.lease_until < now)


def _same_unleased(row: DeploymentRow, now: datetime) -> list[Any]:
    """Still the row the sweep looked at: same task, same status, unchanged since, and no live run."""
    return [
        DeploymentRow.id == row.id,
        DeploymentRow.task_id == row.task_id,
        DeploymentRow.status == row.status,
        DeploymentRow.updated_at == row.updated_at,
        _lease_free(now),
    ]


def _update_unleased(
    session: Session, row: DeploymentRow, now: datetime, message: str, **values: Any
) -> bool:
    """Write values only if no run took the row since it was read as stuck; record the event."""
    result = session.execute(
        update(DeploymentRow)
        .where(*_same_unleased(row, now))
        .values(lease_owner=None, lease_until=None, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:
        return False
    fresh = session.get(DeploymentRow, row.id, populate_existing=True)
    assert fresh is not None
    add_event(session, fresh, message)
    note_change(session, "d", row.id)
    return True


def claim_requeue(session: Session, row: DeploymentRow, *, now: datetime, count: int, message: str) -> bool:
    """Compare-and-set before a recovery re-queue: counts it in the checkpoint and clears a dead lease.
    False when anything changed since the sweep read the row (a run started, another sweep acted)."""
    checkpoint = Checkpoint.from_json(row.checkpoint)
    checkpoint.recovered = count
    checkpoint.due_at = None
    return _update_unleased(session, row, now, message, checkpoint=checkpoint.to_json())


def fail_stuck(
    session: Session, row: DeploymentRow, *, now: datetime, error: dict[str, Any], message: str
) -> bool:
    """Compare-and-set a stuck deployment to failed with the reason (same guards as claim_requeue)."""
    return _update_unleased(session, row, now, message, status=Status.failed.value, error=error)


# -- the health checks' verb (tasks/health.py) -----------------------------------------------------------


def record_check(
    session: Session, deployment_id: str, task_id: str | None, found: dict[str, Any], messages: list[str]
) -> bool:
    """Store a scheduled check's findings (keys of the row's `result`: `health`, `tool_drift`) if the row
    still serves the release that was checked: its run still ended (succeeded, or failed or cancelled while
    `live` serves an earlier version: the checks pick those, deployer/store/health.py `serving_clause`),
    same task (a redeploy, rollback or delete replaced it: the finding is stale). The row is read again under a row lock and only these keys change,
    so another check's keys written meanwhile (config drift, token expiry) stay. Each message (a change of
    health or tools) is an event, and updated_at moves; a routine check is not a change of the deployment
    and leaves updated_at alone (no long-poll wakes for it)."""
    current = session.execute(
        select(_D.result)
        .where(_D.id == deployment_id, _D.task_id == task_id, _D.status.in_(ENDED))
        .with_for_update()
    ).first()
    if current is None:
        return False
    values: dict[str, Any] = {"result": DeploymentResult.from_json(current.result).update(found).to_json()}
    if messages:
        values["updated_at"] = utcnow()
    written = session.execute(
        update(_DEPLOYMENTS)
        .where(_D.id == deployment_id, _D.task_id == task_id, _D.status.in_(ENDED))
        .values(**values)
        .returning(*_WRITTEN)
    ).first()
    if written is None:
        return False
    for message in messages:
        insert_event(session, written, message)
    note_change(session, "d", deployment_id)
    return True
