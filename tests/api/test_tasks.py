"""GET /v1/tasks/{task_id}: the Celery view of a deployment's current task."""

from __future__ import annotations

from fastapi.testclient import TestClient

from deployer import celery_app as queue

from .conftest import assert_problem


def test_a_queued_task_is_pending(client: TestClient, alice, deploy) -> None:
    dep = deploy()
    r = client.get(f"/v1/tasks/{dep['task_id']}", headers=alice)
    assert r.status_code == 200
    assert r.json() == {
        "task_id": dep["task_id"],
        "state": "PENDING",
        "ready": False,
        "successful": None,
        "value": None,
    }


def test_a_successful_task_shows_its_value(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy()
    queue.producer(settings).backend.store_result(
        dep["task_id"], {"deployment_id": dep["id"], "status": "succeeded"}, "SUCCESS"
    )
    body = client.get(f"/v1/tasks/{dep['task_id']}", headers=alice).json()
    assert body["state"] == "SUCCESS" and body["ready"] is True and body["successful"] is True
    assert body["value"] == {"deployment_id": dep["id"], "status": "succeeded"}


def test_a_failed_task_shows_the_exception_type_only(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy()
    queue.producer(settings).backend.store_result(
        dep["task_id"], KeyError("AccessKeySecret=abc123"), "FAILURE"
    )
    r = client.get(f"/v1/tasks/{dep['task_id']}", headers=alice)
    body = r.json()
    assert body["state"] == "FAILURE" and body["ready"] is True and body["successful"] is False
    assert body["value"] == "KeyError"
    assert "abc123" not in r.text


def test_a_started_task_is_not_ready(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy()
    queue.producer(settings).backend.store_result(dep["task_id"], {"pid": 1, "hostname": "w1"}, "STARTED")
    body = client.get(f"/v1/tasks/{dep['task_id']}", headers=alice).json()
    assert body == {
        "task_id": dep["task_id"],
        "state": "STARTED",
        "ready": False,
        "successful": None,
        "value": None,
    }


def test_tasks_that_are_not_ours_are_404(client: TestClient, alice, deploy) -> None:
    assert_problem(client.get("/v1/tasks/0123456789abcdef01234567", headers=alice), 404)
    dep = deploy()
    (
        assert_problem(client.get(f"/v1/tasks/{dep['id']}", headers=alice), 404),
        "a deployment id is not a task id",
    )
