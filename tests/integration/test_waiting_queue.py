"""A deploy that keeps waiting for FC to make its function Active moves its re-polls to the `waiting`
queue, so workers of their own can serve them (real workers, embedded broker, SQLite)."""

from __future__ import annotations

import pytest

from tests.conftest import wait_until

pytestmark = pytest.mark.integration

IMAGE = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/mcp-server-time:1.0"


def test_a_long_wait_re_polls_from_the_waiting_queue(stack_factory):
    stack = stack_factory(probe=False, workers=0, extra_env={"MCPFC_WAIT_QUEUE_AFTER_S": "1"})
    stack.fc.backend.configure(pending_seconds=3)
    stack.start_worker("front", pool="threads", concurrency=2, queues="high,default,low")
    stack.start_worker("waits", pool="threads", concurrency=2, queues="waiting")
    with stack.http() as http:
        resp = http.post(
            "/v1/deployments", json={"name": "slow-start", "image": IMAGE, "command": ["mcp-server-time"]}
        )
        assert resp.status_code == 202, resp.text
        task_id = resp.json()["task_id"]
    dep = stack.wait_for(resp.json()["id"], {"succeeded", "failed"})
    assert dep["status"] == "succeeded", (dep, stack.worker_logs())

    def log_of(worker: str) -> str:
        return next(stack.settings.data_dir.glob(f"worker-{worker}.log")).read_text(errors="replace")

    assert f"[{task_id}] received" in log_of("front"), "the first run is on the front worker"
    assert f"[{task_id}] received" in log_of("waits"), (
        "a re-poll after 1 s of waiting is on the waiting worker"
    )
    # Celery logs the success after the task returns, i.e. after the row says succeeded.
    wait_until(
        lambda: f"[{task_id}] succeeded" in log_of("waits"),
        timeout=30,
        what="the run that saw Active finishing the deploy on the waiting worker",
    )
