"""POST /v1/deployments/{id}/reconcile and the Deployment's `drift`, against a real SQLite store and broker."""

from __future__ import annotations

from deployer import celery_app as queue
from deployer.store.db import session_scope
from deployer.store.tables import DeploymentRow
from schemas import Status

from .conftest import CANARY, assert_problem, broker_messages, move, row_of


def test_reconcile_queues_the_deploy_task_with_the_same_spec(client, alice, deploy, settings):
    dep = deploy()
    move(settings, dep["id"], Status.running, Status.succeeded)
    r = client.post(f"/v1/deployments/{dep['name']}/reconcile", headers=alice)
    assert r.status_code == 202, r.text
    new = r.json()
    assert new["status"] == "pending" and new["task_id"] != dep["task_id"] and new["spec"] == dep["spec"]
    assert row_of(settings, dep["id"]).operation == "reconcile"
    message = broker_messages(settings)[-1]
    assert message["headers"]["task"] == queue.DEPLOY_TASK and message["headers"]["id"] == new["task_id"]
    assert CANARY not in str(message)


def test_reconcile_refuses_while_busy_deleted_or_unknown(client, alice, bob, deploy, settings):
    dep = deploy()
    url = f"/v1/deployments/{dep['id']}/reconcile"
    assert "in progress" in assert_problem(client.post(url, headers=alice), 409)["detail"]
    assert_problem(client.post(url, headers=bob), 404)
    move(settings, dep["id"], Status.running, Status.failed)
    # a reconcile releases nothing: on a failed deployment it would end succeeded with the spec never live
    refused = assert_problem(client.post(url, headers=alice), 409)
    assert "mcp-fc redeploy" in refused["detail"] and refused["type"].endswith("not-live")
    move(settings, dep["id"], Status.deleting, Status.deleted)
    assert "deleted" in assert_problem(client.post(url, headers=alice), 409)["detail"]
    assert len(broker_messages(settings)) == 1


def test_drift_is_a_field_of_its_own(client, alice, deploy, settings):
    dep = deploy()
    drift = {
        "drifted": True,
        "checked_at": "2026-12-03T07:00:00+00:00",
        "fields": [{"field": "memorySize", "fc": 1024, "spec": 512}],
    }
    with session_scope(settings) as session:
        row = session.get(DeploymentRow, dep["id"])
        row.result = {"function_result": {"body": {}}, "drift": drift}
    shown = client.get(f"/v1/deployments/{dep['id']}", headers=alice).json()
    assert shown["drift"]["fields"] == drift["fields"] and shown["drift"]["drifted"] is True
    assert shown["result"]["function_result"] == {"body": {}}
