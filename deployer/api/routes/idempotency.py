"""The Idempotency-Key of POST /v1/deployments: a retried request gets the first request's answer.

A key is bound to its request by a keyed MAC of the canonical body, so the same key with another body is
a 422, and the stored hash cannot be used to guess a low-entropy secret. Keys expire after
MCPFC_IDEMPOTENCY_TTL_S.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request, Response
from sqlalchemy.orm import Session

from deployer.api.problems import Problem
from deployer.api.routes.common import accepted
from deployer.settings import Settings
from deployer.store import idempotency
from deployer.store import reads as store
from schemas import Deployment, DeployRequest

log = logging.getLogger("deployer.api")


def request_mac(settings: Settings, req: DeployRequest, region: str) -> str:
    """Keyed hash of the canonical request (secret values included, so a change of secret is a new
    request; keyed, so the stored hash cannot be used to guess a low-entropy secret)."""
    data = req.model_dump(mode="json")
    data["secret_env"] = req.secret_values()
    data["region"] = region
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    mac = hmac.new(settings.secret_key.get_secret_value().encode(), canonical, hashlib.sha256).hexdigest()
    return idempotency.request_fingerprint(mac.encode())


def purge_expired_keys(request: Request, session: Session, settings: Settings) -> None:
    """Delete Idempotency-Keys older than their TTL, at most once per purge interval in this process (the
    answers are otherwise kept for ever). Expired keys found before a purge are ignored by `replay`."""
    state = request.app.state
    now = time.monotonic()
    last = getattr(state, "idempotency_purged_at", None)
    if last is not None and now - last < settings.idempotency_purge_interval_s:
        return
    state.idempotency_purged_at = now
    purged = idempotency.purge_idempotency(session, timedelta(seconds=settings.idempotency_ttl_s))
    if purged:
        log.info("purged %d expired idempotency keys", purged)


def _reused() -> Problem:
    return Problem(
        422,
        "this Idempotency-Key was already used with a different request body",
        kind="idempotency-key-reused",
        errors=[
            {
                "field": "Idempotency-Key",
                "rule": "idempotency_key_reused",
                "message": "the key was first used with another body",
            }
        ],
    )


@dataclass(frozen=True)
class Idempotency:
    """One create request's Idempotency-Key, or none (then every method does nothing)."""

    session: Session
    owner_id: str
    key: str | None
    fingerprint: str
    ttl: timedelta

    @classmethod
    def begin(
        cls,
        request: Request,
        session: Session,
        settings: Settings,
        owner_id: str,
        key: str | None,
        req: DeployRequest,
        region: str,
    ) -> Idempotency:
        """The request's key and MAC; expired keys are purged first (now and then)."""
        fingerprint = request_mac(settings, req, region) if key else ""
        if key:
            purge_expired_keys(request, session, settings)
        return cls(session, owner_id, key, fingerprint, timedelta(seconds=settings.idempotency_ttl_s))

    def replay(self, response: Response) -> Deployment | None:
        """The first request's answer if one with this key is stored (a 422 if its body was another)."""
        if not self.key:
            return None
        record = idempotency.find_idempotent(self.session, self.owner_id, self.key, self.ttl)
        if record is None:
            return None
        if record.request_hash != self.fingerprint:
            raise _reused()
        row = store.get(self.session, record.deployment_id)
        if row is None:  # pragma: no cover - rows are never deleted
            return None
        response.headers["Idempotent-Replayed"] = "true"
        return accepted(response, row, record.status_code)

    def remember(self, deployment_id: str, status_code: int = 202) -> None:
        """Store this request's answer in the session, to be committed with the deployment's row."""
        if self.key:
            idempotency.remember_idempotent(
                self.session, self.owner_id, self.key, self.fingerprint, deployment_id, status_code
            )

    def forget(self) -> None:
        """Drop the stored answer (committed): a retry with the same key should try again, not replay an
        outage."""
        if self.key:
            idempotency.forget_idempotent(self.session, self.owner_id, self.key)
            self.session.commit()
