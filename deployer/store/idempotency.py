"""Idempotency-Keys: the first answer to a create request, replayed to a retry with the same key and body."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from deployer.store.tables import IdempotencyKey, utcnow


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
