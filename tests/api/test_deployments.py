"""POST/GET/redeploy/delete/cancel on /v1/deployments, against a real SQLite store and filesystem broker."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from deployer import celery_app as queue
from deployer.api import create_app
from deployer.api.routes import deployments as deployments_routes
from deployer.api.routes import reads as reads_routes
from deployer.crypto import Vault
from deployer.store import keys, lifecycle
from deployer.store import reads as store
from deployer.store.db import session_scope
from schemas import Status

from .conftest import (
    CANARY,
    IMAGE,
    assert_problem,
    bearer,
    broker_messages,
    count_rows,
    deploy_body,
    make_settings,
    move,
    new_key,
    row_of,
    set_fields,
)

NEW_IMAGE = "registry.cn-hangzhou.aliyuncs.com/ns/mcp-time:2.0"


# -- create ------------------------------------------------------------------------------------------


def test_create_answers_202_with_location_and_the_deployment(client: TestClient, alice, settings) -> None:
    r = client.post("/v1/deployments", json=deploy_body(), headers=alice)
    assert r.status_code == 202, r.text
    dep = r.json()
    assert r.headers["location"] == f"/v1/deployments/{dep['id']}"
    assert dep["name"] == "mcp-time" and dep["region"] == settings.region == "cn-hangzhou"
    assert (dep["status"], dep["stage"], dep["progress"], dep["attempts"]) == ("pending", "queued", 0, 0)
    assert dep["task_id"] and dep["error"] is None and dep["result"] is None and dep["tools"] == []
    assert dep["urls"] == {"internet": None, "intranet": None, "sse": None, "mcp": None}
    assert dep["spec"]["secret_env"] == {"API_TOKEN": "***"}
    assert dep["spec"]["region"] == "cn-hangzhou" and dep["spec"]["image"] == IMAGE
    assert datetime.fromisoformat(dep["created_at"]).tzinfo is not None
    assert client.get(r.headers["location"], headers=alice).json() == dep
    assert client.get("/v1/deployments/mcp-time", headers=alice).json()["id"] == dep["id"], "name works as id"


def test_the_queued_message_carries_the_deployment_id_only(client: TestClient, alice, settings) -> None:
    dep = client.post("/v1/deployments", json=deploy_body(), headers=alice).json()
    [msg] = broker_messages(settings)
    assert msg["file"].endswith(".default.msg")
    args, kwargs, _embed = msg["body"]
    assert args == [dep["id"]] and kwargs == {}
    assert msg["headers"]["task"] == queue.DEPLOY_TASK and msg["headers"]["id"] == dep["task_id"]
    assert CANARY not in msg["raw"], "secret values never travel through the broker"
    assert IMAGE not in msg["raw"] and "mcp-server-time" not in msg["raw"], "nor does the spec"
    # ... but they are stored, encrypted, for the worker.
    assert store.request_of(Vault.from_settings(settings), row_of(settings, dep["id"])).secret_values() == {
        "API_TOKEN": CANARY
    }


def test_priority_picks_the_queue_and_region_is_kept(client: TestClient, alice, settings) -> None:
    dep = client.post(
        "/v1/deployments",
        json=deploy_body(
            priority="high",
            region="ap-southeast-1",
            image="registry.ap-southeast-1.aliyuncs.com/ns/mcp-time:1.0",
        ),
        headers=alice,
    ).json()
    assert dep["region"] == "ap-southeast-1"
    [msg] = broker_messages(settings)
    assert msg["file"].endswith(".high.msg")


BAD_BODIES = [
    ({"memory_mb": 100}, "memory_mb", "memory_range"),
    ({"cpu": 1.0, "memory_mb": 512}, "memory_mb", "cpu_memory_ratio"),
    ({"cpu": 0.33}, "cpu", "cpu_range"),
    ({"name": "1-starts-with-digit"}, "name", "function_name"),
    ({"env": {"BIG": "x" * 4000}, "secret_env": {"TOKEN": CANARY * 10}}, "env", "env_total_size"),
    ({"env": {"FC_REGION": "x"}}, "env", "env_key_reserved"),
    ({"secret_env": {"bad-key": CANARY}}, "secret_env", "env_key"),
    ({"secret_env": {"TOKEN": 12345}}, "secret_env.TOKEN", "string_type"),
    ({"disk_mb": 1024}, "disk_mb", "disk_size"),
    ({"timeout_s": 0}, "timeout_s", "timeout_range"),
    ({"instance_concurrency": 500}, "instance_concurrency", "concurrency_range"),
    ({"transport": "websocket"}, "transport", "enum"),
    ({"auth": {"type": "password"}}, "auth.type", "enum"),
    ({"auth": {"type": "bearer"}}, "auth.type", "auth_bearer_unverified"),
    (
        {"session_concurrency_per_instance": 11},
        "session_concurrency_per_instance",
        "session_concurrency_exceeds_instance",
    ),
    ({"command": []}, "command", "command_required"),
    ({"image": "Not An Image"}, "image", "image_reference"),
    ({"unexpected": 1}, "unexpected", "extra_forbidden"),
    ({"name": None}, "name", "string_type"),
]


@pytest.mark.parametrize(
    ("overrides", "field", "rule"), BAD_BODIES, ids=[b[2] + ":" + b[1] for b in BAD_BODIES]
)
def test_bad_requests_are_422_naming_field_and_rule(
    client: TestClient, alice, settings, overrides, field, rule
) -> None:
    r = client.post("/v1/deployments", json=deploy_body(**overrides), headers=alice)
    problem = assert_problem(r, 422)
    assert (field, rule) in {(e["field"], e["rule"]) for e in problem["errors"]}, problem["errors"]
    assert all(e["message"] for e in problem["errors"])
    assert field in problem["detail"]
    assert CANARY not in r.text and '"input"' not in r.text
    assert count_rows(settings) == 0 and broker_messages(settings) == []


def test_bearer_auth_is_422_saying_why_and_nothing_is_queued(client: TestClient, alice, settings) -> None:
    r = client.post("/v1/deployments", json=deploy_body(auth={"type": "bearer"}), headers=alice)
    problem = assert_problem(r, 422)
    [error] = problem["errors"]
    assert (error["field"], error["rule"]) == ("auth.type", "auth_bearer_unverified")
    assert (
        "wire format" in error["message"] and "not public" in error["message"] and "jwt" in error["message"]
    )
    assert count_rows(settings) == 0 and broker_messages(settings) == []


def test_missing_body_fields_and_non_object_bodies_are_422(client: TestClient, alice, settings) -> None:
    problem = assert_problem(client.post("/v1/deployments", json={"image": IMAGE}, headers=alice), 422)
    assert ("name", "missing") in {(e["field"], e["rule"]) for e in problem["errors"]}
    assert_problem(client.post("/v1/deployments", json=["not", "an", "object"], headers=alice), 422)
    assert count_rows(settings) == 0 and broker_messages(settings) == []


def test_malformed_json_is_400(client: TestClient, alice, settings) -> None:
    r = client.post(
        "/v1/deployments", content=b'{"name": "x",', headers={**alice, "content-type": "application/json"}
    )
    problem = assert_problem(r, 400)
    assert problem["errors"][0]["rule"] == "json_invalid"
    assert count_rows(settings) == 0 and broker_messages(settings) == []


def test_idempotency_key_replays_the_first_answer(client: TestClient, alice, settings) -> None:
    headers = {**alice, "Idempotency-Key": "deploy-7c1"}
    first = client.post("/v1/deployments", json=deploy_body(), headers=headers)
    assert first.status_code == 202
    move(settings, first.json()["id"], Status.running, stage="function", progress=20)
    again = client.post("/v1/deployments", json=deploy_body(), headers=headers)
    assert again.status_code == 202 and again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "running", "the replay shows the deployment as it is now"
    assert count_rows(settings) == 1 and len(broker_messages(settings)) == 1


def test_idempotency_key_with_another_body_is_422(client: TestClient, alice, settings) -> None:
    headers = {**alice, "Idempotency-Key": "deploy-7c2"}
    assert client.post("/v1/deployments", json=deploy_body(), headers=headers).status_code == 202
    changed = client.post(
        "/v1/deployments", json=deploy_body(secret_env={"API_TOKEN": "other"}), headers=headers
    )
    problem = assert_problem(changed, 422)
    assert problem["errors"][0]["rule"] == "idempotency_key_reused"
    assert count_rows(settings) == 1 and len(broker_messages(settings)) == 1


def test_idempotency_keys_are_per_owner(client: TestClient, alice, bob, settings) -> None:
    a = client.post("/v1/deployments", json=deploy_body("a-fn"), headers={**alice, "Idempotency-Key": "k"})
    b = client.post("/v1/deployments", json=deploy_body("b-fn"), headers={**bob, "Idempotency-Key": "k"})
    assert a.status_code == b.status_code == 202 and a.json()["id"] != b.json()["id"]


def test_posting_a_name_again_redeploys_that_deployment(client: TestClient, alice, settings) -> None:
    first = client.post("/v1/deployments", json=deploy_body(), headers=alice).json()
    busy = client.post("/v1/deployments", json=deploy_body(image=NEW_IMAGE), headers=alice)
    assert "in progress" in assert_problem(busy, 409)["detail"]
    move(settings, first["id"], Status.running, Status.succeeded)
    r = client.post("/v1/deployments", json=deploy_body(image=NEW_IMAGE), headers=alice)
    assert r.status_code == 202, r.text
    dep = r.json()
    assert dep["id"] == first["id"] and dep["status"] == "pending" and dep["task_id"] != first["task_id"]
    assert dep["spec"]["image"] == NEW_IMAGE
    assert row_of(settings, dep["id"]).operation == "deploy"
    assert count_rows(settings) == 1
    assert [m["body"][0] for m in broker_messages(settings)] == [[dep["id"]], [dep["id"]]]
    # The answer says that it replaced a deployment, which status it had and what changes.
    assert r.headers["Mcpfc-Replaced"] == "succeeded"
    assert r.headers["Mcpfc-Changed-Fields"] == "image"


def test_a_replacing_deploy_names_changed_secrets_but_never_their_values(
    client: TestClient, alice, settings
) -> None:
    first = client.post("/v1/deployments", json=deploy_body(), headers=alice).json()
    move(settings, first["id"], Status.running, Status.failed)
    same = client.post("/v1/deployments", json=deploy_body(), headers=alice)
    assert same.headers["Mcpfc-Replaced"] == "failed" and same.headers["Mcpfc-Changed-Fields"] == ""
    move(settings, first["id"], Status.running, Status.succeeded)
    body = deploy_body(memory_mb=1024)
    body["secret_env"] = {"API_TOKEN": "another-secret-value"}
    r = client.post("/v1/deployments", json=body, headers=alice)
    assert r.headers["Mcpfc-Changed-Fields"] == "memory_mb, secret_env"
    assert "another-secret-value" not in str(r.headers) and CANARY not in str(r.headers)


@pytest.mark.parametrize("region", [None, "cn-shanghai"])
def test_an_acr_image_of_another_region_than_the_functions_is_422(
    client: TestClient, alice, settings, region
) -> None:
    body = deploy_body(image="registry.cn-beijing.aliyuncs.com/ns/mcp-time:1.0")
    if region:
        body["region"] = region
    problem = assert_problem(client.post("/v1/deployments", json=body, headers=alice), 422)
    [error] = problem["errors"]
    assert (error["field"], error["rule"]) == ("image", "image_region")
    assert f"function in {region or settings.region}" in error["message"]
    assert count_rows(settings) == 0


def test_a_first_deploy_replaces_nothing(client: TestClient, alice) -> None:
    r = client.post("/v1/deployments", json=deploy_body(), headers=alice)
    assert r.status_code == 202 and "Mcpfc-Replaced" not in r.headers


def test_a_name_another_owner_deploys_is_409(client: TestClient, alice, bob, settings) -> None:
    client.post("/v1/deployments", json=deploy_body(), headers=alice)
    problem = assert_problem(client.post("/v1/deployments", json=deploy_body(), headers=bob), 409)
    assert "taken" in problem["detail"]
    assert count_rows(settings) == 1 and len(broker_messages(settings)) == 1


def test_a_deleted_name_can_be_deployed_afresh(client: TestClient, alice, settings) -> None:
    first = client.post("/v1/deployments", json=deploy_body(), headers=alice).json()
    move(settings, first["id"], Status.deleting, Status.deleted)
    second = client.post("/v1/deployments", json=deploy_body(), headers=alice).json()
    assert second["id"] != first["id"] and second["status"] == "pending"
    assert client.get("/v1/deployments/mcp-time", headers=alice).json()["id"] == second["id"]


# -- broker down -------------------------------------------------------------------------------------


@pytest.fixture
def down(tmp_path):
    settings = make_settings(tmp_path, broker_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(settings)) as client:
        yield client, settings, bearer(new_key(settings)[1])


def test_broker_down_is_503_and_the_row_says_failed(down) -> None:
    client, settings, alice = down
    r = client.post("/v1/deployments", json=deploy_body(), headers={**alice, "Idempotency-Key": "k1"})
    problem = assert_problem(r, 503)
    assert CANARY not in r.text and "127.0.0.1" not in r.text
    dep = client.get(f"/v1/deployments/{problem['deployment_id']}", headers=alice).json()
    assert dep["status"] == "failed" and dep["stage"] == "enqueue"
    assert dep["error"] == {
        "code": "BrokerUnavailable",
        "message": dep["error"]["message"],
        "retryable": True,
        "request_id": None,
        "step": "enqueue",
    }
    # A retry with the same key tries again (it does not replay the outage) and still reports it.
    assert_problem(
        client.post("/v1/deployments", json=deploy_body(), headers={**alice, "Idempotency-Key": "k1"}), 503
    )
    assert count_rows(settings) == 1
    metrics = client.get("/metrics").text
    assert 'mcpfc_enqueue_failures_total{operation="deploy"} 2.0' in metrics
    assert "mcpfc_deployments_created_total 0.0" in metrics


def test_broker_down_on_delete_marks_the_row_failed(down) -> None:
    client, settings, alice = down
    with session_scope(settings) as session:
        owner = keys.authenticate(session, alice["Authorization"].split()[1]).owner_id
        from schemas import DeployRequest

        row = lifecycle.create_deployment(
            session,
            Vault.from_settings(settings),
            owner_id=owner,
            req=DeployRequest.model_validate(deploy_body()),
            region="cn-hangzhou",
            deadline_s=60,
        )
        dep_id = row.id
    move(settings, dep_id, Status.running, Status.succeeded)
    assert_problem(client.delete(f"/v1/deployments/{dep_id}", headers=alice), 503)
    row = row_of(settings, dep_id)
    assert row.status == "failed" and row.error["code"] == "BrokerUnavailable" and row.operation == "delete"


# -- list --------------------------------------------------------------------------------------------


def test_list_is_newest_first_and_keyset_paginated(client: TestClient, alice, bob, deploy, settings) -> None:
    made = [deploy(f"fn-{i}")["id"] for i in range(5)]
    deploy("bobs", headers=bob)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/deployments", params=params, headers=alice).json()
        assert len(page["items"]) <= 2
        seen += [d["id"] for d in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made)) and pages == 3
    everything = client.get("/v1/deployments", headers=alice).json()
    assert [d["id"] for d in everything["items"]] == list(reversed(made)) and everything[
        "next_cursor"
    ] is None


def test_list_filters_by_status_and_name(client: TestClient, alice, deploy, settings) -> None:
    a, b = deploy("fn-a"), deploy("fn-b")
    move(settings, a["id"], Status.running)
    running = client.get("/v1/deployments", params={"status": "running"}, headers=alice).json()["items"]
    assert [d["id"] for d in running] == [a["id"]]
    named = client.get("/v1/deployments", params={"name": "fn-b"}, headers=alice).json()["items"]
    assert [d["id"] for d in named] == [b["id"]]


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"cursor": "not-a-cursor"}, 400, "query.cursor"),
        ({"limit": 0}, 422, "query.limit"),
        ({"limit": 201}, 422, "query.limit"),
        ({"status": "sleeping"}, 422, "query.status"),
    ],
)
def test_list_rejects_bad_parameters(client: TestClient, alice, params, status, field) -> None:
    problem = assert_problem(client.get("/v1/deployments", params=params, headers=alice), status)
    assert problem["errors"][0]["field"] == field


# -- long-poll ---------------------------------------------------------------------------------------


def test_wait_returns_when_another_process_changes_the_row(
    client: TestClient, alice, deploy, settings, monkeypatch
) -> None:
    dep = deploy()
    first_read = threading.Event()
    statuses: list[str] = []
    real_load = reads_routes._load_public

    def spy(*args):
        result = real_load(*args)
        statuses.append(result.status.value)
        first_read.set()
        return result

    monkeypatch.setattr(reads_routes, "_load_public", spy)

    def worker() -> None:
        assert first_read.wait(10)
        move(settings, dep["id"], Status.running, stage="function", progress=20)

    thread = threading.Thread(target=worker)
    thread.start()
    r = client.get(f"/v1/deployments/{dep['id']}", params={"wait": 30}, headers=alice)
    thread.join()
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["stage"], r.json()["progress"]) == ("running", "function", 20)
    assert statuses[0] == "pending" and statuses[-1] == "running", "it waited for the change"


def test_wait_ignores_writes_a_watcher_cannot_see(
    client: TestClient, alice, deploy, settings, monkeypatch
) -> None:
    """A checkpoint-only write (updated_at moves, nothing shown changes) does not end a long poll; the next
    stage does."""
    dep = deploy()
    move(settings, dep["id"], Status.running, stage="creating_function", progress=10)
    reads = threading.Semaphore(0)
    real_load = reads_routes._load_public

    def spy(*args):
        result = real_load(*args)
        reads.release()
        return result

    monkeypatch.setattr(reads_routes, "_load_public", spy)

    def worker() -> None:
        assert reads.acquire(timeout=10)  # the long poll read the row
        set_fields(settings, dep["id"], checkpoint={"function": True})
        assert reads.acquire(timeout=10)  # and read it again after that write
        set_fields(settings, dep["id"], stage="creating_trigger", progress=70)

    thread = threading.Thread(target=worker)
    thread.start()
    r = client.get(f"/v1/deployments/{dep['id']}", params={"wait": 30}, headers=alice)
    thread.join()
    assert (r.json()["stage"], r.json()["progress"]) == ("creating_trigger", 70)


def test_wait_gives_up_at_the_deadline_with_the_row_unchanged(
    client: TestClient, alice, deploy, monkeypatch
) -> None:
    dep = deploy()
    reads: list[str] = []
    real_load = reads_routes._load_public
    monkeypatch.setattr(reads_routes, "_load_public", lambda *a: reads.append("x") or real_load(*a))
    r = client.get("/v1/deployments/mcp-time", params={"wait": 0.3}, headers=alice)
    assert r.json()["status"] == "pending" and r.json()["updated_at"] == dep["updated_at"]
    assert len(reads) > 1, "it polled more than once before giving up"


def test_wait_on_a_finished_deployment_answers_at_once(
    client: TestClient, alice, deploy, settings, monkeypatch
) -> None:
    dep = deploy()
    move(settings, dep["id"], Status.running, Status.succeeded)
    reads: list[str] = []
    real_load = reads_routes._load_public
    monkeypatch.setattr(reads_routes, "_load_public", lambda *a: reads.append("x") or real_load(*a))
    r = client.get(f"/v1/deployments/{dep['id']}", params={"wait": 60}, headers=alice)
    assert r.json()["status"] == "succeeded" and reads == ["x"]


@pytest.mark.parametrize("wait", ["-1", "61", "soon"])
def test_wait_is_bounded(client: TestClient, alice, deploy, wait) -> None:
    deploy()
    problem = assert_problem(
        client.get("/v1/deployments/mcp-time", params={"wait": wait}, headers=alice), 422
    )
    assert problem["errors"][0]["field"] == "query.wait"


def test_unknown_deployment_is_404(client: TestClient, alice) -> None:
    assert_problem(client.get("/v1/deployments/0123456789abcdef0123", headers=alice), 404)
    assert_problem(client.get("/v1/deployments/no-such-name?wait=5", headers=alice), 404)


# -- redeploy ----------------------------------------------------------------------------------------


def test_redeploy_merges_the_changes_into_the_spec(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy(env={"A": "1"}, memory_mb=1024)
    move(settings, dep["id"], Status.running, Status.succeeded)
    r = client.post(
        f"/v1/deployments/{dep['name']}/redeploy", json={"image": NEW_IMAGE, "env": {"B": "2"}}, headers=alice
    )
    assert r.status_code == 202, r.text
    new = r.json()
    assert r.headers["location"] == f"/v1/deployments/{dep['id']}"
    assert new["id"] == dep["id"] and new["status"] == "pending" and new["task_id"] != dep["task_id"]
    assert new["spec"]["image"] == NEW_IMAGE and new["spec"]["env"] == {"B": "2"}
    assert new["spec"]["memory_mb"] == 1024 and new["spec"]["command"] == dep["spec"]["command"]
    assert new["spec"]["secret_env"] == {"API_TOKEN": "***"}
    row = row_of(settings, dep["id"])
    assert row.operation == "redeploy"
    assert store.request_of(Vault.from_settings(settings), row).secret_values() == {"API_TOKEN": CANARY}
    messages = broker_messages(settings)
    assert len(messages) == 2 and messages[-1]["headers"]["id"] == new["task_id"]
    assert messages[-1]["headers"]["task"] == queue.DEPLOY_TASK


def test_redeploy_can_replace_secrets(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy()
    move(settings, dep["id"], Status.running, Status.failed)
    r = client.post(
        f"/v1/deployments/{dep['id']}/redeploy", json={"secret_env": {"NEW": "v2"}}, headers=alice
    )
    assert r.status_code == 202 and r.json()["spec"]["secret_env"] == {"NEW": "***"}
    assert store.request_of(Vault.from_settings(settings), row_of(settings, dep["id"])).secret_values() == {
        "NEW": "v2"
    }


def test_redeploy_refuses_while_busy_or_deleted(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy()
    url = f"/v1/deployments/{dep['id']}/redeploy"
    assert (
        "in progress"
        in assert_problem(client.post(url, json={"image": NEW_IMAGE}, headers=alice), 409)["detail"]
    )
    move(settings, dep["id"], Status.running)
    assert_problem(client.post(url, json={"image": NEW_IMAGE}, headers=alice), 409)
    move(settings, dep["id"], Status.deleting)
    assert_problem(client.post(url, json={"image": NEW_IMAGE}, headers=alice), 409)
    move(settings, dep["id"], Status.deleted)
    assert (
        "deleted" in assert_problem(client.post(url, json={"image": NEW_IMAGE}, headers=alice), 409)["detail"]
    )
    assert len(broker_messages(settings)) == 1


def test_redeploy_validates_the_merged_spec(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy()
    move(settings, dep["id"], Status.running, Status.succeeded)
    url = f"/v1/deployments/{dep['id']}/redeploy"
    problem = assert_problem(client.post(url, json={"memory_mb": 4096}, headers=alice), 422)
    assert ("memory_mb", "cpu_memory_ratio") in {(e["field"], e["rule"]) for e in problem["errors"]}
    problem = assert_problem(client.post(url, json={"name": "rename-me"}, headers=alice), 422)
    assert problem["errors"][0] == {
        "field": "name",
        "rule": "extra_forbidden",
        "message": "Extra inputs are not permitted",
    }
    assert row_of(settings, dep["id"]).status == "succeeded" and len(broker_messages(settings)) == 1


# -- delete ------------------------------------------------------------------------------------------


def test_delete_queues_a_teardown_and_is_idempotent(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy()
    move(settings, dep["id"], Status.running, Status.succeeded)
    r = client.delete(f"/v1/deployments/{dep['name']}", headers=alice)
    assert r.status_code == 202 and r.json()["status"] == "deleting" and r.json()["task_id"] != dep["task_id"]
    assert r.headers["location"] == f"/v1/deployments/{dep['id']}"
    messages = broker_messages(settings)
    assert len(messages) == 2 and messages[-1]["headers"]["task"] == queue.DELETE_TASK
    assert messages[-1]["body"][0] == [dep["id"]] and messages[-1]["headers"]["id"] == r.json()["task_id"]
    assert row_of(settings, dep["id"]).operation == "delete"

    again = client.delete(f"/v1/deployments/{dep['id']}", headers=alice)
    assert again.status_code == 202 and again.json()["task_id"] == r.json()["task_id"]
    assert len(broker_messages(settings)) == 2, "a delete in progress is not queued twice"
    move(settings, dep["id"], Status.deleted)
    gone = client.delete(f"/v1/deployments/{dep['id']}", headers=alice)
    assert gone.status_code == 202 and gone.json()["status"] == "deleted"
    assert len(broker_messages(settings)) == 2


def test_delete_of_a_pending_deploy_supersedes_it(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy()
    r = client.delete(f"/v1/deployments/{dep['id']}", headers=alice)
    assert r.status_code == 202 and r.json()["status"] == "deleting"


# -- cancel ------------------------------------------------------------------------------------------


def test_cancel_of_a_pending_deploy_is_immediate(
    client: TestClient, alice, deploy, settings, monkeypatch
) -> None:
    dep = deploy()
    revoked: list[str] = []
    real_revoke = deployments_routes._revoke
    monkeypatch.setattr(
        deployments_routes,
        "_revoke",
        lambda app, task_id: revoked.append(task_id) or real_revoke(app, task_id),
    )
    r = client.post(f"/v1/deployments/{dep['id']}/cancel", headers=alice)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert row_of(settings, dep["id"]).status == "cancelled"
    assert revoked == [dep["task_id"]], "the queued task is revoked too (best effort)"
    assert_problem(client.post(f"/v1/deployments/{dep['id']}/cancel", headers=alice), 409)


def test_cancel_of_a_running_deploy_is_requested(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy()
    move(settings, dep["id"], Status.running, stage="function")
    r = client.post(f"/v1/deployments/{dep['name']}/cancel", headers=alice)
    assert r.status_code == 202 and r.json()["status"] == "running"
    row = row_of(settings, dep["id"])
    assert row.cancel_requested is True and row.status == "running"


@pytest.mark.parametrize(
    "path", [(Status.running, Status.succeeded), (Status.running, Status.failed), (Status.deleting,)]
)
def test_cancel_of_a_finished_or_deleting_deployment_is_409(
    client: TestClient, alice, deploy, settings, path
) -> None:
    dep = deploy()
    move(settings, dep["id"], *path)
    assert_problem(client.post(f"/v1/deployments/{dep['id']}/cancel", headers=alice), 409)
    assert row_of(settings, dep["id"]).status == path[-1].value


# -- client config -----------------------------------------------------------------------------------

SSE_URL = "https://mcp-time-abc.cn-hangzhou.fcapp.run/sse"
MCP_URL = "https://mcp-time-abc.cn-hangzhou.fcapp.run/mcp"


def _publish(settings, dep_id: str, token: str | None) -> None:
    fields = {"urls": {"internet": SSE_URL.removesuffix("/sse"), "sse": SSE_URL, "mcp": MCP_URL}}
    if token:
        fields["endpoint_token_enc"] = Vault.from_settings(settings).encrypt(token)
    set_fields(settings, dep_id, **fields)
    move(settings, dep_id, Status.running, Status.succeeded)


def test_client_config_has_url_and_bearer_token(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy(transport="sse")
    _publish(settings, dep["id"], "eyJ.endpoint.token")
    r = client.get(f"/v1/deployments/{dep['name']}/client-config", headers=alice)
    assert r.status_code == 200
    assert r.json() == {
        "mcpServers": {
            "mcp-time": {
                "type": "sse",
                "url": SSE_URL,
                "headers": {"Authorization": "Bearer eyJ.endpoint.token"},
            }
        }
    }
    assert CANARY not in r.text


def test_client_config_for_streamable_http_and_anonymous(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy(auth={"type": "anonymous"})  # the default transport
    _publish(settings, dep["id"], None)
    server = client.get(f"/v1/deployments/{dep['id']}/client-config", headers=alice).json()["mcpServers"][
        "mcp-time"
    ]
    assert server == {"type": "http", "url": MCP_URL}  # never "streamable-http": Claude Code ignores it


@pytest.mark.parametrize(
    ("client_kind", "key"),
    [
        ("claude-code", "mcpServers"),
        ("cursor", "mcpServers"),
        ("vscode", "servers"),
        ("claude-desktop", "mcpServers"),
    ],
)
def test_client_config_in_each_clients_form(
    client: TestClient, alice, deploy, settings, client_kind, key
) -> None:
    dep = deploy()
    _publish(settings, dep["id"], "eyJ.endpoint.token")
    r = client.get(
        f"/v1/deployments/{dep['id']}/client-config", params={"client": client_kind}, headers=alice
    )
    assert r.status_code == 200, r.text
    entry = r.json()[key]["mcp-time"]
    if client_kind == "claude-desktop":
        assert entry["command"] == "npx" and entry["args"][:2] == ["mcp-remote", MCP_URL]
        assert entry["env"] == {"MCPFC_TOKEN_MCP_TIME": "Bearer eyJ.endpoint.token"}
    else:
        assert entry["url"] == MCP_URL and entry["headers"] == {"Authorization": "Bearer eyJ.endpoint.token"}
        assert entry.get("type", "http") == "http"


def test_client_config_for_the_inspector_is_its_command(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy()
    _publish(settings, dep["id"], "eyJ.endpoint.token")
    body = client.get(f"/v1/deployments/{dep['id']}/client-config?client=inspector", headers=alice).json()
    (command,) = body["commands"]
    assert command["argv"][:7] == [
        "npx",
        "-y",
        "@modelcontextprotocol/inspector@0.17.5",
        "--cli",
        MCP_URL,
        "--transport",
        "http",
    ]
    assert "Authorization: Bearer eyJ.endpoint.token" in command["argv"]


def test_client_config_of_an_unknown_client_is_422(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy()
    _publish(settings, dep["id"], "eyJ.endpoint.token")
    assert_problem(client.get(f"/v1/deployments/{dep['id']}/client-config?client=emacs", headers=alice), 422)


def test_client_config_of_a_pending_deployment_is_409(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy()
    problem = assert_problem(client.get(f"/v1/deployments/{dep['id']}/client-config", headers=alice), 409)
    assert problem["type"].endswith(":not-ready") and "in progress" in problem["detail"]
    assert problem["deployment_status"] == "pending"


@pytest.mark.parametrize(
    ("path", "kind", "says"),
    [
        ((Status.running, Status.failed), "deployment-failed", "failed at step probe (ProbeFailed)"),
        ((Status.cancelled,), "deployment-cancelled", "was cancelled"),
        ((Status.running, Status.succeeded, Status.deleting, Status.deleted), "deleted", "was deleted"),
    ],
)
def test_client_config_of_a_failed_cancelled_or_deleted_deployment_is_409(
    client: TestClient, alice, deploy, settings, path, kind, says
) -> None:
    dep = deploy()
    fields = {"urls": {"internet": MCP_URL.removesuffix("/mcp"), "sse": SSE_URL, "mcp": MCP_URL}}
    fields["endpoint_token_enc"] = Vault.from_settings(settings).encrypt("eyJ.endpoint.token")
    if Status.failed in path:
        fields["error"] = {"code": "ProbeFailed", "message": "no answer", "step": "probe"}
    set_fields(settings, dep["id"], **fields)
    move(settings, dep["id"], *path)
    r = client.get(f"/v1/deployments/{dep['id']}/client-config", headers=alice)
    problem = assert_problem(r, 409)
    assert problem["type"].endswith(":" + kind) and says in problem["detail"], problem
    assert "eyJ.endpoint.token" not in r.text  # no usable-looking entry, and no token


def test_openapi_marks_sse_deprecated(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    transport = schema["components"]["schemas"]["DeployRequest-Input"]["properties"]["transport"]
    assert transport["default"] == "streamable-http" and "deprecated" in transport["description"]
    params = schema["paths"]["/v1/deployments/{id}/client-config"]["get"]["parameters"]
    assert any(p["name"] == "client" for p in params)


def test_client_config_for_function_auth_is_409(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy(auth={"type": "function"})
    _publish(settings, dep["id"], None)
    assert (
        "signature"
        in assert_problem(client.get(f"/v1/deployments/{dep['id']}/client-config", headers=alice), 409)[
            "detail"
        ]
    )


def test_a_redeploy_onto_an_image_of_another_region_is_422(client: TestClient, alice, settings) -> None:
    first = client.post("/v1/deployments", json=deploy_body(), headers=alice).json()
    move(settings, first["id"], Status.running, Status.succeeded)
    r = client.post(
        "/v1/deployments/mcp-time/redeploy",
        json={"image": "registry-vpc.cn-beijing.aliyuncs.com/ns/mcp-time:2"},
        headers=alice,
    )
    [error] = assert_problem(r, 422)["errors"]
    assert (error["field"], error["rule"]) == ("image", "image_region")
