"""A timed-out UpdateFunction that FC applies late, after a newer redeploy, is detected and converged
(issue 16 #4). The emulator holds the first UpdateFunction past the SDK's read timeout; the gateway retries
it (that retry succeeds), the redeploy succeeds, a second redeploy succeeds, then the held call lands."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from deployer.ops.converge import function_drift
from deployer.store.db import session_scope
from deployer.store.tables import DeploymentEvent
from schemas import DeployRequest
from tests.conftest import TIMEOUT_SCALE, wait_until

pytestmark = pytest.mark.integration

V1 = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/mcp-server-time:1.0"
V2 = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/mcp-server-time:2.0"
V3 = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/mcp-server-time:3.0"
READ_TIMEOUT_S = 1.5 * TIMEOUT_SCALE
HOLD_S = 4 * READ_TIMEOUT_S


@pytest.fixture(scope="module")
def stack(stack_factory):
    stack = stack_factory(
        probe=False,
        pool="threads",
        concurrency=2,
        extra_env={"MCPFC_FC_READ_TIMEOUT_S": str(READ_TIMEOUT_S), "MCPFC_FC_LATE_WRITE_HORIZON_S": "60"},
    )
    stack.fc.backend.configure(pending_seconds=0)
    return stack


def fc_image(stack, name: str) -> str:
    return stack.fc.backend.snapshot()["functions"][name]["customContainerConfig"]["image"]


def test_a_late_landing_update_is_detected_and_converged(stack):
    name = "late-write"
    with stack.http() as http:
        dep_id = http.post("/v1/deployments", json={"name": name, "image": V1, "command": ["srv"]}).json()[
            "id"
        ]
        assert stack.wait_for(dep_id, {"succeeded", "failed"})["status"] == "succeeded"

        stack.fc.faults.configure({"UpdateFunction": {"latency_ms": HOLD_S * 1000, "count": 1}})
        stack.fc.faults.reset_stats()
        assert http.post(f"/v1/deployments/{dep_id}/redeploy", json={"image": V2}).status_code == 202
        dep = stack.wait_for(dep_id, {"succeeded", "failed"})
        assert dep["status"] == "succeeded", dep
        assert stack.fc.faults.stats()["calls"]["UpdateFunction"] >= 2  # the held one and its retry
        assert http.post(f"/v1/deployments/{dep_id}/redeploy", json={"image": V3}).status_code == 202
        dep = stack.wait_for(dep_id, {"succeeded", "failed"})
        assert dep["status"] == "succeeded" and dep["spec"]["image"] == V3, dep
    # The held v2 call lands after v3 succeeded (FC then runs v2) ...
    wait_until(lambda: fc_image(stack, name) == V2, HOLD_S + 10, interval=0.05, what="the held call landed")
    # ... and the follow-up check writes the deployment's spec (v3) again.
    wait_until(lambda: fc_image(stack, name) == V3, 60, interval=0.2, what="FC back on the stored spec")

    # The verify task writes its event after its UpdateFunction: wait for that commit, not just for FC.
    def messages() -> list[str]:
        with session_scope(stack.settings) as session:
            return list(
                session.scalars(
                    select(DeploymentEvent.message).where(DeploymentEvent.deployment_id == dep_id)
                )
            )

    wait_until(
        lambda: any("a late write landed" in m for m in messages()), 30, interval=0.2, what="the event"
    )


def test_function_drift_names_what_differs():
    req = DeployRequest.model_validate({"name": "x", "image": V1, "command": ["srv"], "env": {"A": "1"}})
    from deployer.fc import spec

    body = spec.update_function_input(req).to_map()
    assert function_drift(req, body) == []
    stale = {
        **body,
        "customContainerConfig": {**body["customContainerConfig"], "image": V2},
        "environmentVariables": {},
    }
    assert function_drift(req, stale) == ["environmentVariables", "customContainerConfig.image"]
