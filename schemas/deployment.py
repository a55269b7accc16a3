"""The deployment record every API response carries, and its status machine."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.deploy import DeployRequest


class Status(StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    deleting = "deleting"
    deleted = "deleted"


TERMINAL = frozenset({Status.succeeded, Status.failed, Status.cancelled, Status.deleted})
#: A task is (or should be) at work: the API refuses a second operation, the recovery sweep watches it.
IN_PROGRESS = frozenset({Status.pending, Status.running, Status.deleting})

# Legal status changes. A redeploy moves a finished deployment back to pending; a delete may start from
# any state but deleted; a failed delete (FC refused) goes back to failed with the reason.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.pending: frozenset({Status.running, Status.failed, Status.cancelled, Status.deleting}),
    Status.running: frozenset(
        {Status.succeeded, Status.failed, Status.cancelled, Status.deleting, Status.pending}
    ),
    Status.succeeded: frozenset({Status.pending, Status.deleting}),
    Status.failed: frozenset({Status.pending, Status.deleting}),
    Status.cancelled: frozenset({Status.pending, Status.deleting}),
    Status.deleting: frozenset({Status.deleted, Status.failed}),
    Status.deleted: frozenset(),
}


# For each status, the statuses it may be entered from (what a compare-and-set update checks).
TRANSITIONS_INTO: dict[Status, frozenset[Status]] = {
    new: frozenset(old for old, targets in TRANSITIONS.items() if new in targets) for new in Status
}


def can_transition(old: Status, new: Status) -> bool:
    return old == new or new in TRANSITIONS[old]


class DeploymentError(BaseModel):
    code: str
    message: str
    retryable: bool = False
    request_id: str | None = None
    step: str | None = Field(default=None, description="the deploy step that failed")


class Urls(BaseModel):
    internet: str | None = None
    intranet: str | None = None
    sse: str | None = Field(
        default=None, description="SSE endpoint (GET /sse, then POST /messages/); transport sse, deprecated"
    )
    mcp: str | None = Field(default=None, description="Streamable HTTP endpoint (the default transport)")


class HealthStatus(StrEnum):
    healthy = "healthy"
    unhealthy = "unhealthy"
    unknown = "unknown"


class Health(BaseModel):
    """The latest scheduled MCP health check of the live release (`unknown` until the first one)."""

    status: HealthStatus = HealthStatus.unknown
    checked_at: datetime | None = None
    latency_ms: int | None = Field(
        default=None, description="the probe's time: connect, initialize, tools/list"
    )
    last_error: str | None = Field(default=None, description="what the latest failed probe saw")
    consecutive_failures: int = 0


class ToolChange(BaseModel):
    description: dict[str, Any] | None = Field(default=None, description='{"old", "new"} when it changed')
    input_schema: list[dict[str, Any]] = Field(
        default_factory=list, description='each JSON pointer that changed: {"path", "old"?, "new"?}'
    )


class ToolDrift(BaseModel):
    """How the tools a server lists differ from a recorded probe (added, removed, changed)."""

    against: str = Field(description='what they were compared with: "the deploy", "release 1", ...')
    detected_at: datetime
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    changed: dict[str, ToolChange] = Field(default_factory=dict)


class DriftField(BaseModel):
    field: str = Field(description="the FC field, e.g. memorySize or trigger.triggerConfig.methods")
    fc: Any = Field(default=None, description="what FC has (secret env values as ***)")
    spec: Any = Field(default=None, description="what the deployment's spec produces")


class Drift(BaseModel):
    """What the scheduled config check found: FC's managed fields against the spec."""

    drifted: bool
    checked_at: datetime
    fields: list[DriftField] = Field(default_factory=list)


class TokenStatus(BaseModel):
    """The endpoint token's expiry, as the scheduled token check saw it."""

    expires_at: datetime
    expiring: bool = Field(description="expires within the warning window (MCPFC_TOKEN_EXPIRY_WARN_DAYS)")
    checked_at: datetime


class LiveRelease(BaseModel):
    """What the endpoint serves: the version the `live` alias points to and the spec it was released with
    (issue 26 #4, #14). After a rollback, or a failed or cancelled redeploy, it differs from `spec`."""

    version: str
    release: int | None = None
    image: str | None = None
    command: list[str] = Field(default_factory=list)
    env_keys: list[str] = Field(default_factory=list, description="names only, never values")
    differs_from_spec: list[str] = Field(
        default_factory=list,
        description="the spec fields this release has other values for (empty: `live` serves the spec)",
    )


class Deployment(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    region: str
    status: Status
    stage: str | None = None
    progress: int = Field(default=0, ge=0, le=100)
    task_id: str | None = None
    attempts: int = 0
    error: DeploymentError | None = None
    spec: DeployRequest
    result: dict[str, Any] | None = Field(
        default=None, description='{"function_result": <SDK to_map()>, "trigger_result": <SDK to_map()>}'
    )
    urls: Urls = Field(default_factory=Urls)
    tools: list[str] = Field(default_factory=list)
    health: Health = Field(default_factory=Health)
    tool_drift: ToolDrift | None = Field(
        default=None, description="the health check saw other tools than the deploy recorded (null: none)"
    )
    tool_changes: ToolDrift | None = Field(
        default=None, description="how this release's tools differ from the previous release's (null: same)"
    )
    protocols: list[str] = Field(
        default_factory=list,
        description='MCP revisions the deploy probe saw served, newest first (e.g. ["2026-07-28", "2025-11-25"])',
    )
    tool_fingerprint: str | None = Field(
        default=None,
        description="sha256 over every tool's name, description and input schema, as the probe saw them",
    )
    tool_fingerprints: dict[str, str] = Field(
        default_factory=dict, description="sha256 of each tool's name, description and input schema, by name"
    )
    drift: Drift | None = Field(default=None, description="config drift found by the scheduled check")
    token: TokenStatus | None = Field(default=None, description="the endpoint token's expiry (jwt auth)")
    live: LiveRelease | None = Field(
        default=None,
        description="what the endpoint serves once a run ended, when its trigger serves the `live` alias "
        "(null: no release is live, or a run is in progress)",
    )
    created_at: datetime
    updated_at: datetime


class DeploymentPage(BaseModel):
    items: list[Deployment]
    next_cursor: str | None = None


class TaskView(BaseModel):
    """Celery's view of a task, as Flask's Celery example shows it."""

    task_id: str
    state: str
    ready: bool
    successful: bool | None
    value: Any = None
