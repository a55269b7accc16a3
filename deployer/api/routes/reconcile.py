"""POST /v1/deployments/{id}/reconcile: converge config drift (issue 15 #4).

The API never calls FC: a reconcile is queued like a redeploy of the deployment's own spec (operation
`reconcile`); the deploy task writes again only what FC shows drifted (the function's config, the trigger,
`live` back to the recorded version) and never publishes a version (issue 26 #2), so it runs on succeeded
deployments only. Its success clears the recorded `drift`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from deployer.api.deps import CurrentOwner, ProducerDep, RateLimited, SessionDep, SettingsDep
from deployer.api.problems import Problem, ProblemDetail
from deployer.api.routes.common import PREFIX, IdOrName, busy, redeployable, start_queued
from deployer.store import lifecycle
from schemas import Deployment, Status

router = APIRouter(tags=["deployments"])


@router.post(
    PREFIX + "/{id}/reconcile",
    status_code=202,
    response_model=Deployment,
    dependencies=[RateLimited],
    responses={
        404: {"model": ProblemDetail, "description": "no such deployment for this API key"},
        409: {
            "model": ProblemDetail,
            "description": "deleted, failed or cancelled (redeploy it instead), or a deploy is in progress",
        },
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
    if row.status != Status.succeeded:
        # A reconcile releases nothing (issue 26 #2): on a failed or cancelled deployment it would end
        # `succeeded` while the spec never went live.
        raise Problem(
            409,
            f"{row.name} is {row.status}: a reconcile converges a live deployment's drift without a release; "
            f"`mcp-fc redeploy {row.name}` deploys its spec again",
            kind="not-live",
            deployment_id=row.id,
        )
    if not lifecycle.queue_reconcile(session, row, deadline_s=settings.deploy_deadline_s):
        session.refresh(row)
        raise busy(row)
    return start_queued(request, session, producer, response, row)
