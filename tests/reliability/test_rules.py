"""Concurrency rules and partial failure, through the real stack (API, two worker processes, Redis,
PostgreSQL, the FC emulator with a call log).

- Runs of one deployment never interleave their FC calls (the lease), whether they are redeliveries of
  one task or a delete racing a deploy.
- A deploy or redeploy of a name whose deploy is running is refused with a clear 409.
- An Idempotency-Key replay returns the first answer, even for concurrent first requests.
- A function created but its trigger refused for good ends `failed` with the function_result kept and the
  step, FC's code and message in the error, after one CreateTrigger call; a redeploy converges.
"""

from __future__ import annotations

import secrets
import socket
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from deployer import celery_app as queue
from deployer.store import lifecycle
from deployer.store.db import session_scope
from tests.reliability.conftest import (
    CallLog,
    Stack,
    build_reliable_stack,
    deploy_body,
    require_service,
    statuses,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def stack(stack_factory, private_redis, pg_database):
    require_service("PostgreSQL", 5432)
    built = build_reliable_stack(stack_factory, private_redis, pg_database, workers=2, concurrency=4)
    yield built
    built.stop_workers()


def active_rows(stack: Stack) -> int:
    from sqlalchemy import func, select

    from deployer.store.tables import DeploymentRow

    with session_scope(stack.settings) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(DeploymentRow)
                .where(DeploymentRow.status.in_(["pending", "running", "deleting"]))
            )
            or 0
        )


@pytest.fixture
def fc(stack: Stack):
    """The stack's emulator with no fault and zeroed counters, once nothing of an earlier test still runs
    (so a failed test cannot leak FC calls into the next one's counts)."""
    wait_until(lambda: active_rows(stack) == 0, 60, what="earlier tests' deployments settled")
    stack.fc.faults.reset()
    yield stack.fc
    stack.fc.faults.reset()


def wait_status(stack: Stack, dep_id: str, statuses_: set[str], timeout: float = 60):
    return wait_until(
        lambda: (r := statuses(stack, [dep_id])[dep_id]).status in statuses_ and r,
        timeout,
        what=f"{dep_id} in {statuses_}",
        interval=0.1,
    )


def task_retries(stack: Stack, task_id: str) -> int:
    """How often a worker logged `retry` for this task (a Busy run re-schedules itself)."""
    text = "\n".join(p.read_text(errors="replace") for p in stack.settings.data_dir.glob("worker-*.log"))
    return text.count(f"[{task_id}] retry")


# -- the lease -----------------------------------------------------------------------------------------


def test_runs_of_one_deployment_never_interleave_fc_calls(stack, fc):
    """Four copies of one deploy task (a redelivery storm) on eight worker processes, and a delete sent
    while a deploy runs: per function, no two FC calls overlap in time. Two different names deployed at
    the same time do overlap, so the call log would see interleaving if it happened."""
    log = CallLog(fc.backend, hold={"rc-dup": 0.3, "rc-del": 0.3, "rc-free-a": 0.3, "rc-free-b": 0.3})
    producer = queue.producer(stack.settings)
    with stack.http() as http:
        dup = http.post("/v1/deployments", json=deploy_body("rc-dup")).json()
        for _ in range(3):  # the same task id again: as if the broker redelivered it three times
            queue.enqueue(producer, task=queue.DEPLOY_TASK, deployment_id=dup["id"], task_id=dup["task_id"])
        dele = http.post("/v1/deployments", json=deploy_body("rc-del")).json()
        free = [http.post("/v1/deployments", json=deploy_body(n)).json() for n in ("rc-free-a", "rc-free-b")]
        wait_until(lambda: log.count("rc-del", "create_function"), 30, what="rc-del's deploy inside FC")
        assert http.delete(f"/v1/deployments/{dele['id']}").status_code == 202

    assert wait_status(stack, dup["id"], {"succeeded", "failed"}).status == "succeeded"
    assert wait_status(stack, dele["id"], {"deleted", "failed"}).status == "deleted"
    for dep in free:
        assert wait_status(stack, dep["id"], {"succeeded", "failed"}).status == "succeeded"

    for name in ("rc-dup", "rc-del"):
        calls = log.of(name)
        assert len(calls) >= 3, calls
        assert not CallLog.overlaps(calls), f"{name}: interleaved FC calls {CallLog.overlaps(calls)}"
    # the duplicates really competed for the lease (Busy → retry), and resumed from the checkpoint
    assert task_retries(stack, dup["task_id"]) >= 1
    assert log.count("rc-dup", "create_function") == 1 and log.count("rc-dup", "update_function") == 0
    # the detector works: calls of two different deployments do run at the same time
    assert CallLog.overlaps(log.of("rc-free-a") + log.of("rc-free-b"))
    assert "rc-del" not in fc.backend.snapshot()["functions"]


def test_lease_owner_fits_its_column_with_a_long_host_name(stack, monkeypatch):
    """A Kubernetes pod name made the lease owner longer than 64 characters, which PostgreSQL refuses."""
    from tasks.context import execution_id

    monkeypatch.setattr(
        socket, "gethostname", lambda: "mcp-fc-worker-7d9f8c6b5d-x2x9k.workers.svc.cluster.local"
    )
    owner = execution_id(SimpleNamespace(request=SimpleNamespace(id=lifecycle.new_id())))
    assert len(owner) <= 64 and owner != execution_id(
        SimpleNamespace(request=SimpleNamespace(id=lifecycle.new_id()))
    )
    with stack.http() as http:
        dep = http.post("/v1/deployments", json=deploy_body("rc-lease")).json()
    wait_status(stack, dep["id"], {"succeeded", "failed"})
    with session_scope(stack.settings) as session:  # PostgreSQL: VARCHAR(64)
        assert lifecycle.acquire_lease(session, dep["id"], owner, 5)
        lifecycle.release_lease(session, dep["id"], owner)


# -- 409 while a deploy runs -----------------------------------------------------------------------------


def test_redeploy_while_a_deploy_runs_is_refused_with_409(stack, fc):
    fc.faults.configure({"CreateFunction": {"latency_ms": 2000, "count": 1}})
    with stack.http() as http:
        first = http.post("/v1/deployments", json=deploy_body("rc-busy"))
        assert first.status_code == 202
        dep = first.json()
        wait_status(stack, dep["id"], {"running"})

        again = http.post("/v1/deployments", json=deploy_body("rc-busy", env={"V": "2"}))
        redeploy = http.post(
            f"/v1/deployments/{dep['id']}/redeploy", json={"image": deploy_body("x")["image"]}
        )
        for resp in (again, redeploy):
            assert resp.status_code == 409, resp.text
            assert resp.headers["content-type"].startswith(PROBLEM)
            problem = resp.json()
            assert problem["type"] == "urn:mcp-fc:problem:in-progress"
            assert (
                "rc-busy is in progress" in problem["detail"]
                and "wait for it or cancel it" in problem["detail"]
            )
            assert problem["deployment_id"] == dep["id"] and problem["deployment_status"] in (
                "pending",
                "running",
            )
        # nothing was queued or changed by the refused requests
        row = statuses(stack, [dep["id"]])[dep["id"]]
        assert row.task_id == dep["task_id"] and row.spec.get("env") in ({}, None)

        done = wait_status(stack, dep["id"], {"succeeded", "failed"})
        assert done.status == "succeeded"
        url = done.urls["internet"]
        # once it is done, the same redeploy is accepted and keeps the trigger URL
        resp = http.post(f"/v1/deployments/{dep['id']}/redeploy", json={"env": {"V": "2"}})
        assert resp.status_code == 202, resp.text
        redone = wait_status(stack, dep["id"], {"succeeded", "failed"})
        assert redone.status == "succeeded" and redone.urls["internet"] == url
        assert redone.task_id != dep["task_id"]


# -- Idempotency-Key ----------------------------------------------------------------------------------------


def test_idempotency_key_replays_return_the_first_answer(stack, fc):
    log = CallLog(fc.backend)
    key = f"idem-{secrets.token_hex(6)}"
    body = deploy_body("rc-idem")

    def post(b=body):
        with stack.http() as http:
            return http.post("/v1/deployments", json=b, headers={"Idempotency-Key": key})

    with ThreadPoolExecutor(max_workers=8) as pool:  # eight first requests at once
        answers = list(pool.map(lambda _: post(), range(8)))
    assert {r.status_code for r in answers} == {202}, [r.text for r in answers]
    assert len({(r.json()["id"], r.json()["task_id"]) for r in answers}) == 1
    first = answers[0].json()
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in answers) == 7

    done = wait_status(stack, first["id"], {"succeeded", "failed"})
    assert done.status == "succeeded"
    later = post()
    assert later.status_code == 202 and later.headers["Idempotent-Replayed"] == "true"
    assert later.json()["id"] == first["id"] and later.json()["task_id"] == first["task_id"]
    assert later.json()["created_at"] == first["created_at"]
    # one deployment, deployed once
    with stack.http() as http:
        rows = http.get("/v1/deployments", params={"name": "rc-idem"}).json()["items"]
    assert [r["id"] for r in rows] == [first["id"]] and done.attempts == 1
    assert log.count("rc-idem", "create_function") == 1 and log.count("rc-idem", "create_trigger") == 1

    other = post({**body, "memory_mb": 1024})
    assert other.status_code == 422 and other.headers["content-type"].startswith(PROBLEM)
    assert other.json()["errors"][0] == {
        "field": "Idempotency-Key",
        "rule": "idempotency_key_reused",
        "message": "the key was first used with another body",
    }


# -- partial failure ----------------------------------------------------------------------------------------


def test_trigger_refused_for_good_fails_clearly_then_a_redeploy_converges(stack, fc):
    message = "triggerConfig.methods contains an unsupported method"
    fc.faults.configure(
        {
            "CreateTrigger": {
                "error_rate": 1.0,
                "error_status": 400,
                "error_code": "InvalidArgument",
                "error_message": message,
            }
        }
    )
    log = CallLog(fc.backend)
    with stack.http() as http:
        dep = http.post("/v1/deployments", json=deploy_body("rc-partial")).json()
    failed = wait_status(stack, dep["id"], {"succeeded", "failed"})
    assert failed.status == "failed"
    assert failed.error["step"] == "trigger" and failed.error["code"] == "InvalidArgument", failed.error
    assert failed.error["message"] == message and failed.error["retryable"] is False
    assert failed.error["request_id"]  # FC's request id, for a support ticket
    assert failed.result["function_result"]["body"]["functionName"] == "rc-partial"
    assert failed.result["trigger_result"] is None
    # a clear failure, not a retry loop: FC saw exactly one CreateTrigger
    assert fc.faults.stats()["calls"].get("CreateTrigger") == 1
    assert "rc-partial" in fc.backend.snapshot()["functions"]  # the function is kept, not rolled back

    with stack.http() as http:
        public = http.get(f"/v1/deployments/{dep['id']}").json()
        assert public["error"]["step"] == "trigger" and public["result"]["function_result"]
        fc.faults.reset()
        creates = log.count("rc-partial", "create_function")
        assert http.post(f"/v1/deployments/{dep['id']}/redeploy", json={}).status_code == 202
    fixed = wait_status(stack, dep["id"], {"succeeded", "failed"})
    assert fixed.status == "succeeded" and fixed.error is None
    state = fc.backend.snapshot()
    assert len(state["triggers"]["rc-partial"]) == 1
    # the redeploy updated the function in place
    assert (
        log.count("rc-partial", "create_function") == creates
        and log.count("rc-partial", "update_function") == 1
    )


def test_function_refused_for_good_fails_at_the_function_step(stack, fc):
    fc.faults.configure(
        {
            "CreateFunction": {
                "error_rate": 1.0,
                "error_status": 400,
                "error_code": "InvalidArgument",
                "error_message": "image is not in a supported registry",
            }
        }
    )
    with stack.http() as http:
        dep = http.post("/v1/deployments", json=deploy_body("rc-badfn")).json()
    failed = wait_status(stack, dep["id"], {"succeeded", "failed"})
    assert failed.status == "failed" and failed.error["step"] == "function"
    assert failed.error["code"] == "InvalidArgument" and "supported registry" in failed.error["message"]
    assert fc.faults.stats()["calls"] == {"CreateFunction": 1}
    assert "rc-badfn" not in fc.backend.snapshot()["functions"]
