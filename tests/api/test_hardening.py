"""Issue 16: what an independent fault and attack run found in the API (metrics cardinality, NUL bytes and
forged log lines, the database away, event-stream bounds, idempotency-key expiry, the docs page)."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from deployer.api import create_app
from deployer.api.problems import UnexpectedErrorMiddleware
from deployer.settings import Settings
from deployer.store.db import engine_for, normalise_url, session_scope
from deployer.store.tables import IdempotencyKey, utcnow

from .conftest import assert_problem, bearer, broker_files, count_rows, deploy_body, make_settings, new_key


def _series(text: str) -> set[str]:
    """Each sample's name and labels (not its value) in a Prometheus text exposition."""
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_invented_methods_leave_metrics_the_same_size(client: TestClient) -> None:
    # One of each kind first, so every series that the flood could touch already exists.
    client.request("BREW0", "/nowhere")
    client.request("BREW0", "/v1/deployments")
    client.get("/metrics")
    before = client.get("/metrics").text
    for i in range(500):
        r = client.request(f"BREW{i}", "/v1/deployments" if i % 2 else f"/nowhere/{i}")
        assert r.status_code in (404, 405)
    after = client.get("/metrics").text
    assert _series(after) == _series(before), "new label values appeared"
    # Counts grow by a few digits; hundreds of new series would be tens of KB.
    assert len(after) - len(before) < 400, (len(before), len(after))
    assert "BREW" not in after
    assert re.search(
        r'mcpfc_http_requests_total\{method="other",route="<unmatched>",status="404"\} 251', after
    )


# -- NUL bytes and other control characters in paths and query strings (defect 7) ---------------------


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (NUL was a 500 there: PostgreSQL text cannot hold NUL)."""
    from tests.integration.conftest import require_service

    require_service("PostgreSQL", 5432)
    import psycopg

    name = f"mcpfc_hard_{secrets.token_hex(4)}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    yield url
    for u in (url, normalise_url(url)):
        engine_for(u).dispose()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def pg_app(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Settings]]:
    settings = make_settings(tmp_path_factory.mktemp("pg-app"), database_url=pg_url)
    with TestClient(create_app(settings)) as c:
        yield c, settings


def _routes() -> list[tuple[str, str]]:
    """(method, path template) of every route the API serves: the OpenAPI document's, the docs' and
    /metrics (not in the schema)."""
    app = create_app(make_settings(Path("/nonexistent-data-dir")))
    out = {(method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops}
    out |= {(m, r.path) for r in app.routes for m in getattr(r, "methods", None) or () if m != "HEAD"}
    out.add(("GET", "/metrics"))
    return sorted(out)


ROUTES = _routes()
BAD_TEXT = ["a%00b", "a%0Ab", "x%0D%0AFORGED", "%7F"]


def _fill(template: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, template)


@pytest.mark.parametrize(("method", "template"), ROUTES)
@pytest.mark.parametrize("bad", BAD_TEXT)
def test_control_characters_in_any_path_or_query_are_a_400(pg_app, method, template, bad) -> None:
    client, settings = pg_app
    headers = bearer(new_key(settings)[1])
    body = deploy_body("mcp-nul") if method == "POST" else None
    attempts = [
        f"{_fill(template, 'mcp-nul')}?name={bad}",
        f"{_fill(template, 'mcp-nul')}?cursor={bad}&limit=1",
    ]
    if "{" in template:
        attempts.append(_fill(template, bad))
    for url in attempts:
        r = client.request(method, url, headers=headers, json=body)
        problem = assert_problem(r, 400)
        assert problem["type"].endswith(":control-characters"), (url, problem)
    assert count_rows(settings) == 0 and broker_files(settings) == [], "nothing is written or queued"


def test_route_table_covers_the_routes_that_were_500s() -> None:
    templates = {t for _, t in ROUTES}
    assert {
        "/v1/deployments",
        "/v1/deployments/{id}",
        "/v1/deployments/{id}/redeploy",
        "/v1/deployments/{id}/rotate-token",
        "/v1/deployments/{id}/cancel",
        "/v1/deployments/{id}/events",
        "/v1/deployments/{id}/client-config",
        "/v1/tasks/{task_id}",
    } <= templates


def test_a_500_logs_the_path_escaped(caplog: pytest.LogCaptureFixture) -> None:
    """A caller's newline in the path of a failing request cannot write a second line into the log."""

    async def failing(scope, receive, send):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    app = UnexpectedErrorMiddleware(failing)
    scope = {"type": "http", "method": "GET", "path": "/v1/x\n2026-01-01 INFO forged line", "headers": []}
    sent: list[dict] = []

    async def receive():  # type: ignore[no-untyped-def]
        return {"type": "http.request", "body": b""}

    async def send(message):  # type: ignore[no-untyped-def]
        sent.append(message)

    with caplog.at_level(logging.ERROR, logger="deployer.api"):
        asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 500
    record = next(r for r in caplog.records if "unhandled error" in r.getMessage())
    assert "\n" not in record.getMessage() and "\\n2026-01-01 INFO forged line" in record.getMessage()


# -- the database away (defect 9c) ----------------------------------------------------------------


@pytest.mark.parametrize(("method", "template"), [(m, t) for m, t in ROUTES if t.startswith("/v1/")])
def test_every_v1_route_is_a_503_with_retry_after_when_the_database_refuses(
    tmp_path, method, template
) -> None:
    """The CLI retries a 503 with Retry-After (deployer/client.py RETRY_STATUSES); a 500 made it give up."""
    # Port 1 on loopback refuses at once. No lifespan (it would migrate): the API as it is mid-outage.
    settings = make_settings(tmp_path, database_url="postgresql://postgres@127.0.0.1:1/nowhere")
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    body = deploy_body("mcp-down") if method == "POST" else None
    r = client.request(method, _fill(template, "mcp-down"), headers=bearer("mcpfc_some-key"), json=body)
    problem = assert_problem(r, 503)
    assert problem["type"].endswith(":database-unavailable")
    assert int(r.headers["Retry-After"]) > 0
    assert broker_files(settings) == []


# -- idempotency keys expire (defect 9e) --------------------------------------------------------------


def _age_keys(settings: Settings, seconds: float) -> None:
    with session_scope(settings) as session:
        session.execute(update(IdempotencyKey).values(created_at=utcnow() - timedelta(seconds=seconds)))


def _keys(settings: Settings) -> set[str]:
    with session_scope(settings) as session:
        return set(session.scalars(select(IdempotencyKey.key)))


def test_idempotency_keys_are_purged_after_their_ttl(tmp_path) -> None:
    settings = make_settings(tmp_path, idempotency_ttl_s=3600, idempotency_purge_interval_s=0)
    with TestClient(create_app(settings)) as client:
        alice = bearer(new_key(settings)[1])
        first = client.post(
            "/v1/deployments", json=deploy_body("mcp-a"), headers={**alice, "Idempotency-Key": "k1"}
        )
        assert first.status_code == 202
        client.post("/v1/deployments", json=deploy_body("mcp-b"), headers={**alice, "Idempotency-Key": "k2"})
        # Within the TTL: a replay, and another body is refused.
        assert_problem(
            client.post(
                "/v1/deployments", json=deploy_body("mcp-c"), headers={**alice, "Idempotency-Key": "k1"}
            ),
            422,
        )
        assert _keys(settings) == {"k1", "k2"}

        _age_keys(settings, 3601)
        # Past the TTL the key is free again: a new request, not a 422, and every expired key is purged.
        later = client.post(
            "/v1/deployments", json=deploy_body("mcp-c"), headers={**alice, "Idempotency-Key": "k1"}
        )
        assert later.status_code == 202, later.text
        assert later.json()["id"] != first.json()["id"] and "idempotent-replayed" not in later.headers
        assert _keys(settings) == {"k1"}, "k2 expired and is purged; k1 is the new request's"


def test_an_expired_key_is_not_replayed_even_before_a_purge(tmp_path) -> None:
    settings = make_settings(tmp_path, idempotency_ttl_s=60, idempotency_purge_interval_s=3600)
    with TestClient(create_app(settings)) as client:
        alice = bearer(new_key(settings)[1])
        h = {**alice, "Idempotency-Key": "k"}
        client.post("/v1/deployments", json=deploy_body("mcp-a"), headers=h)  # the process's purge runs here
        _age_keys(settings, 61)
        again = client.post("/v1/deployments", json=deploy_body("mcp-other"), headers=h)
        assert again.status_code == 202, again.text
        assert again.json()["name"] == "mcp-other"


# -- /docs (defect 9f) -----------------------------------------------------------------------------


def test_docs_load_a_pinned_swagger_ui_checked_by_integrity(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    page = r.text
    scripts = re.findall(r"<script src=\"([^\"]+)\"([^>]*)>", page)
    styles = re.findall(r"<link rel=\"stylesheet\" href=\"([^\"]+)\"([^>]*)>", page)
    assert scripts and styles
    for url, attrs in scripts + styles:
        assert "swagger-ui-dist@5.32.0/" in url, url  # an exact version, never @5
        assert 'integrity="sha384-' in attrs and 'crossorigin="anonymous"' in attrs
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp.split("script-src", 1)[1].split(";")[0]
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs/oauth2-redirect").status_code == 404


def test_docs_are_off_in_production_unless_asked_for(tmp_path) -> None:
    secret = "a-production-secret-key-0123456789"
    prod = make_settings(tmp_path, environment="production", secret_key=secret)
    with TestClient(create_app(prod)) as client:
        for path in ("/docs", "/openapi.json"):
            assert_problem(client.get(path), 404)
    asked = make_settings(tmp_path, environment="production", secret_key=secret, docs_enabled=True)
    with TestClient(create_app(asked)) as client:
        assert client.get("/docs").status_code == 200


# -- /events streams are bounded per key and do not poll five times a second (defect 9d) ---------------


@pytest.fixture
def live_api(tmp_path) -> Iterator[tuple[str, Settings]]:
    """The app under a real uvicorn on a loopback socket bound here (so it accepts as soon as it runs)."""
    import socket
    import threading

    import uvicorn

    from deployer.store import migrate

    settings = make_settings(tmp_path, events_streams_per_key=2)
    migrate.upgrade(settings.effective_database_url)  # the keys below are made before the server starts
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", settings
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


def _until(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return result


def test_event_streams_per_key_are_bounded(live_api) -> None:
    import httpx

    base, settings = live_api
    alice, bob = bearer(new_key(settings)[1]), bearer(new_key(settings)[1])
    with httpx.Client(base_url=base, timeout=30) as http:
        dep = http.post("/v1/deployments", json=deploy_body(), headers=alice).json()
        url = f"/v1/deployments/{dep['id']}/events"
        with http.stream("GET", url, headers=alice) as one, http.stream("GET", url, headers=alice) as two:
            assert one.status_code == two.status_code == 200
            third = http.get(url, headers=alice)
            assert_problem(third, 429)
            assert third.json()["type"].endswith(":too-many-streams") and third.headers["Retry-After"]
            with http.stream("GET", url, headers=bob) as other:
                assert other.status_code == 404  # bob's own limit is untouched; the deployment is alice's

        # Both streams closed by the client: their slots come back.
        def reopened() -> bool:
            with http.stream("GET", url, headers=alice) as again:
                return again.status_code == 200

        _until(reopened)


def test_an_idle_event_stream_backs_off(live_api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the change feed an idle stream re-reads less and less often (it read 5 times a second)."""
    import httpx

    from deployer.api.routes import events

    reads = []
    real = events._events_since

    def counting(*args):  # type: ignore[no-untyped-def]
        reads.append(time.monotonic())
        return real(*args)

    monkeypatch.setattr(events, "_events_since", counting)
    base, settings = live_api
    alice = bearer(new_key(settings)[1])
    with httpx.Client(base_url=base, timeout=30) as http:
        dep = http.post("/v1/deployments", json=deploy_body(), headers=alice).json()
        with http.stream("GET", f"/v1/deployments/{dep['id']}/events", headers=alice) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            assert next(lines).startswith(("event:", "id:", "data:"))  # the pending event
            time.sleep(4)  # the quantity measured is reads per time; this is the time
    # 0.2, 0.4, 0.8, 1.6, 2 s between reads: about 5 in 4 s, where polling every 0.2 s made 20.
    assert 2 <= len(reads) <= 7, len(reads)
