"""/v1/deployments writes: queue deploys, redeploys, token rotations and deletes; cancel a run.

Each route writes its row through `deployer.store.lifecycle`, commits it, then sends the task
(routes/common.py says why in that order). Reads live in routes/reads.py, the event stream in
routes/events.py, the Idempotency-Key of a deploy in routes/idempotency.py.
"""

from __future__ import annotations

import logging
from typing import Annotated

from celery import Celery
from fastapi import BackgroundTasks, Header, Request, Response
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from deployer import celery_app as queue
from deployer.api.deps import CurrentOwner, Owner, ProducerDep, RateLimited, SessionDep, SettingsDep, VaultDep
from deployer.api.problems import Problem, ProblemDetail, from_validation_error, validation_problem
from deployer.api.routes.common import (
    BROKER_DOWN,
    CONFLICT,
    NOT_FOUND,
    PREFIX,
    IdOrName,
    accepted,
    busy,
    deployments_router,
    enqueue,
    get_row,
    redeployable,
    start_queued,
)
from deployer.api.routes.idempotency import Idempotency
from deployer.crypto import Vault
from deployer.ops import releases, spec_diff, unchanged
from deployer.settings import Settings
from deployer.store import lifecycle
from deployer.store import reads as store
from deployer.store.tables import DeploymentRow
from schemas import IN_PROGRESS, AuthType, Deployment, DeployRequest, RedeployRequest, Status, Transport
from schemas.limits import image_region_error

log = logging.getLogger("deployer.api")

#: On a deploy onto a name that has a deployment: the status it had, and the spec fields this deploy changes.
REPLACED_HEADER, CHANGED_HEADER = "Mcpfc-Replaced", "Mcpfc-Changed-Fields"
#: On a deploy that changes nothing (deployer/ops/unchanged.py): 200, nothing queued, and this header says so.
UNCHANGED_HEADER = "Mcpfc-Unchanged"
Replaced = tuple[str, list[str]]  # those two headers' values

router = deployments_router()


@router.post(
    PREFIX,
    status_code=202,
    response_model=Deployment,
    dependencies=[RateLimited],
    responses={
        **CONFLICT,
        **BROKER_DOWN,
        422: {"model": ProblemDetail, "description": "the request breaks an FC rule"},
    },
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
    region = _region_of(body, settings)
    idempotency = Idempotency.begin(request, session, settings, owner.owner_id, idempotency_key, body, region)
    if replayed := idempotency.replay(response):
        return replayed
    existing = store.live_by_name(session, body.name)
    row = _create_row(session, vault, settings, owner, body, region) if existing is None else None
    if row is None and existing is None:
        # Someone got there first: perhaps this very request, retried with the same Idempotency-Key.
        if replayed := idempotency.replay(response):
            return replayed
        existing = _taken_by(session, body.name)
    replaced: Replaced | None = None
    if row is None:
        assert existing is not None
        # A concurrent first request with the same Idempotency-Key may have committed this very row since
        # the replay check above (PostgreSQL reads committed data per statement): its answer is the answer.
        if replayed := idempotency.replay(response):
            return replayed
        replaced = _replace(session, vault, settings, owner, body, region, existing)
        row = existing
        if unchanged.deploy_changes_nothing(row.status, replaced[1]):
            return _nothing_to_deploy(session, idempotency, row, response, replaced)
    if replayed := _commit(session, idempotency, row, response):
        return replayed
    _enqueue_deploy(request, session, producer, idempotency, row, body.priority.value)
    return _deploy_accepted(request, response, row, replaced)


def _nothing_to_deploy(
    session: Session, idempotency: Idempotency, row: DeploymentRow, response: Response, replaced: Replaced
) -> Deployment:
    """The deploy asks for the spec the succeeded deployment has: no run, no release (issue 26 #2). 200
    with the deployment as it is, and a header that says why (the CLI shows it)."""
    idempotency.remember(row.id, status_code=200)
    session.commit()
    response.headers[REPLACED_HEADER] = replaced[0]
    response.headers[CHANGED_HEADER] = ""
    response.headers[UNCHANGED_HEADER] = unchanged.no_release_note(
        row.name, releases.live_version(row.result)
    )
    return accepted(response, row, status_code=200)


def _region_of(body: DeployRequest, settings: Settings) -> str:
    """The deploy's region: the body's, else the service's default (a 422 if the image cannot run there)."""
    region = body.region or settings.region
    if body.region is None and (wrong_region := image_region_error(body.image, region)):
        # The schema checks an explicit region; the service's default is known only here.
        raise validation_problem([{"field": "image", "rule": "image_region", "message": wrong_region}])
    return region


def _create_row(
    session: Session, vault: Vault, settings: Settings, owner: Owner, body: DeployRequest, region: str
) -> DeploymentRow | None:
    """A new row queued for the first deploy of the name; None if a live deployment took the name first."""
    try:
        return lifecycle.create_deployment(
            session,
            vault,
            owner_id=owner.owner_id,
            req=body,
            region=region,
            deadline_s=settings.deploy_deadline_s,
        )
    except lifecycle.NameTaken:
        return None


def _taken_by(session: Session, name: str) -> DeploymentRow:
    """The live deployment that took `name` while this request created its row (a 409 if it is gone)."""
    existing = store.live_by_name(session, name)
    if existing is None:
        raise Problem(409, f"the name {name} is being taken; retry", kind="name-taken")
    return existing


def _replace(
    session: Session,
    vault: Vault,
    settings: Settings,
    owner: Owner,
    body: DeployRequest,
    region: str,
    existing: DeploymentRow,
) -> Replaced:
    """Queue the deploy of a new spec onto the caller's deployment of the name, if nothing forbids it and
    the spec changes something."""
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
        raise busy(existing)
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
    if unchanged.deploy_changes_nothing(existing.status, replaced[1]):
        return replaced  # nothing to queue: the caller answers the deployment as it is
    if not lifecycle.queue_deploy(session, vault, existing, body, deadline_s=settings.deploy_deadline_s):
        session.refresh(existing)
        raise busy(existing)
    return replaced


def _commit(
    session: Session, idempotency: Idempotency, row: DeploymentRow, response: Response
) -> Deployment | None:
    """Commit the queued deploy with its Idempotency-Key's answer. None, or the answer of a request with
    the same key that committed first."""
    idempotency.remember(row.id)
    try:
        session.commit()
    except IntegrityError:
        # The same Idempotency-Key raced us; the winner's answer is the answer.
        session.rollback()
        if replayed := idempotency.replay(response):
            return replayed
        raise
    return None


def _enqueue_deploy(
    request: Request,
    session: Session,
    producer: Celery,
    idempotency: Idempotency,
    row: DeploymentRow,
    priority: str,
) -> None:
    try:
        enqueue(request, session, producer, row, task=queue.DEPLOY_TASK, priority=priority)
    except Problem:
        idempotency.forget()  # a retry with the same key should try again, not replay the outage
        raise


def _deploy_accepted(
    request: Request, response: Response, row: DeploymentRow, replaced: Replaced | None
) -> Deployment:
    if replaced is None:
        request.app.state.metrics.deployments_created.inc()
    else:
        # The name had a deployment: this deploy replaces its spec in place. Say so, and what changes
        # (field names only), so a client can tell its user (the CLI does).
        response.headers[REPLACED_HEADER] = replaced[0]
        response.headers[CHANGED_HEADER] = ", ".join(replaced[1])
    return accepted(response, row)


@router.post(
    PREFIX + "/{id}/redeploy",
    status_code=202,
    response_model=Deployment,
    dependencies=[RateLimited],
    responses={**NOT_FOUND, **CONFLICT, **BROKER_DOWN, 422: {"model": ProblemDetail}},
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
    row = redeployable(session, owner, id)
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
    responses={**NOT_FOUND, **CONFLICT, **BROKER_DOWN},
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
    row = redeployable(session, owner, id)
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
    # The trigger alone gets the new key (FC's UpdateTrigger): no version, `live` stays where it is.
    if not lifecycle.rotate_token(session, row, deadline_s=settings.deploy_deadline_s):
        session.refresh(row)
        raise busy(row)
    return start_queued(request, session, producer, response, row, priority=current.priority.value)


def _queue_redeploy(
    request: Request,
    response: Response,
    session: Session,
    settings: Settings,
    vault: Vault,
    producer: Celery,
    row: DeploymentRow,
    req: DeployRequest,
) -> Deployment:
    if not lifecycle.queue_redeploy(session, vault, row, req, deadline_s=settings.deploy_deadline_s):
        session.refresh(row)
        raise busy(row)
    return start_queued(request, session, producer, response, row, priority=req.priority.value)


@router.delete(
    PREFIX + "/{id}",
    status_code=202,
    response_model=Deployment,
    dependencies=[RateLimited],
    responses={**NOT_FOUND, **BROKER_DOWN},
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
    row = get_row(session, owner, id)
    if row.status in (Status.deleted, Status.deleting):
        return accepted(response, row)
    if not lifecycle.queue_delete(session, row, deadline_s=settings.deploy_deadline_s):
        session.refresh(row)
        return accepted(response, row)  # it became deleting/deleted meanwhile
    return start_queued(request, session, producer, response, row, task=queue.DELETE_TASK)


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
        **NOT_FOUND,
        **CONFLICT,
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
    row = get_row(session, owner, id)
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
