"""What the /v1/deployments routes share: the path, finding a caller's row, refusing a busy one, sending a
committed run to the broker, the 202 answer, and waiting on the change feed.

The database row is the truth. A task message carries the deployment id only. A route commits its
row before it sends the task, so a worker never sees a message whose row is missing. A broker that
refuses the task gets a 503, and the row is marked failed, so nothing is lost silently.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from celery import Celery
from fastapi import APIRouter, Path, Request, Response
from sqlalchemy.orm import Session

from deployer import celery_app as queue
from deployer.api.deps import Owner, get_read_cache
from deployer.api.problems import Problem, ProblemDetail
from deployer.store import lifecycle
from deployer.store import reads as store
from deployer.store.tables import DeploymentRow
from schemas import IN_PROGRESS, Deployment, Status

log = logging.getLogger("deployer.api")

# Full paths on each route (no router prefix), so scope["route"].path is the whole template for metrics.
PREFIX = "/v1/deployments"

IdOrName = Annotated[str, Path(description="deployment id, or the function name", max_length=128)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ProblemDetail, "description": "no such deployment for this API key"}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ProblemDetail, "description": "the deployment's state does not allow this"}
}
BROKER_DOWN: dict[int | str, dict[str, Any]] = {
    503: {"model": ProblemDetail, "description": "the task broker is unreachable; the row says failed"}
}

WAIT_POLL_S = 0.1  # long-poll re-read interval without the change feed (SQLite)


def deployments_router() -> APIRouter:
    """A router for routes of the `deployments` tag (writes, reads, the event stream)."""
    return APIRouter(
        tags=["deployments"],
        responses={401: {"model": ProblemDetail, "description": "missing, unknown or revoked API key"}},
    )


def not_found(id_or_name: str) -> Problem:
    return Problem(404, f"no deployment {id_or_name!r}", kind="not-found")


def location(dep_id: str) -> str:
    return f"{PREFIX}/{dep_id}"


def get_row(session: Session, owner: Owner, id_or_name: str) -> DeploymentRow:
    """The caller's deployment by id or name, or a 404 (another key's deployment is not found either)."""
    row = store.get_for_owner(session, owner.owner_id, id_or_name)
    if row is None:
        raise not_found(id_or_name)
    return row


def busy(row: DeploymentRow) -> Problem:
    what = "a delete" if row.status == Status.deleting else "a deploy"
    return Problem(
        409,
        f"{what} of {row.name} is in progress ({row.status}); wait for it or cancel it",
        kind="in-progress",
        deployment_id=row.id,
        deployment_status=row.status,
    )


def redeployable(session: Session, owner: Owner, id_or_name: str) -> DeploymentRow:
    """The caller's deployment if a new run may start on it: not deleted (409), no run in progress (409)."""
    row = get_row(session, owner, id_or_name)
    if row.status == Status.deleted:
        raise Problem(
            409, f"{row.name} was deleted; deploy it again instead", kind="deleted", deployment_id=row.id
        )
    if Status(row.status) in IN_PROGRESS:
        raise busy(row)
    return row


def enqueue(
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


def start_queued(
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
    enqueue(
        request,
        session,
        producer,
        row,
        task=task,
        priority=priority or store.priority_of(row),
    )
    return accepted(response, row)


def accepted(response: Response, row: DeploymentRow, status_code: int = 202) -> Deployment:
    response.status_code = status_code
    response.headers["Location"] = location(row.id)
    return store.to_public(row)


async def wait_for_change(request: Request, dep_id: str, token: int, timeout: float) -> bool:
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
