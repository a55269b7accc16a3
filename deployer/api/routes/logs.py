"""GET /v1/deployments/{id}/logs: the MCP server's own stdout and stderr (issue 15).

Progress events stay under /events. This route reads Simple Log Service (deployer/fc/sls.py), never
FC's control plane: a read of logs is not a change to the function, so it needs no task (the rule that
only tasks call FC is about FC). On the emulator the same GetLogs is answered from the instances' output.
Secret env values are scrubbed from every line before it leaves.
"""

from __future__ import annotations

import math
import re
import time
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from deployer.api.deps import CurrentOwner, SessionDep, SettingsDep, VaultDep
from deployer.api.problems import Problem, ProblemDetail
from deployer.api.routes.common import PREFIX, IdOrName, get_row
from deployer.errors import LogsUnavailable
from deployer.fc import sls as runtime_logs

router = APIRouter(tags=["logs"])

MAX_TAIL = 2000
_DURATION = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>[smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class LogLineOut(BaseModel):
    time: str
    time_ns: int
    instance_id: str
    qualifier: str
    stream: str
    message: str


class LogSource(BaseModel):
    project: str
    logstore: str
    emulator: bool


class LogPage(BaseModel):
    deployment_id: str
    name: str
    source: LogSource
    lines: list[LogLineOut]
    cursor: str | None = None


def parse_since(value: str | None, now: float) -> float | None:
    """``10m`` / ``2h`` / ``30s`` / ``1d`` ago, or an ISO 8601 time; None when unset.

    A time before 1970 (``99999...9s`` overflows to infinity) is refused like any other bad value: Simple
    Log Service takes Unix seconds, and the ns bound it leads to overflowed into a 500 (issue 26 #14)."""
    if not value:
        return None
    if match := _DURATION.match(value.strip()):
        since = now - float(match.group("n")) * _UNITS[match.group("unit")]
    else:
        try:
            since = datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise Problem(
                422, f"since must be a duration (30s, 10m, 2h, 1d) or an ISO 8601 time, not {value[:40]!r}"
            ) from None
    if not math.isfinite(since) or since < 0:
        raise Problem(422, f"since reaches back before 1970 (Unix time 0): {value[:40]!r}")
    return since


@router.get(
    PREFIX + "/{id}/logs",
    response_model=LogPage,
    responses={
        400: {"model": ProblemDetail, "description": "a cursor this route did not hand out"},
        404: {"model": ProblemDetail, "description": "no such deployment for this API key"},
        409: {"model": ProblemDetail, "description": "the deployment ships no logs (no `log` config on FC)"},
        502: {"model": ProblemDetail, "description": "Simple Log Service failed"},
        503: {"model": ProblemDetail, "description": "no credentials to read the emulator's logs"},
    },
)
def read_logs(
    id: IdOrName,
    owner: CurrentOwner,
    session: SessionDep,
    settings: SettingsDep,
    vault: VaultDep,
    since: Annotated[str | None, Query(description="30s, 10m, 2h, 1d, or an ISO 8601 time")] = None,
    tail: Annotated[int | None, Query(ge=0, le=MAX_TAIL, description="only the last N lines")] = None,
    after: Annotated[str | None, Query(description="the cursor of an earlier page: only newer lines")] = None,
    bridge: Annotated[
        bool, Query(description="also the lines of the bridge in front of the server (hidden by default)")
    ] = False,
) -> LogPage:
    """The deployment's own output, oldest first (default: the server's last 100 lines of the last 24 hours;
    `bridge=true` adds the bridge's)."""
    row = get_row(session, owner, id)
    now = time.time()
    since_s = parse_since(since, now)
    if tail is None and after is None and since_s is None:
        tail = 100
    secrets = list((vault.decrypt_json(row.secret_env_enc) or {}).values()) if row.secret_env_enc else []
    name, region, spec, dep_id = row.name, row.region, dict(row.spec or {}), row.id
    session.close()  # SLS may take seconds: hold no database connection meanwhile
    try:
        source = runtime_logs.source_for(settings, spec, region)
        client = runtime_logs.make_client(settings, source, region)
        reader = runtime_logs.read if bridge else runtime_logs.read_own
        lines, cursor = reader(
            client,
            source,
            name,
            since_s=since_s,
            tail=tail,
            after=after,
            secrets=[str(s) for s in secrets],
            now=now,
        )
    except LogsUnavailable as exc:
        kind = {409: "no-logs", 400: "bad-cursor"}.get(exc.status, "logs-unavailable")
        raise Problem(exc.status, exc.message, kind=kind, deployment_id=dep_id) from None
    return LogPage(
        deployment_id=dep_id,
        name=name,
        source=LogSource(project=source.project, logstore=source.logstore, emulator=source.emulator),
        lines=[LogLineOut(**line.to_dict()) for line in lines],
        cursor=cursor,
    )
