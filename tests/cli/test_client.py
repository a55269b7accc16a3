"""deployer.client.APIClient on its own: errors, retries and long-poll parameters."""

from __future__ import annotations

import httpx
import pytest

from deployer.client import APIClient, APIError, FieldError, InvalidResponse, ServiceUnreachable
from deployer.errors import ConfigError, MCPFCError
from tests.cli.conftest import API, deployment


@pytest.fixture
def client():
    with APIClient(API, "key", timeout=5) as c:
        yield c


def test_problem_json_becomes_api_error(api, client):
    api.get("/v1/deployments/x").mock(
        return_value=httpx.Response(
            422,
            json={
                "title": "Unprocessable",
                "status": 422,
                "detail": "bad",
                "type": "https://mcp-fc/errors/validation",
                "errors": [{"field": "cpu", "rule": "cpu_range", "message": "cpu must be ..."}],
            },
        )
    )
    with pytest.raises(APIError) as info:
        client.get("x")
    err = info.value
    assert isinstance(err, MCPFCError)
    assert (err.status, err.title, err.detail) == (422, "Unprocessable", "bad")
    assert err.errors == [FieldError("cpu", "cpu_range", "cpu must be ...")]
    assert str(err) == "cpu: cpu must be ... (cpu_range)"


def test_fastapi_validation_shape_is_understood(api, client):
    api.get("/v1/deployments").mock(
        return_value=httpx.Response(
            422,
            json={
                "detail": [
                    {"loc": ["query", "limit"], "msg": "Input should be less than 200", "type": "less_than"}
                ]
            },
        )
    )
    with pytest.raises(APIError) as info:
        client.list(limit=500)
    assert info.value.errors == [FieldError("limit", "less_than", "Input should be less than 200")]


def test_non_json_error_body(api, client):
    api.get("/v1/deployments/x").mock(return_value=httpx.Response(502, text="Bad gateway\nnginx"))
    with pytest.raises(APIError) as info:
        client.get("x")
    assert info.value.unavailable and info.value.detail == "Bad gateway"


def test_get_long_polls_with_a_longer_read_timeout(api, client):
    route = api.get("/v1/deployments/abc").mock(return_value=httpx.Response(200, json=deployment()))
    client.get("abc", wait=20)
    request = route.calls.last.request
    assert request.url.params["wait"] == "20"
    assert request.extensions["timeout"]["read"] == 25
    assert request.headers["Authorization"] == "Bearer key"


def test_names_are_escaped_in_paths(api, client):
    route = api.get("/v1/deployments/a%2Fb").mock(return_value=httpx.Response(200, json=deployment()))
    client.get("a/b")
    assert route.called


def test_gets_are_retried_on_503_then_give_up(api, client, sleeps):
    route = api.get("/v1/deployments/x").mock(
        return_value=httpx.Response(503, headers={"Retry-After": "60"}, json={"title": "Unavailable"})
    )
    with pytest.raises(APIError) as info:
        client.get("x")
    assert info.value.status == 503
    assert route.call_count == 3
    assert sleeps == [5.0, 5.0], "Retry-After is honoured, up to a cap"


def test_non_idempotent_post_is_not_retried_after_sending(api, client):
    route = api.post("/v1/deployments/x/redeploy").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ServiceUnreachable, match="timed out"):
        client.redeploy("x", {})
    assert route.call_count == 1


def test_deploy_without_key_is_not_retried_after_sending(api, client):
    route = api.post("/v1/deployments").mock(return_value=httpx.Response(503, json={"title": "Unavailable"}))
    with pytest.raises(APIError):
        client.deploy({"name": "x"})
    assert route.call_count == 1
    assert "Idempotency-Key" not in route.calls.last.request.headers


def test_dns_failure_is_unreachable(api, client):
    api.get("/v1/deployments/x").mock(side_effect=httpx.ConnectError("[Errno -2] Name or service not known"))
    with pytest.raises(ServiceUnreachable, match="host name not resolved"):
        client.get("x")


def test_a_body_that_is_not_a_deployment(api, client):
    api.get("/v1/deployments/x").mock(return_value=httpx.Response(200, json={"id": "x"}))
    with pytest.raises(InvalidResponse, match="not a Deployment"):
        client.get("x")


def test_bad_api_url_is_a_config_error(sleeps):
    with APIClient("mcpfc.test:8000") as c, pytest.raises(ConfigError):
        c.get("x")


def test_task_view(api, client):
    api.get("/v1/tasks/t1").mock(
        return_value=httpx.Response(
            200,
            json={"task_id": "t1", "state": "SUCCESS", "ready": True, "successful": True, "value": {"ok": 1}},
        )
    )
    view = client.task("t1")
    assert view.state == "SUCCESS" and view.value == {"ok": 1}


def test_wait_gives_up_after_its_deadline(api, client, monkeypatch):
    import deployer.client

    ticks = iter(range(0, 1000, 10))
    monkeypatch.setattr(deployer.client, "_monotonic", lambda: float(next(ticks)))
    api.get("/v1/deployments/0190aa00bb11cc22dd33").mock(return_value=httpx.Response(200, json=deployment()))
    with pytest.raises(ServiceUnreachable, match="still pending"):
        client.wait("0190aa00bb11cc22dd33", until=lambda d: d.status == "succeeded", deadline_s=30)


def test_rollback_versions_reconcile_and_logs_are_public_calls(api, client):
    """The routes the CLI calls beyond deploy/get/list: each is a public APIClient method."""
    rollback = api.post("/v1/deployments/t/rollback").mock(
        return_value=httpx.Response(202, json=deployment("t"))
    )
    versions = api.get("/v1/deployments/t/versions").mock(
        return_value=httpx.Response(200, json={"versions": [{"version": "1", "live": True}]})
    )
    reconcile = api.post("/v1/deployments/t/reconcile").mock(
        return_value=httpx.Response(202, json=deployment("t"))
    )
    logs = api.get("/v1/deployments/t/logs").mock(
        return_value=httpx.Response(200, json={"lines": [], "cursor": "c2"})
    )
    assert client.rollback("t", "3").name == "t"
    assert rollback.calls.last.request.content == b'{"to":"3"}'
    client.rollback("t")
    assert rollback.calls.last.request.content == b""
    assert client.versions("t")["versions"][0]["live"] is True
    assert client.reconcile("t").name == "t" and reconcile.called
    assert client.logs("t", since="10m", after="c1") == {"lines": [], "cursor": "c2"}
    assert dict(logs.calls.last.request.url.params) == {"since": "10m", "after": "c1"}
    assert versions.called
