"""Config drift checks (issue 15 #4): FC's function, trigger and alias against the deployment's spec.

``drift_sweep`` (on the beat schedule, every ``drift_check_interval_s``) queues one ``drift_check`` per
succeeded deployment on the scheduled checks' queue (``health``), spread over the interval so FC sees a
steady trickle (each check is 2-3 reads through the gateway's shared rate limiter) and deploys never wait
behind them. A check records ``drift`` (deployer/ops/drift.py) in the row's ``result`` through
``lifecycle.record_check``, only if the row still serves the release it read (a deploy queued meanwhile
makes the finding stale: dropped), and writes an event when the drift appears, changes or goes away. `mcp-fc reconcile` then converges it
through the deploy task (operation ``reconcile``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from deployer.celery_app import DRIFT_CHECK_TASK, DRIFT_SWEEP_TASK, HEALTH_QUEUE
from deployer.errors import FCError, FCNotFound
from deployer.fc import spec
from deployer.fc.endpoint_auth import SigningKey
from deployer.ops import drift, releases
from deployer.store import health, lifecycle
from deployer.store import reads as store
from deployer.store.db import session_scope
from deployer.store.result import DeploymentResult
from deployer.store.tables import DeploymentRow
from schemas import AuthType, Status
from tasks.app import app
from tasks.context import context, log

#: The scheduled checks' queue: never one a deploy waits in.
OPS_QUEUE = HEALTH_QUEUE


def succeeded_ids(session: Any, limit: int) -> list[str]:
    """The deployments whose endpoint serves a known release (succeeded, or a failed or cancelled redeploy
    while `live` serves an earlier version: issue 26 #14)."""
    rows = session.execute(
        select(DeploymentRow.id)
        .where(health.serving_clause())
        .order_by(DeploymentRow.created_at)
        .limit(limit)
    )
    return [r[0] for r in rows]


@app.task(name=DRIFT_SWEEP_TASK, acks_late=True, ignore_result=True)
def drift_sweep() -> dict[str, Any]:
    settings = context().settings
    with session_scope(settings) as session:
        ids = succeeded_ids(session, settings.drift_check_max_per_sweep)
    spread = settings.drift_check_interval_s * 0.8
    for i, deployment_id in enumerate(ids):
        drift_check.apply_async(
            args=[deployment_id], countdown=spread * i / max(1, len(ids)), queue=OPS_QUEUE
        )
    return {"queued": len(ids)}


@app.task(name=DRIFT_CHECK_TASK, acks_late=True, ignore_result=True)
def drift_check(deployment_id: str) -> dict[str, Any]:
    return check(deployment_id)


def check(deployment_id: str) -> dict[str, Any]:
    """Compare one deployment with FC now; ``{"status": in-sync | drifted | busy | gone | fc-error}``."""
    ctx = context()
    settings = ctx.settings
    try:
        with session_scope(settings) as session:
            row = store.get(session, deployment_id)
            if row is None or not releases.endpoint_serves(row.status, row.result):
                return {"status": "gone" if row is None else "busy"}
            session.expunge(row)
    except SQLAlchemyError:
        return {"status": "busy"}
    try:
        fields = observe(ctx, row)
    except FCError as exc:
        log.warning("drift.fc_error", extra={"deployment_id": deployment_id, "code": exc.code})
        return {"status": "fc-error"}
    previous = DeploymentResult.from_json(row.result).drift or {}
    messages = []
    if fields and fields != previous.get("fields"):
        fix = "reconcile" if row.status == Status.succeeded.value else "redeploy"
        messages.append(f"config drift: {drift.summary(fields)} (`mcp-fc {fix} {row.name}` converges it)")
    elif not fields and previous.get("drifted"):
        messages.append("config drift gone: FC matches the deployment's spec again")
    # Only if the row still serves the release that was read (same task, still succeeded): a deploy
    # queued meanwhile makes this finding stale, and the write is dropped.
    with session_scope(settings) as session:
        stored = lifecycle.record_check(
            session, deployment_id, row.task_id, {"drift": drift.report(fields)}, messages
        )
    if not stored:
        return {"status": "busy"}
    if messages:
        log.warning("drift.changed", extra={"deployment_id": deployment_id, "fields": len(fields)})
    return {"status": "drifted" if fields else "in-sync", "fields": fields}


def observe(ctx: Any, row: DeploymentRow) -> list[dict[str, Any]]:
    """The drift fields of one deployment (reads FC: GetFunction, GetTrigger, GetAlias with releases)."""
    req = store.request_of(ctx.vault, row)
    gateway = ctx.gateway_for(row.region or req.region)
    result = DeploymentResult.from_json(row.result)
    try:
        function = gateway.get_function(req.name).get("body") or {}
    except FCNotFound:
        return [{"field": "function", "fc": None, "spec": req.name}]
    fields = drift.function_fields(req, function)
    qualifier = str(result.trigger_qualifier or spec.QUALIFIER)
    auth = spec.EndpointAuth()
    if req.auth.type == AuthType.jwt and row.endpoint_key_enc:
        auth = spec.EndpointAuth(jwks=SigningKey.from_json(ctx.vault.decrypt(row.endpoint_key_enc)).jwks())
    if req.auth.type != AuthType.jwt or auth.jwks:
        try:
            trigger = gateway.get_trigger(req.name, spec.TRIGGER_NAME).get("body") or {}
            fields += drift.trigger_fields(req, auth, trigger, qualifier=qualifier)
        except FCNotFound:
            fields.append({"field": "trigger", "fc": None, "spec": spec.TRIGGER_NAME})
    if qualifier == spec.LIVE_ALIAS:
        live = result.live_version
        try:
            alias = gateway.get_alias(req.name, spec.LIVE_ALIAS).get("body") or {}
            fields += drift.alias_fields(alias, str(live) if live else None)
        except FCNotFound:
            fields.append({"field": "alias.live", "fc": None, "spec": live})
    return fields
