"""POST /v1/deployments/{id}/reconcile: converge config drift (issue 15 #4).

The API never calls FC: a reconcile is queued like a redeploy of the deployment's own spec (operation
`reconcile`), so the deploy task's checkpointed steps write every managed function field, the trigger and
(with releases) a new verified version behind `live`. Its success clears the recorded `drift`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from deployer.api.deps import CurrentOwner, ProducerDep, RateLimited, SessionDep, SettingsDep
from deployer.api.problems import ProblemDetail
from deployer.api.routes.common import PREFIX, IdOrName, busy, redeployable, start_queued
from deployer.store import lifecycle
from schemas import Deployment

router = APIRouter(tags=["deployments"])


@router.post(
    PREFIX + "/{id}/reconcile",
    status_code=202,
    response_model=Deployment,
    dependencies=[RateLimited],
    responses={
        404: {"model": ProblemDetail, "description": "no such deployment for this API key"},
        409: {"model": ProblemDetail, "description": "deleted, or a deploy is in progress"},
        503: {"model": ProblemDetail, "description": "the task broker is unreachable"},
    },
)
def reconcile(
    id: IdOrName,
    request: Request,
    response: Response,
    owner: CurrentOwner,
    session: SessionDep,
    settings: SettingsDep,
    producer: ProducerDep,
) -> Deployment:
    """Write the deployment's spec to FC again (every managed field), whatever was changed outside mcp-fc."""
    row = redeployable(session, owner, id)
    if not lifecycle.queue_reconcile(session, row, deadline_s=settings.deploy_deadline_s):
        session.refresh(row)
        raise busy(row)
    return start_queued(request, session, producer, response, row)
