"""Endpoint token expiry (issue 15 #5): flag tokens that expire soon, and rotate them when asked to.

``token_sweep`` (on the beat schedule, every ``token_check_interval_s``) looks at every succeeded
deployment with `jwt` auth: no FC call, only the row (the token is decrypted in the worker, its `exp` read).
The row's ``token`` (``{expires_at, expiring, checked_at}``) is written through ``lifecycle.record_check``
(only while the row serves the release that was read), with an event when the token enters the warning
window (``token_expiry_warn_days``). With ``token_auto_rotate``
an expiring token is rotated by the same path as `mcp-fc token rotate` (a new signing key on the trigger
alone, no new version: the trigger gets a new JWKS, every client needs the new config from `mcp-fc config`), unless new
tokens would themselves be inside the window (``endpoint_token_ttl_days`` <= the window), which would
rotate on every sweep.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from deployer import celery_app as queue
from deployer.celery_app import TOKEN_SWEEP_TASK
from deployer.ops import token_expiry
from deployer.store import lifecycle
from deployer.store import reads as store
from deployer.store.db import session_scope
from deployer.store.result import DeploymentResult
from deployer.store.tables import DeploymentRow
from schemas import Status
from tasks.app import app
from tasks.context import context, log
from tasks.drift import OPS_QUEUE


@app.task(name=TOKEN_SWEEP_TASK, acks_late=True, ignore_result=True)
def token_sweep() -> dict[str, Any]:
    settings = context().settings
    with session_scope(settings) as session:
        ids = list(
            session.scalars(
                select(DeploymentRow.id).where(
                    DeploymentRow.status == Status.succeeded.value,
                    DeploymentRow.endpoint_token_enc.is_not(None),
                )
            )
        )
    outcomes: dict[str, int] = {}
    for deployment_id in ids:
        outcome = check(deployment_id)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def check(deployment_id: str) -> str:
    """``ok`` | ``expiring`` | ``rotating`` | ``busy`` | ``gone`` for one deployment."""
    ctx = context()
    settings = ctx.settings
    try:
        with session_scope(settings) as session:
            row = store.get(session, deployment_id)
            if row is None or Status(row.status) != Status.succeeded or not row.endpoint_token_enc:
                return "gone"
            session.expunge(row)
    except SQLAlchemyError:
        return "busy"
    expiry = token_expiry.expires_at(ctx.vault.decrypt(row.endpoint_token_enc))
    if expiry is None:
        return "gone"
    status = token_expiry.status(expiry, settings.token_expiry_warn_days)
    warned = DeploymentResult.from_json(row.result).token_warned_at(status["expires_at"])
    rotate = status["expiring"] and settings.token_auto_rotate
    if rotate and not token_expiry.rotation_helps(
        settings.token_expiry_warn_days, settings.endpoint_token_ttl_days
    ):
        log.warning(
            "token.rotation_would_not_help",
            extra={"deployment_id": deployment_id, "ttl_days": settings.endpoint_token_ttl_days},
        )
        rotate = False
    messages = []
    if status["expiring"] and warned:
        status["warned_at"] = warned
    elif status["expiring"]:
        status["warned_at"] = status["checked_at"]  # one event per token, not one per sweep
        messages.append(
            f"the endpoint token expires at {status['expires_at']}: "
            + (
                "rotating it (token_auto_rotate)"
                if rotate
                else f"rotate it with `mcp-fc token rotate {row.name}`"
            )
        )
    with session_scope(settings) as session:
        if not lifecycle.record_check(session, deployment_id, row.task_id, {"token": status}, messages):
            return "busy"  # a deploy was queued meanwhile: it records the token's expiry when it ends
    if not rotate:
        return "expiring" if status["expiring"] else "ok"
    return "rotating" if start_rotation(ctx, deployment_id) else "busy"


def start_rotation(ctx: Any, deployment_id: str) -> bool:
    """What POST /v1/deployments/{id}/rotate-token does, from the worker: a rotation queued like any run
    (the recovery sweep re-queues it if the send fails)."""
    settings = ctx.settings
    with session_scope(settings) as session:
        row = store.get(session, deployment_id)
        if row is None or Status(row.status) != Status.succeeded:
            return False
        if not lifecycle.rotate_token(session, row, deadline_s=settings.deploy_deadline_s):
            return False
        task_id, priority = row.task_id or "", store.priority_of(row)
    try:
        queue.enqueue(
            app, task=queue.DEPLOY_TASK, deployment_id=deployment_id, task_id=task_id, priority=priority
        )
    except Exception:  # noqa: BLE001 - the row is pending: the recovery sweep queues it again
        log.warning("token.rotation_not_queued", extra={"deployment_id": deployment_id})
    log.info("token.rotating", extra={"deployment_id": deployment_id})
    return True


__all__ = ["OPS_QUEUE", "TOKEN_SWEEP_TASK", "check", "token_sweep"]
