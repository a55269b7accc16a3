"""The wire contract of mcp-fc: requests, responses and FC 3.0's limits (imports nothing of ours)."""

from schemas.deploy import (
    MASK,
    AuthSpec,
    AuthType,
    DeployRequest,
    LogSpec,
    Priority,
    ProxyKind,
    RedeployRequest,
    Transport,
    VpcSpec,
    sse_deprecated,
)
from schemas.deployment import (
    TERMINAL,
    TRANSITIONS_INTO,
    Deployment,
    DeploymentError,
    DeploymentPage,
    Status,
    TaskView,
    Urls,
    can_transition,
)

__all__ = [
    "MASK",
    "sse_deprecated",
    "TERMINAL",
    "TRANSITIONS_INTO",
    "AuthSpec",
    "AuthType",
    "DeployRequest",
    "Deployment",
    "DeploymentError",
    "DeploymentPage",
    "LogSpec",
    "Priority",
    "ProxyKind",
    "RedeployRequest",
    "Status",
    "TaskView",
    "Transport",
    "Urls",
    "VpcSpec",
    "can_transition",
]
