"""Liveness, readiness, metrics, docs, and the problem documents for routing, size and server errors."""

import logging

import pytest
from fastapi.testclient import TestClient

from deployer.api import create_app

from .conftest import assert_problem, deploy_body, make_settings


def test_healthz_needs_no_auth_and_no_database(tmp_path) -> None:
    settings = make_settings(tmp_path, database_url="postgresql://nobody@127.0.0.1:1/none")
    client = TestClient(create_app(settings))  # no lifespan: nothing migrated, no database at all
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_checks_database_and_broker(client: TestClient) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_names_the_broker_when_it_is_down(tmp_path) -> None:
    settings = make_settings(tmp_path, broker_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(settings)) as client:
        problem = assert_problem(client.get("/readyz"), 503)
    assert problem["checks"] == {"database": "ok", "broker": "unreachable"}
    assert "broker" in problem["detail"]


def test_readyz_names_the_filesystem_broker_folder_when_it_is_missing(client: TestClient, settings) -> None:
    (settings.broker_dir / "control").rmdir()
    problem = assert_problem(client.get("/readyz"), 503)
    assert problem["checks"]["broker"] == "unreachable" and problem["checks"]["database"] == "ok"


def test_metrics_count_requests_by_route_template(client: TestClient, alice) -> None:
    r = client.post("/v1/deployments", json=deploy_body(), headers=alice)
    dep_id = r.json()["id"]
    client.get(f"/v1/deployments/{dep_id}", headers=alice)
    client.get("/v1/deployments/no-such-thing", headers=alice)
    client.get("/nowhere")
    text = client.get("/metrics").text
    assert 'mcpfc_http_requests_total{method="POST",route="/v1/deployments",status="202"} 1.0' in text
    assert 'mcpfc_http_requests_total{method="GET",route="/v1/deployments/{id}",status="200"} 1.0' in text
    assert 'mcpfc_http_requests_total{method="GET",route="/v1/deployments/{id}",status="404"} 1.0' in text
    assert 'route="<unmatched>",status="404"' in text
    assert dep_id not in text, "raw paths must not become labels"
    assert "mcpfc_deployments_created_total 1.0" in text
    assert 'mcpfc_tasks_queued_total{operation="deploy"} 1.0' in text
    assert "mcpfc_http_request_duration_seconds_bucket" in text
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")


def test_docs_and_openapi(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    for path in (
        "/v1/deployments",
        "/v1/deployments/{id}",
        "/v1/deployments/{id}/events",
        "/v1/tasks/{task_id}",
    ):
        assert path in spec["paths"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_docs_and_metrics_can_be_switched_off(tmp_path) -> None:
    settings = make_settings(tmp_path, docs_enabled=False, metrics_enabled=False)
    with TestClient(create_app(settings)) as client:
        for path in ("/docs", "/openapi.json", "/metrics"):
            assert_problem(client.get(path), 404)
        assert client.get("/healthz").status_code == 200


def test_unknown_route_and_method_are_problems(client: TestClient, alice) -> None:
    assert_problem(client.get("/v2/anything"), 404)
    assert_problem(client.put("/v1/deployments", headers=alice), 405)


def test_oversized_body_is_413(client: TestClient, alice) -> None:
    big = deploy_body(description="x" * (1024 * 1024 + 1))
    problem = assert_problem(client.post("/v1/deployments", json=big, headers=alice), 413)
    assert "larger than" in problem["detail"]
    assert client.get("/v1/deployments", headers=alice).json()["items"] == []


def test_oversized_streamed_body_is_413(client: TestClient, alice) -> None:
    def chunks():
        for _ in range(20):
            yield b"x" * 65536

    r = client.post(
        "/v1/deployments", content=chunks(), headers={**alice, "content-type": "application/json"}
    )
    assert_problem(r, 413)


def test_unexpected_errors_are_500_without_the_text(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(make_settings(tmp_path))

    @app.get("/explode")
    def explode() -> None:
        raise RuntimeError("db password is hunter2")

    with TestClient(app) as client, caplog.at_level(logging.ERROR, logger="deployer.api"):
        r = client.get("/explode")
    problem = assert_problem(r, 500)
    assert "hunter2" not in r.text and "RuntimeError" not in r.text
    assert problem["instance"] == "/explode"
    assert any(rec.exc_info and "hunter2" in str(rec.exc_info[1]) for rec in caplog.records), "it is logged"


def test_post_routes_are_rate_limited_per_key(tmp_path) -> None:
    from .conftest import bearer, new_key

    settings = make_settings(tmp_path, post_rate_limit_per_min=2)
    with TestClient(create_app(settings)) as client:
        alice, bob = bearer(new_key(settings)[1]), bearer(new_key(settings)[1])
        assert client.post("/v1/deployments", json=deploy_body("a1"), headers=alice).status_code == 202
        assert client.post("/v1/deployments", json=deploy_body("a2"), headers=alice).status_code == 202
        r = client.post("/v1/deployments", json=deploy_body("a3"), headers=alice)
        assert_problem(r, 429)
        assert int(r.headers["retry-after"]) >= 1
        assert client.get("/v1/deployments", headers=alice).status_code == 200, "reads are not limited"
        assert client.post("/v1/deployments", json=deploy_body("b1"), headers=bob).status_code == 202
        names = [d["name"] for d in client.get("/v1/deployments", headers=alice).json()["items"]]
        assert sorted(names) == ["a1", "a2"]


def test_serve_runs_uvicorn_on_the_configured_address(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from deployer.api import serve

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    serve(make_settings(tmp_path, api_host="0.0.0.0", api_port=8123))
    [(app, kw)] = calls
    assert (kw["host"], kw["port"]) == ("0.0.0.0", 8123)
    assert app.state.settings.api_port == 8123


def test_the_factory_reads_settings_from_the_environment(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`uvicorn --factory deployer.api:create_app` calls it without arguments."""
    from deployer.settings import get_settings

    monkeypatch.setenv("MCPFC_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        app = create_app()
        with TestClient(app) as client:
            assert client.get("/readyz").status_code == 200
        assert app.state.settings.data_dir == tmp_path and (tmp_path / "mcp-fc.db").exists()
    finally:
        get_settings.cache_clear()
