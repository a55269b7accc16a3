"""A secret_env value, once posted, never comes back: not in any response, message or problem."""

from __future__ import annotations

from fastapi.testclient import TestClient

from deployer import celery_app as queue
from deployer.crypto import Vault
from schemas import Status

from .conftest import CANARY, broker_messages, deploy_body, move, set_fields


def test_the_canary_never_appears_in_any_response(client: TestClient, alice, settings) -> None:
    seen: list[str] = []

    def call(method: str, path: str, **kw) -> dict:
        r = client.request(method, path, headers={**alice, **kw.pop("headers", {})}, **kw)
        seen.append(f"{r.status_code} {path} {dict(r.headers)} {r.text}")
        return r.json() if r.headers.get("content-type", "").startswith("application/") else {}

    dep = call("POST", "/v1/deployments", json=deploy_body(), headers={"Idempotency-Key": "c1"})
    call("POST", "/v1/deployments", json=deploy_body(), headers={"Idempotency-Key": "c1"})  # replay
    call("POST", "/v1/deployments", json=deploy_body(memory_mb=100))  # 422 with the canary in the body
    call("POST", "/v1/deployments", json=deploy_body(secret_env={"TOKEN": [CANARY]}))  # wrong type
    call("POST", "/v1/deployments", json=deploy_body("other", secret_env={"x-y": CANARY}))  # bad key
    call("POST", "/v1/deployments", json=deploy_body(env={"A": "x" * 4000}))  # env_total_size with the canary
    call("POST", "/v1/deployments", json=deploy_body())  # 409: in progress
    call("GET", f"/v1/deployments/{dep['id']}")
    call("GET", "/v1/deployments/mcp-time?wait=0.1")
    call("GET", "/v1/deployments")
    call("GET", f"/v1/tasks/{dep['task_id']}")
    set_fields(
        settings,
        dep["id"],
        urls={"sse": "https://x.fcapp.run/sse", "mcp": "https://x.fcapp.run/mcp"},
        endpoint_token_enc=Vault.from_settings(settings).encrypt("endpoint-token"),
    )
    move(settings, dep["id"], Status.running, Status.succeeded)
    queue.producer(settings).backend.store_result(dep["task_id"], ValueError(CANARY), "FAILURE")
    call("GET", f"/v1/tasks/{dep['task_id']}")
    call("GET", f"/v1/deployments/{dep['id']}/client-config")
    call("GET", f"/v1/deployments/{dep['id']}/events")
    call("POST", f"/v1/deployments/{dep['id']}/redeploy", json={"env": {"B": "2"}})
    call(
        "POST", f"/v1/deployments/{dep['id']}/redeploy", json={"memory_mb": 4096, "secret_env": {"K": CANARY}}
    )
    call("POST", f"/v1/deployments/{dep['id']}/cancel")
    call("DELETE", f"/v1/deployments/{dep['id']}")

    assert len(seen) == 18
    assert any("endpoint-token" in s for s in seen), "the client config does carry the endpoint token"
    for text in seen:
        assert CANARY not in text, text
    for msg in broker_messages(settings):
        assert CANARY not in msg["raw"]
