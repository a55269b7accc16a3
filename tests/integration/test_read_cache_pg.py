"""The GET-by-id read cache on a real PostgreSQL: migration 0003's triggers, the LISTEN thread, evictions
from other connections (as workers and the CLI write), revocation, listener loss and recovery.

Writes "from another process" go through a connection of their own (psycopg, raw SQL), so only the
change feed can tell the API about them. Under CI=true a missing PostgreSQL fails these tests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from deployer.api import create_app
from deployer.api.hot_cache import HotCache, render
from deployer.settings import Settings
from deployer.store import keys, lifecycle
from deployer.store.db import session_scope
from schemas import Status
from tests.api.test_read_cache import public, reference_body
from tests.conftest import wait_until

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
IMAGE = "registry.cn-hangzhou.aliyuncs.com/ns/mcp-time:1.0"


@pytest.fixture(scope="module")
def settings(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path_factory.mktemp("read-cache"),
        database_url=postgres_url,
        broker_url=None,
        result_backend=None,
        post_rate_limit_per_min=10_000,
    )


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        wait_until(lambda: c.app.state.read_cache.listening, what="the change feed listening")
        yield c


@pytest.fixture
def cache(client: TestClient) -> HotCache:
    wait_until(lambda: client.app.state.read_cache.listening, what="the change feed listening")
    return client.app.state.read_cache


def new_key(settings: Settings) -> tuple[str, dict[str, str]]:
    with session_scope(settings) as session:
        row, plaintext = keys.create_api_key(session, name="read-cache")
        return row.id, {"Authorization": f"Bearer {plaintext}"}


@pytest.fixture
def alice(settings: Settings) -> dict[str, str]:
    return new_key(settings)[1]


def deploy(client: TestClient, headers: dict[str, str], name: str) -> dict[str, Any]:
    body = {
        "name": name,
        "image": IMAGE,
        "command": ["mcp-server-time"],
        "secret_env": {"TOKEN": "s3cr3t-v4lue"},
    }
    r = client.post("/v1/deployments", json=body, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()


def sql(database_url: str, statement: str, *params: Any) -> None:
    """A write on a connection of its own: a worker, the recovery loop or the CLI in another process."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(statement, params)


def cached_get(client: TestClient, cache: HotCache, url: str, headers: dict[str, str]) -> Any:
    """GET twice until the second answer comes from the cache.

    Not always the first pair: the feed's own notification of the row's last write (the deploy's insert)
    may land after the first GET took its generation token, and the cache then rightly refuses that fill
    (a row read before a change never lands after its eviction). On a loaded host that happens often."""
    answers: list[Any] = []

    def second_get_hits() -> bool:
        client.get(url, headers=headers)
        hits = cache.hits
        r = client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        answers.append(r)
        return cache.hits == hits + 1

    wait_until(second_get_hits, timeout=10, interval=0.05, what="the second GET answered from the cache")
    return answers[-1]


def test_cached_bytes_are_the_uncached_bytes(client: TestClient, cache: HotCache, alice, settings) -> None:
    dep = deploy(client, alice, "rc-bytes")
    url = f"/v1/deployments/{dep['id']}"
    hit = cached_get(client, cache, url, alice)
    cache.evict(dep["id"])
    hits = cache.hits
    miss = client.get(url, headers=alice)
    assert cache.hits == hits, "the GET after an eviction was answered from the cache"
    assert hit.content == miss.content == reference_body(public(settings, dep["id"]))
    assert hit.headers["etag"] == miss.headers["etag"]
    assert hit.headers["content-type"] == miss.headers["content-type"] == "application/json"
    assert b"s3cr3t-v4lue" not in hit.content


def test_a_write_by_another_connection_evicts_and_the_next_get_shows_it(
    client: TestClient, cache: HotCache, alice, settings, postgres_url
) -> None:
    dep = deploy(client, alice, "rc-evict")
    url = f"/v1/deployments/{dep['id']}"
    etag = cached_get(client, cache, url, alice).headers["etag"]
    sql(
        postgres_url,
        "UPDATE deployments SET status = 'running', stage = 'function', progress = 42, updated_at = now() "
        "WHERE id = %s",
        dep["id"],
    )
    wait_until(lambda: cache.get(dep["id"]) is None, what="the feed's eviction")
    r = client.get(url, headers=alice)
    assert (r.json()["status"], r.json()["progress"]) == ("running", 42)
    assert r.headers["etag"] != etag
    assert r.content == render(public(settings, dep["id"]))


def test_a_worker_session_write_is_heard_too(client: TestClient, cache: HotCache, alice, settings) -> None:
    dep = deploy(client, alice, "rc-worker")
    url = f"/v1/deployments/{dep['id']}"
    cached_get(client, cache, url, alice)
    with session_scope(settings) as session:  # the store calls a worker makes; they note nothing locally
        assert lifecycle.transition(session, dep["id"], Status.running, stage="function", progress=30)
    wait_until(lambda: client.get(url, headers=alice).json()["progress"] == 30, what="the new progress")


def test_own_writes_are_read_at_once(client: TestClient, cache: HotCache, alice) -> None:
    dep = deploy(client, alice, "rc-own")
    url = f"/v1/deployments/{dep['id']}"
    cached_get(client, cache, url, alice)
    assert client.post(f"{url}/cancel", headers=alice).json()["status"] == "cancelled"
    assert client.get(url, headers=alice).json()["status"] == "cancelled", "no wait: evicted at our commit"


def test_revocation_in_this_process_is_immediate(client: TestClient, cache: HotCache, settings) -> None:
    key_id, headers = new_key(settings)
    dep = deploy(client, headers, "rc-revoke-here")
    cached_get(client, cache, f"/v1/deployments/{dep['id']}", headers)
    with session_scope(settings) as session:
        assert keys.revoke_api_key(session, key_id)
    for path in (f"/v1/deployments/{dep['id']}", "/v1/deployments"):
        r = client.get(path, headers=headers)
        assert r.status_code == 401 and "revoked" in r.json()["detail"], path


def test_revocation_by_another_process_takes_effect(
    client: TestClient, cache: HotCache, settings, postgres_url
) -> None:
    key_id, headers = new_key(settings)
    dep = deploy(client, headers, "rc-revoke-there")
    url = f"/v1/deployments/{dep['id']}"
    cached_get(client, cache, url, headers)
    assert client.get("/v1/deployments", headers=headers).status_code == 200  # get_owner caches it too
    sql(postgres_url, "UPDATE api_keys SET revoked_at = now() WHERE id = %s", key_id)  # `mcp-fc keys revoke`
    wait_until(lambda: client.get(url, headers=headers).status_code == 401, what="the revoked key refused")
    assert client.get("/v1/deployments", headers=headers).status_code == 401


def test_another_owner_and_names_and_unknown_ids(
    client: TestClient, cache: HotCache, alice, settings
) -> None:
    dep = deploy(client, alice, "rc-owner")
    url = f"/v1/deployments/{dep['id']}"
    cached_get(client, cache, url, alice)
    bob = new_key(settings)[1]
    cached_get(
        client, cache, f"/v1/deployments/{deploy(client, bob, 'rc-bob')['id']}", bob
    )  # bob's key cached
    r = client.get(url, headers=bob)
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/deployments/rc-owner", headers=alice).json()["id"] == dep["id"]
    assert client.get("/v1/deployments/rc-owner", headers=bob).status_code == 404
    assert client.get("/v1/deployments/0123456789abcdef0123", headers=alice).status_code == 404
    assert (
        client.get(
            url, headers={"Authorization": "Bearer mcpfc_000000000000_notarealsecretatallx"}
        ).status_code
        == 401
    )
    assert client.get(url).status_code == 401


def test_long_poll_wakes_on_the_change_feed(client: TestClient, cache: HotCache, alice, postgres_url) -> None:
    dep = deploy(client, alice, "rc-long-poll")
    url = f"/v1/deployments/{dep['id']}"
    answers: list[Any] = []
    poller = threading.Thread(
        target=lambda: answers.append(client.get(url, params={"wait": 30}, headers=alice))
    )
    started = time.monotonic()
    poller.start()
    wait_until(lambda: dep["id"] in cache._waiters, what="the long-poll waiting on the feed")
    sql(
        postgres_url, "UPDATE deployments SET status = 'running', updated_at = now() WHERE id = %s", dep["id"]
    )
    poller.join(30)
    assert answers and answers[0].json()["status"] == "running"
    assert time.monotonic() - started < 25, "it answered on the change, not at the deadline"


def test_listener_loss_bypasses_the_cache_until_it_listens_again(
    client: TestClient, cache: HotCache, alice, settings, postgres_url, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    feed_app = client.app
    dep = deploy(client, alice, "rc-loss")
    url = f"/v1/deployments/{dep['id']}"
    cached_get(client, cache, url, alice)
    database = postgres_url.rsplit("/", 1)[1]
    connects, losses = _feed(feed_app).connects, _feed(feed_app).losses
    pid = _feed(feed_app).backend_pid
    try:
        # Refuse new connections (the API's pool keeps its open ones), then cut the listener's.
        sql(ADMIN, f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        sql(ADMIN, "SELECT pg_terminate_backend(%s)", pid)
        wait_until(lambda: _feed(feed_app).losses == losses + 1, what="the feed noticing the loss")
        assert not cache.listening and len(cache) == 0
        hits = cache.hits
        with session_scope(settings) as session:  # a worker's write while nobody listens
            assert lifecycle.transition(session, dep["id"], Status.running, stage="function", progress=15)
        r = client.get(url, headers=alice)
        assert r.json()["progress"] == 15, "bypassed: read from the database"
        client.get(url, headers=alice)
        assert cache.hits == hits and len(cache) == 0, "nothing served from or put in the cache"
    finally:
        sql(ADMIN, f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    wait_until(lambda: cache.listening and _feed(feed_app).connects == connects + 1, what="listening again")
    cached_get(client, cache, url, alice)
    sql(postgres_url, "UPDATE deployments SET progress = 25, updated_at = now() WHERE id = %s", dep["id"])
    wait_until(lambda: client.get(url, headers=alice).json()["progress"] == 25, what="evictions again")
    assert "the read cache is off" in caplog.text
    assert alice["Authorization"].split()[1] not in caplog.text, "a presented key was logged"


def _feed(app: Any) -> Any:
    return app.state.change_feed
