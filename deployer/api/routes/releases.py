"""/v1/deployments/{id}/rollback and /v1/deployments/{id}/versions (issue 14).

A rollback is queued like a redeploy (the API never calls FC): the worker probes the target version through
a short-lived trigger and then moves the `live` alias, one alias update. The versions list comes from the
release history the deploy task keeps in the row's result (image, command, env keys, probe, fingerprint);
secret values are never part of it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from deployer.api.deps import CurrentOwner, ProducerDep, RateLimited, SessionDep, SettingsDep
from deployer.api.problems import Problem
from deployer.api.routes.common import PREFIX, IdOrName, busy, get_row, redeployable, start_queued
from deployer.ops import releases
from deployer.store import lifecycle
from deployer.store.result import DeploymentResult
from deployer.store.tables import DeploymentRow
from schemas import Deployment

router = APIRouter(tags=["releases"])


class RollbackRequest(BaseModel):
    model_config = {"extra": "forbid"}
    to: str | None = Field(
        default=None, description="the version to serve; default the previous verified one"
    )


class VersionInfo(BaseModel):
    version: str
    release: int | None = None
    image: str | None = None
    command: list[str] = []
    env_keys: list[str] = []
    created: str | None = None
    probe: dict[str, Any] | None = None
    fingerprint: Any = None
    live: bool = False
    deleted: bool = False


class VersionList(BaseModel):
    live: str | None
    versions: list[VersionInfo]


def _live(row: DeploymentRow) -> str | None:
    return releases.live_version(row.result)


def _releases(row: DeploymentRow) -> list[dict[str, Any]]:
    return [dict(r) for r in DeploymentResult.from_json(row.result).releases]


@router.get(PREFIX + "/{id}/versions", response_model=VersionList)
def list_versions(id: IdOrName, owner: CurrentOwner, session: SessionDep) -> VersionList:
    """The deployment's published versions, newest first, and which one `live` serves."""
    row = get_row(session, owner, id)
    live = _live(row)
    versions = [VersionInfo(**{**r, "live": r.get("version") == live}) for r in reversed(_releases(row))]
    return VersionList(live=live, versions=versions)


@router.post(
    PREFIX + "/{id}/rollback", status_code=202, response_model=Deployment, dependencies=[RateLimited]
)
def rollback(
    id: IdOrName,
    request: Request,
    response: Response,
    owner: CurrentOwner,
    session: SessionDep,
    settings: SettingsDep,
    producer: ProducerDep,
    body: RollbackRequest | None = None,
) -> Deployment:
    """Move `live` back (probed first, then one alias update)."""
    row = redeployable(session, owner, id)
    published = _releases(row)
    if not published:
        raise Problem(409, f"{row.name} has no published versions to roll back to", kind="no-versions")
    target = body.to if body else None
    if target is None and releases.rollback_target(row.result) is None:
        raise Problem(
            409,
            f"{row.name} has no earlier verified version to roll back to (live serves version {_live(row)})",
            kind="no-earlier-version",
        )
    if target is not None:
        known = {str(r.get("version")): r for r in published}
        if target not in known or known[target].get("deleted"):
            raise Problem(404, f"{row.name} has no version {target}", kind="no-such-version")
        if releases.failed_verification(known[target]):
            # Refused at once: the worker would probe it again for up to a minute and fail (issue 26 #14).
            error = (known[target].get("probe") or {}).get("error") or "its probe failed"
            raise Problem(
                409,
                f"version {target} of {row.name} failed verification ({' '.join(str(error).split())[:200]}): "
                "it never served and cannot be rolled back to; `mcp-fc history` shows the verified ones",
                kind="version-not-verified",
            )
    if not lifecycle.queue_rollback(session, row, to=target, deadline_s=settings.deploy_deadline_s):
        session.refresh(row)
        raise busy(row)
    return start_queued(request, session, producer, response, row)
