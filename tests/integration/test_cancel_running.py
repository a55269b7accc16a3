"""Cancelling a deploy while its worker is inside an FC call: the run stops at its next step boundary,
writes no trigger, and removes the function it created. Real worker, embedded broker and SQLite."""

from __future__ import annotations

import pytest

from tests.conftest import wait_until

pytestmark = pytest.mark.integration

IMAGE = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/mcp-server-time:1.0"


@pytest.fixture(scope="module")
def stack(stack_factory):
    stack = stack_factory(probe=False, pool="threads", concurrency=1)
    stack.fc.backend.configure(pending_seconds=0)  # Active at once: no re-scheduled wait between the steps
    return stack


@pytest.mark.parametrize("operation", ["CreateFunction", "GetFunction"])
def test_cancel_during_an_fc_call_stops_before_the_trigger(stack, operation):
    name = f"cancel-{operation.lower()}"
    stack.fc.faults.configure({operation: {"latency_ms": 1500}})
    stack.fc.faults.reset_stats()
    try:
        with stack.http() as http:
            resp = http.post(
                "/v1/deployments", json={"name": name, "image": IMAGE, "command": ["mcp-server-time"]}
            )
            assert resp.status_code == 202, resp.text
            dep_id = resp.json()["id"]
            wait_until(
                lambda: stack.fc.faults.stats()["calls"].get(operation),
                timeout=60,
                what=f"the worker inside {operation}",
            )
            cancel = http.post(f"/v1/deployments/{dep_id}/cancel")
            assert cancel.status_code == 202, cancel.text
            assert cancel.json()["status"] == "running"
        dep = stack.wait_for(dep_id, {"cancelled", "succeeded", "failed"})
    finally:
        stack.fc.faults.clear()
    assert dep["status"] == "cancelled", (dep, stack.worker_logs())
    calls = stack.fc.faults.stats()["calls"]
    assert "CreateTrigger" not in calls, calls
    state = stack.fc.backend.snapshot()
    assert name not in state["functions"] and not state["triggers"].get(name), "the created function stays"
