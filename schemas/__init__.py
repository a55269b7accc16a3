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
