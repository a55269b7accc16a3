"""GET /v1/deployments and GET /v1/deployments/{id}: list a key's deployments, read one, long-poll it.

Reading one deployment is the hot path of every polling client: on PostgreSQL a cached key and document
are answered on the event loop as stored bytes (deployer/api/hot_cache.py), with an ETag for 304s; a
long poll (`?wait=S`) wakes on the change feed, or re-reads every WAIT_POLL_S without it (SQLite).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Query, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from deployer.api.deps import (
    BEARER_SCHEME,
    CurrentOwner,
    Owner,
    SessionDep,
    authenticate,
    bearer,
    get_read_cache,
    presented_key,
)
from deployer.api.hot_cache import HotCache, View
from deployer.api.problems import Problem, ProblemDetail
from deployer.api.routes.common import (
    NOT_FOUND,
    PREFIX,
    IdOrName,
    deployments_router,
    not_found,
    wait_for_change,
)
from deployer.settings import Settings
from deployer.store import reads as store
from deployer.store.db import session_scope
from schemas import Deployment, DeploymentPage, HealthStatus, Status

router = deployments_router()

WAIT_CHECK_S = 1.0  # with the feed: how often a long-poll that heard nothing checks for a gone client


@router.get(PREFIX, response_model=DeploymentPage, responses={400: {"model": ProblemDetail}})
def list_deployments(
    owner: CurrentOwner,
    session: SessionDep,
    status: Annotated[Status | None, Query(description="only this status")] = None,
    name: Annotated[str | None, Query(max_length=64, description="only this function name")] = None,
    health: Annotated[
        HealthStatus | None, Query(description="only this health (of the scheduled MCP checks)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=512, description="next_cursor of the previous page")
    ] = None,
) -> DeploymentPage:
    """List this key's deployments, newest first."""
    try:
        rows, next_cursor = store.list_for_owner(
            session,
            owner.owner_id,
            status=status.value if status else None,
            name=name,
            limit=limit,
            cursor=cursor,
            health_status=health,
        )
    except ValueError:
        raise Problem(
            400,
            "cursor is not one this API returned",
            kind="bad-cursor",
            errors=[{"field": "query.cursor", "rule": "cursor", "message": "not a cursor this API returned"}],
        ) from None
    return DeploymentPage(items=[store.to_public(r) for r in rows], next_cursor=next_cursor)


def _load_public(
    settings: Settings, owner_id: str, id_or_name: str, session: Session | None = None
) -> Deployment | None:
    """One short read (runs in a worker thread): in `session`, else in a session of its own."""
    if session is None:
        with session_scope(settings) as own:
            return _load_public(settings, owner_id, id_or_name, own)
    row = store.get_for_owner(session, owner_id, id_or_name)
    return store.to_public(row) if row is not None else None


def _fetch(
    settings: Settings, cache: HotCache | None, presented: str, owner: Owner | None, id_or_name: str
) -> tuple[Owner, View | None, int]:
    """One worker-thread hop and one session: authenticate (unless the owner is known), read, render, and
    offer the result to the cache. Returns the generation token taken before the read."""
    token = cache.token() if cache is not None else 0
    with session_scope(settings) as session:
        if owner is None:
            owner = authenticate(session, presented, cache)
        dep = _load_public(settings, owner.owner_id, id_or_name, session)
    if dep is None:
        return owner, None, token
    view = View.of(dep, owner.owner_id)
    if cache is not None:
        cache.put(view, token)
    return owner, view, token


async def _read(
    request: Request, settings: Settings, presented: str, owner: Owner | None, id_or_name: str
) -> tuple[Owner, View, int]:
    """The deployment as this caller may see it: from the cache when both the key and the document are
    there (no thread hop, no database), else one `_fetch`. A 401 or 404 otherwise."""
    cache = get_read_cache(request)
    if cache is not None:
        token = cache.token()
        if owner is None:
            owner = cache.owner(presented)
        if owner is not None and (view := cache.get(id_or_name)) is not None:
            if view.owner_id != owner.owner_id:
                raise not_found(id_or_name)
            return owner, view, token
    owner, found, token = await run_in_threadpool(_fetch, settings, cache, presented, owner, id_or_name)
    if found is None:
        raise not_found(id_or_name)
    return owner, found, token


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/ prefixes do not matter."""
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


def _answer(view: View, if_none_match: str | None) -> Response:
    headers = {"ETag": view.etag}
    if if_none_match is not None and _etag_matches(if_none_match, view.etag):
        return Response(status_code=304, headers=headers)
    return Response(view.body, media_type="application/json", headers=headers)


@router.get(
    PREFIX + "/{id}",
    response_model=Deployment,
    responses={
        **NOT_FOUND,
        200: {"headers": {"ETag": {"description": "the document's tag", "schema": {"type": "string"}}}},
        304: {"description": "unchanged: the ETag matches If-None-Match"},
    },
    # Parsed in the route rather than by dependencies (they cost as much as the cached answer); documented here.
    openapi_extra={
        "security": [{BEARER_SCHEME: []}],
        "parameters": [
            {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "an ETag of this deployment: 304 while it is still current",
            }
        ],
    },
)
async def read_deployment(
    id: IdOrName,
    request: Request,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=60,
            description="long-poll: answer when its status, stage, progress, URLs or error change (or it "
            "ends), at most S s",
        ),
    ] = 0,
) -> Response:
    """One deployment, by id or name; `?wait=S` waits for a change first. With `If-None-Match` set to the
    ETag of the current document, the answer is 304 without a body."""
    # The hot path of every polling client. On PostgreSQL a cached key and document are answered on the
    # event loop as stored bytes (deployer/api/hot_cache.py); otherwise one worker-thread hop authenticates,
    # reads and renders in one session. The body is what `response_model=Deployment` renders.
    presented = presented_key(await bearer(request))
    settings: Settings = request.app.state.settings
    owner, view, token = await _read(request, settings, presented, None, id)
    if wait > 0 and not view.terminal:
        deadline = time.monotonic() + wait
        seen = view.watched
        while (remaining := deadline - time.monotonic()) > 0:
            changed = await wait_for_change(request, view.id, token, min(WAIT_CHECK_S, remaining))
            if await request.is_disconnected():
                break
            if not changed:
                continue
            owner, view, token = await _read(request, settings, presented, owner, view.id)
            if view.watched != seen or view.terminal:
                break
    return _answer(view, request.headers.get("if-none-match"))
