"""After a write to FC timed out: check, for a while, that FC still runs the deployment's spec.

A timed-out UpdateFunction may be applied by FC seconds later, after its retry succeeded and even after a
newer redeploy succeeded: FC then runs the older spec while the store says the newer one (issue 16 #4).
The deploy task compares FC with its spec before it records `succeeded`; this task, scheduled by a deploy
that had a timed-out write, compares again at growing intervals until `fc_late_write_horizon_s` after
that write, and writes the deployment's *current* spec (a newer redeploy's, if any) again when FC differs.
It takes the deployment's lease for that, so it never interleaves with a run; a run in progress makes it
try later (that run compares before it ends).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from celery import Task
from sqlalchemy.exc import SQLAlchemyError

from deployer.celery_app import VERIFY_TASK
from deployer.errors import FCError, FCNotFound
from deployer.fc import spec
from deployer.logcontext import deployment_logs
from deployer.ops.converge import function_drift
from deployer.settings import Settings
from deployer.store import lifecycle
from deployer.store import reads as store
from deployer.store.db import session_scope
from schemas import Status
from tasks.app import app
from tasks.context import context, log


def next_delay(settings: Settings, since: float, now: float) -> float | None:
    """Seconds until the next check, or None once the horizon after the timed-out write has passed."""
    if now >= since + settings.fc_late_write_horizon_s:
        return None
    elapsed = max(now - since, settings.fc_read_timeout_s)
    return min(elapsed, since + settings.fc_late_write_horizon_s - now) + 0.5


def schedule_verify(settings: Settings, deployment_id: str, since: float) -> None:
    delay = next_delay(settings, since, time.time())
    if delay is None:
        return
    try:
        verify.apply_async(args=[deployment_id, since], countdown=delay, queue="default")
    except Exception:  # noqa: BLE001 - the broker is down: the deploy itself compared before succeeding
        log.warning("verify.not_scheduled", extra={"deployment_id": deployment_id})


@app.task(name=VERIFY_TASK, bind=True, acks_late=True, max_retries=None)
def verify(self: Task, deployment_id: str, since: float) -> dict[str, Any]:
    with deployment_logs(deployment_id):
        return _verify(self, deployment_id, since)


def _verify(self: Task, deployment_id: str, since: float) -> dict[str, Any]:
    ctx = context()
    settings = ctx.settings
    owner = f"verify:{secrets.token_hex(4)}"
    try:
        with session_scope(settings) as session:
            row = store.get(session, deployment_id)
            if row is None or Status(row.status) in (Status.deleting, Status.deleted):
                return {"status": "gone"}
            if Status(row.status) != Status.succeeded or not lifecycle.acquire_lease(
                session, deployment_id, owner, settings.lease_s
            ):
                row = None  # a run is at work (it compares before it ends): look again later
    except SQLAlchemyError:
        row = None
    outcome = "busy"
    if row is not None:
        try:
            outcome = _converge(ctx, row)
        finally:
            try:
                with session_scope(settings) as session:
                    lifecycle.release_lease(session, deployment_id, owner)
            except SQLAlchemyError:
                pass  # it expires by itself
    delay = next_delay(settings, since, time.time())
    if delay is not None:
        raise self.retry(countdown=delay)
    return {"status": outcome}


def _converge(ctx: Any, row: Any) -> str:
    req = store.request_of(ctx.vault, row)
    gateway = ctx.gateway_for(row.region)
    try:
        body = gateway.get_function(req.name).get("body") or {}
        drift = function_drift(req, body)
        if not drift:
            return "in-sync"
        health = ctx.settings.fc_health_failure_threshold
        gateway.update_function(req.name, spec.update_function_input(req, health_failures=health))
    except FCNotFound:
        return "gone"
    except FCError as exc:
        log.warning("verify.fc_error", extra={"deployment_id": row.id, "code": exc.code})
        return "fc-error"
    with session_scope(ctx.settings) as session:
        lifecycle.note_event(
            session,
            row,
            f"FC ran another spec than this deployment's ({', '.join(drift)}): a late write landed; "
            "the deployment's spec was written again",
        )
    log.warning("verify.converged", extra={"deployment_id": row.id, "fields": drift})
    return "converged"
