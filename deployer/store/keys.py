"""API keys: who may call the API. Only a hash of each secret is stored; the plaintext is shown once.

A key is `mcpfc_<id>_<secret>`; a free-form key chosen by the operator (MCPFC_API_KEY for `mcp-fc dev`) maps
to a stable id derived from it, so the same value always means the same owner.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from deployer.store.db import note_change
from deployer.store.tables import ApiKey, utcnow

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


def list_api_keys(session: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    """The keys, oldest first (their hashes stay in the rows: callers show ids, owners and names only)."""
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke_api_key(session: Session, key_id: str) -> bool:
    result = session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    # This process's cached keys go at commit; other processes hear it from PostgreSQL (migration 0003).
    note_change(session, "k", key_id)
    return bool(result.rowcount)
