"""Every /v1 route needs a live API key; the answer to a bad one is a 401 problem with a Bearer challenge."""

import pytest
from fastapi.testclient import TestClient

from deployer.store import keys
from deployer.store.db import session_scope

from .conftest import assert_problem, bearer, deploy_body, new_key

ROUTES = [
    ("POST", "/v1/deployments"),
    ("GET", "/v1/deployments"),
    ("GET", "/v1/deployments/mcp-time"),
    ("POST", "/v1/deployments/mcp-time/redeploy"),
    ("DELETE", "/v1/deployments/mcp-time"),
    ("POST", "/v1/deployments/mcp-time/cancel"),
    ("GET", "/v1/deployments/mcp-time/events"),
    ("GET", "/v1/deployments/mcp-time/client-config"),
    ("GET", "/v1/tasks/0123456789abcdef"),
]


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]):
    body = deploy_body() if path == "/v1/deployments" and method == "POST" else {}
    return client.request(method, path, json=body if method == "POST" else None, headers=headers)


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer mcpfc_000000000000_thisisnotarealsecretatall"},
        {"Authorization": "Bearer free-form-but-unknown"},
    ],
    ids=["missing", "empty", "basic", "unknown", "freeform"],
)
def test_missing_or_bad_key_is_401(
    client: TestClient, method: str, path: str, headers: dict[str, str]
) -> None:
    r = _call(client, method, path, headers)
    problem = assert_problem(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"
    assert problem["instance"] == path


def test_wrong_secret_for_a_real_key_id_is_401(client: TestClient, settings) -> None:
    key_id, plaintext = new_key(settings)
    forged = f"mcpfc_{key_id}_{'x' * 43}"
    assert client.get("/v1/deployments", headers=bearer(plaintext)).status_code == 200
    assert_problem(client.get("/v1/deployments", headers=bearer(forged)), 401)


def test_revoked_key_is_401(client: TestClient, settings) -> None:
    key_id, plaintext = new_key(settings)
    assert client.get("/v1/deployments", headers=bearer(plaintext)).status_code == 200
    with session_scope(settings) as session:
        assert keys.revoke_api_key(session, key_id)
    r = client.get("/v1/deployments", headers=bearer(plaintext))
    assert_problem(r, 401)
    assert "revoked" in r.json()["detail"]
    # Streaming routes authenticate through their own session: same answer.
    assert_problem(client.get("/v1/deployments/x?wait=1", headers=bearer(plaintext)), 401)


def test_imported_free_form_key_works(client: TestClient, settings) -> None:
    with session_scope(settings) as session:
        keys.import_api_key(session, "my-chosen-dev-key")
    assert client.get("/v1/deployments", headers=bearer("my-chosen-dev-key")).status_code == 200
