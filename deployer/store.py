"""Deployments, their events, API keys and idempotency keys: the database is the source of truth.

Status changes are compare-and-set updates (`transition`), so two processes can never move a
deployment along an illegal edge or overwrite each other's terminal state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Row, and_, delete, insert, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from deployer.crypto import Vault
from deployer.db import note_change
from deployer.tables import ApiKey, DeploymentEvent, DeploymentRow, IdempotencyKey, utcnow
from schemas import TRANSITIONS_INTO, Deployment, DeploymentError, DeployRequest, Status, Urls

# What a guarded write answers (UPDATE … RETURNING): the row's state after it, for its event and for a
# running task's cancel check. `Written` rows are truthy.
# The worker's writes are Core statements on the tables: the ORM's column instrumentation and bulk-update
# machinery cost more CPU than the round trip itself (profiled: ~40 % of a deploy's CPU before).
_DEPLOYMENTS = DeploymentRow.__table__
_EVENTS = DeploymentEvent.__table__
_D = _DEPLOYMENTS.c
_WRITTEN = (_D.id, _D.status, _D.stage, _D.progress, _D.cancel_requested)
Written = Row[Any]


class NameTaken(Exception):
    """Another owner (or a live deployment) already uses this function name."""


def new_id() -> str:
    """Time-ordered and always starting with a digit, so an id can never be mistaken for a function name."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


# -- API keys --------------------------------------------------------------------------------------

KEY_PREFIX = "mcpfc"


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(session: Session, *, name: str = "", owner_id: str | None = None) -> tuple[ApiKey, str]:
    """A new key (a new owner unless owner_id is given). The plaintext is returned once, never stored."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = ApiKey(
        id=key_id,
        owner_id=owner_id or f"own{secrets.token_hex(6)}",
        name=name,
        secret_hash=_hash_secret(secret),
    )
    session.add(row)
    session.flush()
    return row, f"{KEY_PREFIX}_{key_id}_{secret}"


def import_api_key(session: Session, plaintext: str, *, name: str = "") -> ApiKey:
    """Register a key chosen by the operator (MCPFC_API_KEY for `mcp-fc dev`), if it is well formed."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[2]) < 16:
        # A free-form key: derive a stable id from it so the same value maps to the same owner.
        key_id = hashlib.sha256(b"id:" + plaintext.encode()).hexdigest()[:12]
        secret = plaintext
    else:
        key_id, secret = parts[1], parts[2]
    row = session.get(ApiKey, key_id)
    if row is None:
        row = ApiKey(id=key_id, owner_id=f"own{key_id}", name=name, secret_hash=_hash_secret(secret))
        session.add(row)
        session.flush()
    return row


def authenticate(session: Session, presented: str) -> ApiKey | None:
    parts = presented.split("_", 2)
    if len(parts) == 3 and parts[0] == KEY_PREFIX:
        key_id, secret = parts[1], parts[2]
    else:
        key_id, secret = hashlib.sha256(b"id:" + presented.encode()).hexdigest()[:12], presented
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_hash, _hash_secret(secret)):
        return None
    return row


def revoke_api_key(session: Session, key_id: str) -> bool:
    result = session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    # This process's cached keys go at commit; other processes hear it from PostgreSQL (migration 0003).
    note_change(session, "k", key_id)
    return bool(result.rowcount)


# -- deployments -----------------------------------------------------------------------------------


def _masked_spec(req: DeployRequest, region: str) -> dict[str, Any]:
    data = req.model_dump(mode="json")
    data["region"] = region
    return data


def create_deployment(
    session: Session, vault: Vault, *, owner_id: str, req: DeployRequest, region: str, deadline_s: float
) -> DeploymentRow:
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
        spec=_masked_spec(req, region),
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
    return row


#: The checkpoint key of a redeploy's previous spec (and encrypted secret env): what FC runs until the
#: redeploy's function step changes it.
RESTORE_KEY = "restore"


def restore_fields(checkpoint: dict[str, Any] | None) -> dict[str, Any]:
    """The row fields that put a cancelled redeploy's spec back to what FC runs (empty when none)."""
    saved = (checkpoint or {}).get(RESTORE_KEY)
    if not isinstance(saved, dict) or not saved.get("spec"):
        return {}
    return {"spec": saved["spec"], "secret_env_enc": saved.get("secret_env_enc")}


def restart(
    session: Session,
    vault: Vault,
    row: DeploymentRow,
    *,
    req: DeployRequest | None,
    operation: str,
    deadline_s: float,
    rotate_endpoint_key: bool = False,
) -> bool:
    """Queue a new deploy/redeploy/delete on an existing row: a new task id, a clean checkpoint.

    With rotate_endpoint_key the deployment's signing key and token are dropped, so the run makes new
    ones and rewrites the trigger: every earlier token stops working.
    """
    allowed = [
        s.value for s in TRANSITIONS_INTO[Status.deleting if operation == "delete" else Status.pending]
    ]
    values: dict[str, Any] = dict(
        status=(Status.deleting if operation == "delete" else Status.pending).value,
        stage="queued",
        progress=0,
        operation=operation,
        task_id=new_id(),
        error=None,
        checkpoint={},
        cancel_requested=False,
        deadline_at=utcnow() + timedelta(seconds=deadline_s),
        updated_at=utcnow(),
    )
    if rotate_endpoint_key:
        values.update(endpoint_key_enc=None, endpoint_token_enc=None)
    if req is not None:
        values["spec"] = _masked_spec(req, row.region)
        values["secret_env_enc"] = vault.encrypt_json(req.secret_values()) if req.secret_env else None
        if operation == "redeploy":
            # What FC runs now, so a cancel before the new spec reaches FC can put it back (else the next
            # partial redeploy would merge into, and deploy, the cancelled spec).
            values["checkpoint"] = {RESTORE_KEY: {"spec": row.spec, "secret_env_enc": row.secret_env_enc}}
    result = session.execute(
        update(DeploymentRow)
        .where(DeploymentRow.id == row.id, DeploymentRow.status.in_(allowed))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:
        return False
    session.refresh(row)
    add_event(session, row, f"queued for {operation}")
    return True


def get_for_owner(session: Session, owner_id: str, id_or_name: str) -> DeploymentRow | None:
    """By id, or by name (the live deployment, else the newest deleted one)."""
    row = session.get(DeploymentRow, id_or_name)
    if row is not None:
        return row if row.owner_id == owner_id else None
    stmt = (
        select(DeploymentRow)
        .where(DeploymentRow.owner_id == owner_id, DeploymentRow.name == id_or_name)
        .order_by((DeploymentRow.status == Status.deleted.value).asc(), DeploymentRow.created_at.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def live_by_name(session: Session, name: str) -> DeploymentRow | None:
    stmt = select(DeploymentRow).where(
        DeploymentRow.name == name, DeploymentRow.status != Status.deleted.value
    )
    return session.scalars(stmt).first()


def get(session: Session, deployment_id: str) -> DeploymentRow | None:
    return session.get(DeploymentRow, deployment_id)


def task_owned_by(session: Session, owner_id: str, task_id: str) -> bool:
    """True when task_id is the current task of one of the owner's deployments."""
    stmt = select(DeploymentRow.id).where(
        DeploymentRow.task_id == task_id, DeploymentRow.owner_id == owner_id
    )
    return session.scalar(stmt) is not None


def _encode_cursor(row: DeploymentRow) -> str:
    raw = json.dumps([row.created_at.isoformat(), row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, dep_id = json.loads(raw)
        return datetime.fromisoformat(created), str(dep_id)
    except (ValueError, TypeError) as exc:
        raise ValueError("cursor is not one this API returned") from exc


def list_for_owner(
    session: Session,
    owner_id: str,
    *,
    status: str | None = None,
    name: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[DeploymentRow], str | None]:
    """Newest first, keyset-paginated on (created_at, id) so deep pages cost the same as the first."""
    stmt = select(DeploymentRow).where(DeploymentRow.owner_id == owner_id)
    if status:
        stmt = stmt.where(DeploymentRow.status == status)
    if name:
        stmt = stmt.where(DeploymentRow.name == name)
    if cursor:
        created, dep_id = _decode_cursor(cursor)
        # A row-value comparison is one index range on (owner_id, created_at, id) in PostgreSQL and SQLite;
        # the equivalent OR is not (PostgreSQL scanned from the top: 5.6x slower at 100k rows).
        stmt = stmt.where(tuple_(DeploymentRow.created_at, DeploymentRow.id) < tuple_(created, dep_id))
    stmt = stmt.order_by(DeploymentRow.created_at.desc(), DeploymentRow.id.desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def request_of(vault: Vault, row: DeploymentRow) -> DeployRequest:
    """The full request, secrets decrypted. For the worker only."""
    data = dict(row.spec)
    data["secret_env"] = vault.decrypt_json(row.secret_env_enc) or {}
    return DeployRequest.model_validate(data)


def _guard(deployment_id: str, expect_task: str | None, expect_lease: str | None) -> list[Any]:
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
    while one run holds the lease), with its event. Truthy (the row's state after the write) when done."""
    allowed = [s.value for s in TRANSITIONS_INTO[new]] + [new.value]
    if expect_status is not None:
        allowed = [expect_status.value] if expect_status.value in allowed else []
    conditions = [*_guard(deployment_id, expect_task, expect_lease), _D.status.in_(allowed)]
    written = _update_with_event(session, conditions, message, status=new.value, **fields)
    if written is None:
        return False
    # A caller that holds the row (the API renders it next) sees the write; a worker's fresh session holds
    # none, and pays no extra read.
    held = session.identity_map.get(identity_key(DeploymentRow, deployment_id))
    if held is not None:
        session.refresh(held)
    return written


def _update_with_event(
    session: Session, conditions: list[Any], message: str, **values: Any
) -> Written | None:
    """One guarded UPDATE … RETURNING, and an event with the row's state after it; None if no row matched."""
    written = session.execute(
        update(_DEPLOYMENTS).where(*conditions).values(updated_at=utcnow(), **values).returning(*_WRITTEN)
    ).first()
    if written is None:
        return None
    session.execute(
        insert(_EVENTS).values(
            deployment_id=written.id,
            status=written.status,
            stage=written.stage,
            progress=written.progress,
            message=message,
            at=utcnow(),
        )
    )
    return written


def set_fields(
    session: Session,
    deployment_id: str,
    *,
    expect_task: str | None = None,
    expect_lease: str | None = None,
    **fields: Any,
) -> bool:
    """Write progress, checkpoints and results without touching the status (a run passes its lease, so a
    run that lost its lease can no longer write)."""
    result = session.execute(
        update(_DEPLOYMENTS)
        .where(*_guard(deployment_id, expect_task, expect_lease))
        .values(updated_at=utcnow(), **fields)
    )
    return bool(result.rowcount)


def set_fields_returning(
    session: Session,
    deployment_id: str,
    *,
    expect_task: str | None = None,
    expect_lease: str | None = None,
    **fields: Any,
) -> Written | None:
    """set_fields, answering the row's state after the write (its cancel flag included) in the same round
    trip; None when no row matched."""
    return session.execute(
        update(_DEPLOYMENTS)
        .where(*_guard(deployment_id, expect_task, expect_lease))
        .values(updated_at=utcnow(), **fields)
        .returning(*_WRITTEN)
    ).first()


def set_fields_with_event(
    session: Session,
    deployment_id: str,
    message: str,
    *,
    expect_task: str | None = None,
    expect_lease: str | None = None,
    **fields: Any,
) -> Written | None:
    """set_fields plus an event with the row's state after the write, in one round trip (UPDATE … RETURNING)."""
    return _update_with_event(session, _guard(deployment_id, expect_task, expect_lease), message, **fields)


#: Keys of a deployment's `result` that hold what the scheduled checks observed (issue 15): shown as their
#: own Deployment fields, not inside `result`.
OBSERVATION_KEYS = ("drift", "token")


def set_observation(
    session: Session,
    deployment_id: str,
    key: str,
    value: dict[str, Any] | None,
    *,
    expect_lease: str,
    message: str | None = None,
) -> bool:
    """Store what a scheduled check saw (``result[key]``) while holding the deployment's lease, with an
    event when ``message`` is given. ``updated_at`` moves only with an event: a check that saw nothing new
    must not wake every long-poll on the deployment."""
    # Read-modify-write of one key of `result` under a row lock (PostgreSQL; SQLite serialises writers):
    # another check storing its own key in between must not be lost.
    row = session.get(DeploymentRow, deployment_id, populate_existing=True, with_for_update=True)
    if row is None or row.lease_owner != expect_lease:
        return False
    result = dict(row.result or {})
    if value is None:
        result.pop(key, None)
    else:
        result[key] = value
    values: dict[str, Any] = {"result": result}
    conditions = _guard(deployment_id, None, expect_lease)
    if message:
        return _update_with_event(session, conditions, message, **values) is not None
    done = session.execute(update(_DEPLOYMENTS).where(*conditions).values(**values))
    return bool(done.rowcount)


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


def add_event(session: Session, row: DeploymentRow, message: str = "") -> None:
    session.add(
        DeploymentEvent(
            deployment_id=row.id, status=row.status, stage=row.stage, progress=row.progress, message=message
        )
    )


def events_after(session: Session, deployment_id: str, after_id: int = 0) -> list[DeploymentEvent]:
    stmt = (
        select(DeploymentEvent)
        .where(DeploymentEvent.deployment_id == deployment_id, DeploymentEvent.id > after_id)
        .order_by(DeploymentEvent.id)
    )
    return list(session.scalars(stmt))


def stale_running(session: Session, now: datetime | None = None) -> list[DeploymentRow]:
    """Deployments past their deadline that still say pending, running or deleting."""
    now = now or utcnow()
    active = [Status.pending.value, Status.running.value, Status.deleting.value]
    stmt = select(DeploymentRow).where(DeploymentRow.status.in_(active), DeploymentRow.deadline_at < now)
    return list(session.scalars(stmt))


# -- stuck-deploy recovery (tasks/recovery.py) -----------------------------------------------------

ACTIVE = (Status.pending.value, Status.running.value, Status.deleting.value)


def _lease_free(now: datetime) -> Any:
    return or_(DeploymentRow.lease_owner.is_(None), DeploymentRow.lease_until < now)


def unleased_idle(
    session: Session, *, idle_before: datetime, now: datetime, limit: int = 200
) -> list[DeploymentRow]:
    """Active deployments that no live run holds and that have not changed since `idle_before`, or that
    are past their deadline: the candidates of a recovery sweep (the caller looks at `due_at` too)."""
    stmt = (
        select(DeploymentRow)
        .where(
            DeploymentRow.status.in_(ACTIVE),
            _lease_free(now),
            or_(
                and_(
                    DeploymentRow.updated_at < idle_before,
                    or_(DeploymentRow.lease_until.is_(None), DeploymentRow.lease_until < idle_before),
                ),
                DeploymentRow.deadline_at < now,
            ),
        )
        .order_by(DeploymentRow.updated_at)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def _same_unleased(row: DeploymentRow, now: datetime) -> list[Any]:
    """Still the row the sweep looked at: same task, same status, unchanged since, and no live run."""
    return [
        DeploymentRow.id == row.id,
        DeploymentRow.task_id == row.task_id,
        DeploymentRow.status == row.status,
        DeploymentRow.updated_at == row.updated_at,
        _lease_free(now),
    ]


def claim_requeue(session: Session, row: DeploymentRow, *, now: datetime, count: int, message: str) -> bool:
    """Compare-and-set before a recovery re-queue: counts it in the checkpoint and clears a dead lease.
    False when anything changed since the sweep read the row (a run started, another sweep acted)."""
    checkpoint = {**(row.checkpoint or {}), "recovered": count}
    checkpoint.pop("due_at", None)
    return _update_unleased(session, row, now, message, checkpoint=checkpoint)


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
    return True


def fail_stuck(
    session: Session, row: DeploymentRow, *, now: datetime, error: dict[str, Any], message: str
) -> bool:
    """Compare-and-set a stuck deployment to failed with the reason (same guards as claim_requeue)."""
    return _update_unleased(session, row, now, message, status=Status.failed.value, error=error)


def to_public(row: DeploymentRow) -> Deployment:
    return Deployment(
        id=row.id,
        name=row.name,
        region=row.region,
        status=Status(row.status),
        stage=row.stage,
        progress=row.progress,
        task_id=row.task_id,
        attempts=row.attempts,
        error=DeploymentError.model_validate(row.error) if row.error else None,
        spec=DeployRequest.model_validate(row.spec),
        result={k: v for k, v in row.result.items() if k not in OBSERVATION_KEYS} if row.result else None,
        urls=Urls.model_validate(row.urls or {}),
        tools=list(row.tools or []),
        drift=(row.result or {}).get("drift"),
        token=(row.result or {}).get("token"),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


# -- idempotency -----------------------------------------------------------------------------------


def request_fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def find_idempotent(
    session: Session, owner_id: str, key: str, max_age: timedelta | None = None
) -> IdempotencyKey | None:
    """The remembered answer for this key; one older than `max_age` is dropped and counts as none."""
    record = session.get(IdempotencyKey, (owner_id, key))
    if record is not None and max_age is not None and record.created_at < utcnow() - max_age:
        session.delete(record)
        session.flush()  # gone before the same key is remembered again in this session
        return None
    return record


def remember_idempotent(
    session: Session, owner_id: str, key: str, fingerprint: str, deployment_id: str, status_code: int
) -> None:
    session.add(
        IdempotencyKey(
            owner_id=owner_id,
            key=key,
            request_hash=fingerprint,
            deployment_id=deployment_id,
            status_code=status_code,
        )
    )


def forget_idempotent(session: Session, owner_id: str, key: str) -> None:
    """Drop a remembered answer (e.g. a 503: a retry with the same key should try again)."""
    session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.owner_id == owner_id, IdempotencyKey.key == key)
    )


def purge_idempotency(session: Session, older_than: timedelta = timedelta(days=1)) -> int:
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - older_than))
    return result.rowcount or 0
