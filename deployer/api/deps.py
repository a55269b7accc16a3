"""Dependencies: settings, one database session per request, the caller (an API key's owner), rate limits."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from deployer import queue, store
from deployer.api.problems import Problem
from deployer.crypto import Vault
from deployer.db import session_scope
from deployer.settings import Settings


# Trivial dependencies are `async def` so they run on the event loop, not through the threadpool.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_vault(request: Request) -> Vault:
    return request.app.state.vault


VaultDep = Annotated[Vault, Depends(get_vault)]


async def get_producer(settings: SettingsDep) -> Celery:
    return queue.producer(settings)


ProducerDep = Annotated[Celery, Depends(get_producer)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """Commits when the route returns, before the response is sent (so a failed commit is a 500)."""
    with session_scope(settings) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


@dataclass(frozen=True, slots=True)
class Owner:
    owner_id: str
    key_id: str


_bearer = HTTPBearer(auto_error=False, description="an API key from `mcp-fc keys create`")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, kind="unauthorized", headers={"WWW-Authenticate": "Bearer"})


def _authenticate(session: Session, credentials: HTTPAuthorizationCredentials | None) -> Owner:
    if credentials is None or not credentials.credentials:
        raise _unauthorized("send an API key as `Authorization: Bearer <key>`")
    key = store.authenticate(session, credentials.credentials)
    if key is None:
        raise _unauthorized("the API key is unknown or revoked")
    return Owner(owner_id=key.owner_id, key_id=key.id)


def get_owner(session: SessionDep, credentials: BearerDep) -> Owner:
    return _authenticate(session, credentials)


CurrentOwner = Annotated[Owner, Depends(get_owner)]


def get_stream_owner(settings: SettingsDep, credentials: BearerDep) -> Owner:
    """For async routes that stay open (long-poll, SSE): authenticate in a short session of its own."""
    with session_scope(settings) as session:
        return _authenticate(session, credentials)


StreamOwner = Annotated[Owner, Depends(get_stream_owner)]


class RateLimiter:
    """A token bucket per API key: `per_minute` requests, refilled continuously; 0 disables it."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(max(per_minute, 0))
        self.rate = self.capacity / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds until a token is available."""
        if self.capacity <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


async def rate_limit(request: Request, owner: CurrentOwner) -> None:
    wait = request.app.state.limiter.take(owner.key_id)
    if wait > 0:
        retry_after = max(1, math.ceil(wait))
        raise Problem(
            429,
            f"too many requests for this API key; retry in {retry_after} s",
            kind="rate-limited",
            headers={"Retry-After": str(retry_after)},
        )


RateLimited = Depends(rate_limit)
