"""Cancelling a redeploy leaves the row saying what FC runs (issue 16 #6). Real worker, embedded stack."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from deployer.store.db import session_scope
from deployer.store.tables import DeploymentEvent
from tests.conftest import wait_until

pytestmark = pytest.mark.integration

V1 = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/mcp-server-time:1.0"
V2 = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/mcp-server-time:2.0"
V3 = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/mcp-server-time:3.0"


@pytest.fixture(scope="module")
def stack(stack_factory):
    stack = stack_factory(probe=False, pool="threads", concurrency=1)
    stack.fc.backend.configure(pending_seconds=0)
    return stack


def fc_image(stack, name: str) -> str:
    return stack.fc.backend.snapshot()["functions"][name]["customContainerConfig"]["image"]


def events(stack, dep_id: str) -> list[str]:
    with session_scope(stack.settings) as session:
        return list(
            session.scalars(
                select(DeploymentEvent.message)
                .where(DeploymentEvent.deployment_id == dep_id)
                .order_by(DeploymentEvent.id)
            )
        )


def deploy_v1(stack, name: str) -> str:
    with stack.http() as http:
        dep_id = http.post("/v1/deployments", json={"name": name, "image": V1, "command": ["srv"]}).json()[
            "id"
        ]
    assert stack.wait_for(dep_id, {"succeeded", "failed"})["status"] == "succeeded"
    return dep_id


def test_cancelling_a_pending_redeploy_restores_the_spec_fc_runs(stack):
    name = "cancel-pending-redeploy"
    dep_id = deploy_v1(stack, name)
    stack.stop_workers()  # nothing takes the redeploy: it stays pending
    with stack.http() as http:
        assert http.post(f"/v1/deployments/{dep_id}/redeploy", json={"image": V2}).status_code == 202
        cancel = http.post(f"/v1/deployments/{dep_id}/cancel")
        assert cancel.status_code == 200, cancel.text
        assert cancel.json()["status"] == "cancelled"
        assert cancel.json()["spec"]["image"] == V1  # what FC runs
        stack.start_worker("after-cancel", pool="threads", concurrency=1)
        # An unrelated partial redeploy must not deploy the cancelled image.
        assert http.post(f"/v1/deployments/{dep_id}/redeploy", json={"env": {"K": "v"}}).status_code == 202
    dep = stack.wait_for(dep_id, {"succeeded", "failed"})
    assert dep["status"] == "succeeded", dep
    assert dep["spec"]["image"] == V1
    assert fc_image(stack, name) == V1
    assert any("back to what FC runs" in m for m in events(stack, dep_id))


def test_a_cancelled_running_redeploy_says_what_fc_now_runs(stack):
    name = "cancel-running-redeploy"
    dep_id = deploy_v1(stack, name)
    stack.fc.faults.configure({"UpdateFunction": {"latency_ms": 1500}})
    stack.fc.faults.reset_stats()
    try:
        with stack.http() as http:
            assert http.post(f"/v1/deployments/{dep_id}/redeploy", json={"image": V3}).status_code == 202
            wait_until(
                lambda: stack.fc.faults.stats()["calls"].get("UpdateFunction"),
                timeout=60,
                what="the worker inside UpdateFunction",
            )
            assert http.post(f"/v1/deployments/{dep_id}/cancel").status_code == 202
        dep = stack.wait_for(dep_id, {"cancelled", "succeeded", "failed"})
    finally:
        stack.fc.faults.clear()
    assert dep["status"] == "cancelled", dep
    # The held UpdateFunction landed: FC runs v3, and the row says so.
    assert fc_image(stack, name) == V3
    assert dep["spec"]["image"] == V3
    assert any("FC runs this redeploy's spec" in m and V3 in m for m in events(stack, dep_id)), events(
        stack, dep_id
    )
