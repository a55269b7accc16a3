"""/v1/deployments: queue deploys, redeploys and deletes; read, long-poll, stream and cancel them.

The database row is the truth. A task message carries the deployment id only. A route commits its
row before it sends the task, so a worker never sees a message whose row is missing. A broker that
refuses the task gets a 503, and the row is marked failed, so nothing is lost silently.

One module (~830 lines) on purpose: the /v1/deployments routes share the row helpers (`_get_row`, `_busy`,
`_enqueue`, `_accepted`) and the long-poll and event-stream machinery; routes that stand apart have
their own modules (releases.py, client_config.py, tasks.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Annotated, Any

from celery import Celery
from fastapi import APIRouter, BackgroundTasks, Header, Path, Query, Request, Response
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from deployer import celery_app as queue
from deployer.api.deps import (
    BEARER_SCHEME,
    CurrentOwner,
    Owner,
    ProducerDep,
    RateLimited,
    SessionDep,
    SettingsDep,
    StreamOwner,
    VaultDep,
    authenticate,
    bearer,
    get_read_cache,
    presented_key,
)
from deployer.api.hot_cache import HotCache, View
from deployer.api.problems import Problem, ProblemDetail, from_validation_error, validation_problem
from deployer.crypto import Vault
from deployer.ops import spec_diff
from deployer.settings import Settings
from deployer.store import lifecycle
from deployer.store import reads as store
from deployer.store.db import session_scope
from deployer.store.tables import DeploymentRow
from schemas import (
    IN_PROGRESS,
    TERMINAL,
    AuthType,
    Deployment,
    DeploymentPage,
    DeployRequest,
    HealthStatus,
    RedeployRequest,
    Status,
    Transport,
)
from schemas.limits import image_region_error

log = logging.getLogger("deployer.api")

# Full paths on each route (no router prefix), so scope["route"].path is the whole template for metrics.
PREFIX = "/v1/deployments"
#: On a deploy onto a name that has a deployment: the status it had, and the spec fields this deploy changes.
REPLACED_HEADER, CHANGED_HEADER = "Mcpfc-Replaced", "Mcpfc-Changed-Fields"
router = APIRouter(
    tags=["deployments"],
    responses={401: {"model": ProblemDetail, "description": "missing, unknown or revoked API key"}},
)

WAIT_POLL_S = 0.1  # long-poll re-read interval without the change feed (SQLite)
WAIT_CHECK_S = 1.0  # with the feed: how often a long-poll that heard nothing checks for a gone client
# /events without the change feed (SQLite): re-read after EVENTS_POLL_S, doubling while nothing happens up
# to EVENTS_POLL_MAX_S (150 streams each reading five times a second slowed every GET from 43 to 625 ms).
# With the feed a stream reads when its deployment changed, or after EVENTS_FEED_CHECK_S as a backstop.
EVENTS_POLL_S = 0.2
EVENTS_POLL_MAX_S = 2.0
EVENTS_FEED_CHECK_S = 5.0
EVENTS_MAX_S = 3600.0  # a stream ends after an hour; clients reconnect with Last-Event-ID

IdOrName = Annotated[str, Path(description="deployment id, or the function name", max_length=128)]
_404 = {404: {"model": ProblemDetail, "description": "no such deployment for this API key"}}
_409 = {409: {"model": ProblemDetail, "description": "the deployment's state does not allow this"}}
_503 = {503: {"model": ProblemDetail, "description": "the task broker is unreachable; the row says failed"}}


def _not_found(id_or_name: str) -> Problem:
    return Problem(404, f"no deployment {id_or_name!r}", kind="not-found")


def _location(dep_id: str) -> str:
    return f"{PREFIX}/{dep_id}"


def _get_row(session: Session, owner: Owner, id_or_name: str) -> DeploymentRow:
    row = store.get_for_owner(session, owner.owner_id, id_or_name)
    if row is None:
        raise _not_found(id_or_name)
    return row


def _busy(row: DeploymentRow) -> Problem:
    what = "a delete" if row.status == Status.deleting else "a deploy"
    return Problem(
        409,
        f"{what} of {row.name} is in progress ({row.status}); wait for it or cancel it",
        kind="in-progress",
        deployment_id=row.id,
        deployment_status=row.status,
    )


def _enqueue(
    request: Request,
    session: Session,
    producer: Celery,
    row: DeploymentRow,
    *,
    task: str,
    priority: str,
) -> None:
    """Send the task for a committed row. On broker failure mark the row failed, commit, answer 503."""
    metrics = request.app.state.metrics
    try:
        queue.enqueue(producer, task=task, deployment_id=row.id, task_id=row.task_id or "", priority=priority)
    except Exception as exc:  # OperationalError, connection errors, pool timeouts: nothing was queued
        log.warning("enqueue of %s for deployment %s failed: %s", task, row.id, type(exc).__name__)
        metrics.enqueue_failures.labels(row.operation).inc()
        lifecycle.fail_enqueue(session, row)
        session.commit()
        raise Problem(
            503,
            "the task broker is unreachable; the deployment is marked failed and nothing was queued",
            kind="broker-unavailable",
            headers={"Retry-After": "5"},
            deployment_id=row.id,
        ) from None
    metrics.tasks_queued.labels(row.operation).inc()
    log.info("queued %s of %s (%s) as task %s", row.operation, row.id, row.name, row.task_id)


def _start_queued(
    request: Request,
    session: Session,
    producer: Celery,
    response: Response,
    row: DeploymentRow,
    *,
    task: str = queue.DEPLOY_TASK,
    priority: str | None = None,
) -> Deployment:
    """Commit a run the lifecycle just queued, hand it to the broker and answer 202: the tail of every
    route that starts a run on an existing deployment (its spec's priority unless one is given)."""
    session.commit()
    _enqueue(
        request,
        session,
        producer,
        row,
        task=task,
        priority=priority or str((row.spec or {}).get("priority") or "normal"),
    )
    return _accepted(response, row)


def _accepted(response: Response, row: DeploymentRow, status_code: int = 202) -> Deployment:
    response.status_code = status_code
    response.headers["Location"] = _location(row.id)
    return store.to_public(row)


def _fingerprint(settings: Settings, req: DeployRequest, region: str) -> str:
    """Keyed hash of the canonical request (secret values included, so a change of secret is a new
    request; keyed, so the stored hash cannot be used to guess a low-entropy secret)."""
    data = req.model_dump(mode="json")
    data["secret_env"] = req.secret_values()
    data["region"] = region
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    mac = hmac.new(settings.secret_key.get_secret_value().encode(), canonical, hashlib.sha256).hexdigest()
    return store.request_fingerprint(mac.encode())


def _purge_expired_keys(request: Request, session: Session, settings: Settings) -> None:
    """Delete Idempotency-Keys older than their TTL, at most once per purge interval in this process (the
    answers are otherwise kept for ever). Expired keys found before a purge are ignored by `_replay`."""
    state = request.app.state
    now = time.monotonic()
    last = getattr(state, "idempotency_purged_at", None)
    if last is not None and now - last < settings.idempotency_purge_interval_s:
        return
    state.idempotency_purged_at = now
    purged = store.purge_idempotency(session, timedelta(seconds=settings.idempotency_ttl_s))
    if purged:
        log.info("purged %d expired idempotency keys", purged)


def _replay(
    session: Session, owner: Owner, key: str, fingerprint: str, response: Response, ttl_s: float
) -> Deployment | None:
    record = store.find_idempotent(session, owner.owner_id, key, timedelta(seconds=ttl_s))
    if record is None:
        return None
    if record.request_hash != fingerprint:
        raise Problem(
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
    row = store.get(session, record.deployment_id)
    if row is None:  # pragma: no cover - rows are never deleted
        return None
    response.headers["Idempotent-Replayed"] = "true"
    return _accepted(response, row, record.status_code)


@router.post(
    PREFIX,
    status_code=202,
    response_model=Deployment,
    dependencies=[RateLimited],
    responses={**_409, **_503, 422: {"model": ProblemDetail, "description": "the request breaks an FC rule"}},
)
def create_deployment(
    body: DeployRequest,
    request: Request,
    response: Response,
    owner: CurrentOwner,
    session: SessionDep,
    settings: SettingsDep,
    vault: VaultDep,
    producer: ProducerDep,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
) -> Deployment:
    """Queue a deploy. A name this key already deploys is deployed again with the new spec."""
    region = body.region or settings.region
    if body.region is None and (wrong_region := image_region_error(body.image, region)):
        # The schema checks an explicit region; the service's default is known only here.
        raise validation_problem([{"field": "image", "rule": "image_region", "message": wrong_region}])
    fingerprint = _fingerprint(settings, body, region) if idempotency_key else ""
    if idempotency_key:
        _purge_expired_keys(request, session, settings)
    if idempotency_key and (
        replayed := _replay(
            session, owner, idempotency_key, fingerprint, response, settings.idempotency_ttl_s
        )
    ):
        return replayed

    created = False
    replaced: tuple[str, list[str]] | None = None
    existing = store.live_by_name(session, body.name)
    if existing is None:
        try:
            row = lifecycle.create_deployment(
                session,
                vault,
                owner_id=owner.owner_id,
                req=body,
                region=region,
                deadline_s=settings.deploy_deadline_s,
            )
            created = True
        except store.NameTaken:
            # Someone got there first: perhaps this very request, retried with the same Idempotency-Key.
            if idempotency_key and (
                replayed := _replay(
                    session, owner, idempotency_key, fingerprint, response, settings.idempotency_ttl_s
                )
            ):
                return replayed
            existing = store.live_by_name(session, body.name)
            if existing is None:
                raise Problem(409, f"the name {body.name} is being taken; retry", kind="name-taken") from None
    if not created:
        assert existing is not None
        # A concurrent first request with the same Idempotency-Key may have committed this very row since
        # the replay check above (PostgreSQL reads committed data per statement): its answer is the answer.
        if idempotency_key and (
            replayed := _replay(
                session, owner, idempotency_key, fingerprint, response, settings.idempotency_ttl_s
            )
        ):
            return replayed
        if existing.owner_id != owner.owner_id:
            raise Problem(409, f"the function name {body.name} is taken", kind="name-taken")
        if existing.region != region:
            raise Problem(
                409,
                f"{body.name} is deployed in {existing.region}; delete it before deploying it to {region}",
                kind="region-conflict",
                deployment_id=existing.id,
            )
        if Status(existing.status) in IN_PROGRESS:
            raise _busy(existing)
        if "transport" not in body.model_fields_set and existing.spec.get("transport") == Transport.sse:
            # Deploying a name again without saying the transport keeps its clients' URL working
            # (docs/decisions.md, issue 12): only an explicit transport converts a deployment.
            body = body.model_copy(update={"transport": Transport.sse})
        replaced = (
            existing.status,
            spec_diff.changed_fields(
                existing.spec,
                vault.decrypt_json(existing.secret_env_enc),  # type: ignore[arg-type]
                lifecycle.masked_spec(body, region),
                body.secret_values(),
            ),
        )
        if not lifecycle.queue_deploy(session, vault, existing, body, deadline_s=settings.deploy_deadline_s):
            session.refresh(existing)
            raise _busy(existing)
        row = existing

    if idempotency_key:
        store.remember_idempotent(session, owner.owner_id, idempotency_key, fingerprint, row.id, 202)
    try:
        session.commit()
    except IntegrityError:
        # The same Idempotency-Key raced us; the winner's answer is the answer.
        session.rollback()
        if idempotency_key and (
            replayed := _replay(
                session, owner, idempotency_key, fingerprint, response, settings.idempotency_ttl_s
            )
        ):
            return replayed
        raise

    try:
        _enqueue(request, session, producer, row, task=queue.DEPLOY_TASK, priority=body.priority.value)
    except Problem:
        if idempotency_key:
            # A retry with the same key should try again, not replay the outage.
            store.forget_idempotent(session, owner.owner_id, idempotency_key)
            session.commit()
        raise
    if created:
        request.app.state.metrics.deployments_created.inc()
    if replaced is not None:
        # The name had a deployment: this deploy replaces its spec in place. Say so, and what changes
        # (field names only), so a client can tell its user (the CLI does).
        response.headers[REPLACED_HEADER] = replaced[0]
        response.headers[CHANGED_HEADER] = ", ".join(replaced[1])
    return _accepted(response, row)


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
                raise _not_found(id_or_name)
            return owner, view, token
    owner, found, token = await run_in_threadpool(_fetch, settings, cache, presented, owner, id_or_name)
    if found is None:
        raise _not_found(id_or_name)
    return owner, found, token


async def _wait_for_change(request: Request, dep_id: str, token: int, timeout: float) -> bool:
    """Wait until `dep_id` may have changed since `token`: with the change feed, until its eviction (False
    after `timeout` without one); without it, WAIT_POLL_S, then True (poll)."""
    cache = get_read_cache(request)
    if cache is None:
        await asyncio.sleep(min(WAIT_POLL_S, timeout))
        return True
    waiter = cache.subscribe(dep_id)
    try:
        if cache.changed_since(dep_id, token):
            return True
        try:
            await asyncio.wait_for(waiter.event.wait(), timeout)
        except TimeoutError:
            return False
        return True
    finally:
        cache.unsubscribe(dep_id, waiter)


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
        **_404,
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
            changed = await _wait_for_change(request, view.id, token, min(WAIT_CHECK_S, remaining))
            if await request.is_disconnected():
                break
            if not changed:
                continue
            owner, view, token = await _read(request, settings, presented, owner, view.id)
            if view.watched != seen or view.terminal:
                break
    return _answer(view, request.headers.get("if-none-match"))


@router.post(
    PREFIX + "/{id}/redeploy",
    status_code=202,
    response_model=Deployment,
    dependencies=[RateLimited],
    responses={**_404, **_409, **_503, 422: {"model": ProblemDetail}},
)
def redeploy(
    id: IdOrName,
    body: RedeployRequest,
    request: Request,
    response: Response,
    owner: CurrentOwner,
    session: SessionDep,
    settings: SettingsDep,
    vault: VaultDep,
    producer: ProducerDep,
) -> Deployment:
    """Update the function in place with the fields given; the trigger URL stays the same."""
    row = _redeployable(session, owner, id)
    try:
        merged = body.apply_to(store.request_of(vault, row))
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    return _queue_redeploy(request, response, session, settings, vault, producer, row, merged)


@router.post(
    PREFIX + "/{id}/rotate-token",
    status_code=202,
    response_model=Deployment,
    dependencies=[RateLimited],
    responses={**_404, **_409, **_503},
)
def rotate_token(
    id: IdOrName,
    request: Request,
    response: Response,
    owner: CurrentOwner,
    session: SessionDep,
    settings: SettingsDep,
    vault: VaultDep,
    producer: ProducerDep,
) -> Deployment:
    """New endpoint signing key and token; the trigger is rewritten and every earlier token stops working."""
    row = _redeployable(session, owner, id)
    if row.status != Status.succeeded:
        # A rotation is a redeploy: on a failed or cancelled deployment it would silently deploy it again.
        raise Problem(
            409,
            f"{row.name} is {row.status}, not live: only a succeeded deployment has a token to rotate "
            f"(redeploy it first: `mcp-fc redeploy {row.name}`)",
            kind="not-live",
            deployment_id=row.id,
        )
    current = store.request_of(vault, row)
    if current.auth.type != AuthType.jwt:
        raise Problem(
            409, f"{row.name} uses {current.auth.type.value} auth: it has no token to rotate", kind="no-token"
        )
    return _queue_redeploy(request, response, session, settings, vault, producer, row, current, rotate=True)


def _redeployable(session: Session, owner: Owner, id_or_name: str) -> DeploymentRow:
    row = _get_row(session, owner, id_or_name)
    if row.status == Status.deleted:
        raise Problem(
            409, f"{row.name} was deleted; deploy it again instead", kind="deleted", deployment_id=row.id
        )
    if Status(row.status) in IN_PROGRESS:
        raise _busy(row)
    return row


def _queue_redeploy(
    request: Request,
    response: Response,
    session: Session,
    settings: Settings,
    vault: Vault,
    producer: Celery,
    row: DeploymentRow,
    req: DeployRequest,
    *,
    rotate: bool = False,
) -> Deployment:
    queue_it = lifecycle.rotate_token if rotate else lifecycle.queue_redeploy
    if not queue_it(session, vault, row, req, deadline_s=settings.deploy_deadline_s):
        session.refresh(row)
        raise _busy(row)
    return _start_queued(request, session, producer, response, row, priority=req.priority.value)


@router.delete(
    PREFIX + "/{id}",
    status_code=202,
    response_model=Deployment,
    dependencies=[RateLimited],
    responses={**_404, **_503},
)
def delete_deployment(
    id: IdOrName,
    request: Request,
    response: Response,
    owner: CurrentOwner,
    session: SessionDep,
    settings: SettingsDep,
    producer: ProducerDep,
) -> Deployment:
    """Tear down trigger then function. Idempotent: deleting or deleted answers 202 with the row as is."""
    row = _get_row(session, owner, id)
    if row.status in (Status.deleted, Status.deleting):
        return _accepted(response, row)
    if not lifecycle.queue_delete(session, row, deadline_s=settings.deploy_deadline_s):
        session.refresh(row)
        return _accepted(response, row)  # it became deleting/deleted meanwhile
    return _start_queued(request, session, producer, response, row, task=queue.DELETE_TASK)


def _revoke(producer: Celery, task_id: str) -> None:
    """Best effort: the embedded broker may not reach workers; the worker also checks the row."""
    try:
        producer.control.revoke(task_id)
    except Exception as exc:
        log.info("revoke of task %s not delivered: %s", task_id, type(exc).__name__)


@router.post(
    PREFIX + "/{id}/cancel",
    response_model=Deployment,
    dependencies=[RateLimited],
    responses={
        **_404,
        **_409,
        202: {"model": Deployment, "description": "a running deploy will stop at its next step"},
    },
)
def cancel_deployment(
    id: IdOrName,
    response: Response,
    background: BackgroundTasks,
    owner: CurrentOwner,
    session: SessionDep,
    producer: ProducerDep,
) -> Deployment:
    """Cancel a deploy: a pending one at once (200), a running one at its next step (202)."""
    row = _get_row(session, owner, id)
    task_id = row.task_id
    if row.status == Status.pending:
        # A pending redeploy never reached FC: the spec goes back to what FC runs.
        if lifecycle.cancel_pending(session, row):
            session.commit()
            if task_id:
                background.add_task(_revoke, producer, task_id)
            return store.to_public(row)
        session.refresh(row)
    if row.status == Status.running:
        if lifecycle.request_cancel(session, row):
            session.commit()
            session.refresh(row)
            response.status_code = 202
            return store.to_public(row)
        session.refresh(row)
    if row.status == Status.deleting:
        raise Problem(
            409, f"a delete of {row.name} is in progress and cannot be cancelled", kind="not-cancellable"
        )
    raise Problem(409, f"{row.name} is {row.status}: there is nothing to cancel", kind="not-cancellable")


def _events_since(settings: Settings, dep_id: str, after: int) -> tuple[str, list[dict[str, Any]]]:
    """The row's status, then the events after `after`, read in that order (see stream_events)."""
    with session_scope(settings) as session:
        row = store.get(session, dep_id)
        status = row.status if row is not None else Status.deleted.value
        events = [
            {
                "id": ev.id,
                "status": ev.status,
                "stage": ev.stage,
                "progress": ev.progress,
                "message": ev.message,
                "at": ev.at.isoformat(),
            }
            for ev in store.events_after(session, dep_id, after)
        ]
        return status, events


def _resolve_id(settings: Settings, owner_id: str, id_or_name: str) -> str | None:
    with session_scope(settings) as session:
        row = store.get_for_owner(session, owner_id, id_or_name)
        return row.id if row is not None else None


class StreamSlots:
    """Open /events streams per API key in this process, at most `limit` each (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}

    def take(self, key_id: str) -> bool:
        count = self.open.get(key_id, 0)
        if self.limit and count >= self.limit:
            return False
        self.open[key_id] = count + 1
        return True

    def give_back(self, key_id: str) -> None:
        count = self.open.get(key_id, 0) - 1
        if count > 0:
            self.open[key_id] = count
        else:
            self.open.pop(key_id, None)


def _stream_slots(request: Request, settings: Settings) -> StreamSlots:
    slots: StreamSlots | None = getattr(request.app.state, "event_streams", None)
    if slots is None:
        slots = request.app.state.event_streams = StreamSlots(settings.events_streams_per_key)
    return slots


class _SlotHoldingResponse(EventSourceResponse):
    """Gives its stream slot back however the response ends (finished, client gone, server stopping)."""

    def __init__(self, *args: Any, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def _wait_for_events(request: Request, dep_id: str, token: int, idle_s: float) -> None:
    """Until the deployment may have new events: its change-feed eviction (or the backstop), else idle_s."""
    cache = get_read_cache(request)
    if cache is None:
        await asyncio.sleep(idle_s)
        return
    await _wait_for_change(request, dep_id, token, EVENTS_FEED_CHECK_S)


@router.get(
    PREFIX + "/{id}/events",
    response_class=EventSourceResponse,
    responses={
        **_404,
        200: {"content": {"text/event-stream": {}}, "description": "`event: progress` events"},
        429: {"model": ProblemDetail, "description": "this API key has too many event streams open"},
    },
)
async def stream_events(
    id: IdOrName,
    request: Request,
    owner: StreamOwner,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """Server-Sent Events of progress; ends after a terminal status. Honours Last-Event-ID. At most
    MCPFC_EVENTS_STREAMS_PER_KEY streams per API key are open at once (429 beyond)."""
    dep_id = await run_in_threadpool(_resolve_id, settings, owner.owner_id, id)
    if dep_id is None:
        raise _not_found(id)
    try:
        after = max(0, int(last_event_id or 0))
    except ValueError:
        after = 0
    slots = _stream_slots(request, settings)
    if not slots.take(owner.key_id):
        raise Problem(
            429,
            f"this API key has {slots.limit} event streams open; close one or poll with ?wait=",
            kind="too-many-streams",
            headers={"Retry-After": "5"},
        )

    async def events() -> AsyncIterator[dict[str, str]]:
        nonlocal after
        deadline = time.monotonic() + EVENTS_MAX_S
        idle_s = EVENTS_POLL_S
        while True:
            cache = get_read_cache(request)
            token = cache.token() if cache is not None else 0  # before the read: no change is missed
            # Status first: if it was terminal, the events read next include its terminal event.
            status, batch = await run_in_threadpool(_events_since, settings, dep_id, after)
            for ev in batch:
                after = ev.pop("id")
                yield {"event": "progress", "id": str(after), "data": json.dumps(ev, separators=(",", ":"))}
            if Status(status) in TERMINAL and (not batch or Status(batch[-1]["status"]) in TERMINAL):
                return
            if time.monotonic() > deadline:
                return
            if batch:
                idle_s = EVENTS_POLL_S
            await _wait_for_events(request, dep_id, token, idle_s)
            idle_s = min(idle_s * 2, EVENTS_POLL_MAX_S)

    return _SlotHoldingResponse(
        events(),
        ping=15,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        release=lambda: slots.give_back(owner.key_id),
    )
