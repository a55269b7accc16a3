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
from starlette.concurrency import run_in_threadpool

from deployer import celery_app as queue
from deployer.api.hot_cache import HotCache
from deployer.api.problems import Problem
from deployer.crypto import Vault
from deployer.settings import Settings
from deployer.store import keys
from deployer.store.db import session_scope


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


bearer = HTTPBearer(auto_error=False, description="an API key from `mcp-fc keys create`")
BEARER_SCHEME = bearer.scheme_name  # the OpenAPI security scheme of every /v1 route
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, kind="unauthorized", headers={"WWW-Authenticate": "Bearer"})


def presented_key(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The key from `Authorization: Bearer <key>`, or a 401."""
    if credentials is None or not credentials.credentials:
        raise _unauthorized("send an API key as `Authorization: Bearer <key>`")
    return credentials.credentials


def get_read_cache(request: Request) -> HotCache | None:
    """The process's read cache, while PostgreSQL's change feed keeps it exact; else None."""
    cache: HotCache | None = getattr(request.app.state, "read_cache", None)
    return cache if cache is not None and cache.listening else None


def authenticate(session: Session, presented: str, cache: HotCache | None = None) -> Owner:
    """The owner of a live key, or a 401. With a cache, a known key costs no database read; a key found in
    the database is cached unless a key change was heard since the read began."""
    if cache is not None and (owner := cache.owner(presented)) is not None:
        return owner
    token = cache.token() if cache is not None else 0
    key = keys.authenticate(session, presented)
    if key is None:
        raise _unauthorized("the API key is unknown or revoked")
    owner = Owner(owner_id=key.owner_id, key_id=key.id)
    if cache is not None:
        cache.put_owner(presented, owner, token)
    return owner


def get_owner(request: Request, session: SessionDep, credentials: BearerDep) -> Owner:
    return authenticate(session, presented_key(credentials), get_read_cache(request))


CurrentOwner = Annotated[Owner, Depends(get_owner)]


def _authenticate_in_session(settings: Settings, presented: str, cache: HotCache | None) -> Owner:
    with session_scope(settings) as session:
        return authenticate(session, presented, cache)


async def get_stream_owner(request: Request, settings: SettingsDep, credentials: BearerDep) -> Owner:
    """For async routes that stay open (SSE): a cached key on the event loop, else a short session of its
    own in a worker thread."""
    presented = presented_key(credentials)
    cache = get_read_cache(request)
    if cache is not None and (owner := cache.owner(presented)) is not None:
        return owner
    return await run_in_threadpool(_authenticate_in_session, settings, presented, cache)


StreamOwner = Annotated[Owner, Depends(get_stream_owner)]


class KeyRateLimiter:
    """A token bucket per API key: `per_minute` requests, refilled continuously; 0 disables it. (The FC
    call budget of a worker is deployer/fc/ratelimit.py's RateLimiter, a different thing.)"""

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
