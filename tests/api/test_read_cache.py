"""The GET-by-id read cache (deployer/api/hot_cache.py): its rules on their own, and the route on SQLite,
where there is no change feed and so no cache. tests/integration/test_read_cache_pg.py runs the feed."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from deployer.api.hot_cache import HotCache, View, key_digest, render
from deployer.store import reads as store
from deployer.store.db import session_scope
from schemas import Deployment, Status

from .conftest import assert_problem, bearer, move, new_key


def reference_body(dep: Deployment) -> bytes:
    """What FastAPI itself sends for `response_model=Deployment` (the route's answer before the cache)."""
    app = FastAPI()

    @app.get("/ref", response_model=Deployment)
    def ref() -> Deployment:
        return dep

    with TestClient(app) as client:
        return client.get("/ref").content


def public(settings, dep_id: str) -> Deployment:
    with session_scope(settings) as session:
        row = store.get(session, dep_id)
        assert row is not None
        return store.to_public(row)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def view(dep_id: str = "0001", owner: str = "own1", body: bytes = b"{}") -> View:
    return View(
        id=dep_id,
        owner_id=owner,
        body=body,
        etag='"e"',
        terminal=False,
        watched=("running", "creating_function", 10, None, None),
    )


@pytest.fixture
def cache() -> HotCache:
    c = HotCache(ttl_s=30, max_entries=3, clock=Clock())
    c.set_listening(True)
    return c


# -- the cache's rules -----------------------------------------------------------------------------------


def test_a_fill_is_served_until_its_id_is_evicted(cache: HotCache) -> None:
    assert cache.put(view("a"), cache.token())
    assert cache.get("a") == view("a")
    cache.apply("d:a")
    assert cache.get("a") is None


def test_a_read_begun_before_an_eviction_cannot_fill_afterwards(cache: HotCache) -> None:
    token = cache.token()  # a reader starts its database read ...
    cache.evict("a")  # ... a change of `a` commits and its notification arrives ...
    assert not cache.put(view("a", body=b"old"), token), "the stale row must not land"
    assert cache.get("a") is None
    assert cache.put(view("b"), token), "other ids are not affected"
    assert cache.put(view("a", body=b"new"), cache.token()), "a read begun after the eviction may fill"
    assert cache.get("a").body == b"new"
    assert cache.changed_since("a", token) and not cache.changed_since("b", token)


def test_nothing_is_served_or_filled_without_the_feed(cache: HotCache) -> None:
    token = cache.token()
    cache.put(view("a"), token)
    cache.set_listening(False)  # the listener's connection is gone
    assert cache.get("a") is None and len(cache) == 0
    assert not cache.put(view("a"), cache.token())
    cache.set_listening(True)  # listening again: reads begun before LISTEN was back may have missed changes
    assert not cache.put(view("a"), token)
    assert cache.put(view("a"), cache.token())


def test_entries_expire_after_the_ttl(cache: HotCache) -> None:
    clock = cache._clock
    assert isinstance(clock, Clock)
    cache.put(view("a"), cache.token())
    cache.put_owner("key", "owner", cache.token())
    clock.now += 29.9
    assert cache.get("a") is not None and cache.owner("key") == "owner"
    clock.now += 0.2
    assert cache.get("a") is None and cache.owner("key") is None


def test_the_least_recently_used_go_first(cache: HotCache) -> None:
    for dep_id in "abc":
        cache.put(view(dep_id), cache.token())
    cache.get("a")
    cache.put(view("d"), cache.token())
    assert [d for d in "abcd" if cache.get(d) is not None] == ["a", "c", "d"]


def test_forgotten_evictions_still_refuse_older_fills() -> None:
    cache = HotCache(max_entries=1)
    cache.set_listening(True)
    token = cache.token()
    for i in range(10):  # more evictions than the cache remembers ids for (4 x max_entries)
        cache.evict(f"x{i}")
    assert not cache.put(view("x0"), token)
    assert cache.put(view("x0"), cache.token())


def test_a_key_change_drops_every_cached_key_and_refuses_older_fills(cache: HotCache) -> None:
    token = cache.token()
    assert cache.put_owner("mcpfc_k1_secret", "owner-1", token)
    assert cache.owner("mcpfc_k1_secret") == "owner-1"
    assert cache.owner("mcpfc_k1_other") is None
    cache.apply("k:k1")
    assert cache.owner("mcpfc_k1_secret") is None
    assert not cache.put_owner("mcpfc_k1_secret", "owner-1", token), "authenticated before the revocation"
    assert cache.put_owner("mcpfc_k1_secret", "owner-1", cache.token())


def test_keys_are_held_as_digests_not_as_presented(cache: HotCache) -> None:
    cache.put_owner("mcpfc_k1_the-secret-part", "owner-1", cache.token())
    assert list(cache._keys) == [key_digest("mcpfc_k1_the-secret-part")]
    assert b"the-secret-part" not in b"".join(cache._keys)


def test_an_unknown_notification_empties_the_cache(cache: HotCache) -> None:
    cache.put(view("a"), cache.token())
    cache.apply("something-else")
    assert cache.get("a") is None and cache.listening


def test_a_long_poll_waiter_wakes_on_its_eviction_only(cache: HotCache) -> None:
    async def scenario() -> tuple[bool, bool]:
        a, b = cache.subscribe("a"), cache.subscribe("b")
        cache.evict("a")
        await asyncio.sleep(0)  # call_soon_threadsafe runs on the next loop iteration
        woke = (a.event.is_set(), b.event.is_set())
        cache.unsubscribe("a", a)
        cache.unsubscribe("b", b)
        return woke

    assert asyncio.run(scenario()) == (True, False)
    assert cache._waiters == {}


# -- the route on SQLite (no feed, no cache) -------------------------------------------------------------


def test_sqlite_has_no_cache_and_every_get_reads_the_row(client: TestClient, alice, deploy, settings) -> None:
    assert client.app.state.read_cache is None
    dep = deploy()
    assert client.get(f"/v1/deployments/{dep['id']}", headers=alice).json()["status"] == "pending"
    move(settings, dep["id"], Status.running, stage="function", progress=20)
    body = client.get(f"/v1/deployments/{dep['id']}", headers=alice).json()
    assert (body["status"], body["progress"]) == ("running", 20)


def test_the_body_is_what_fastapi_renders_for_the_response_model(
    client: TestClient, alice, deploy, settings
) -> None:
    dep = deploy()
    move(settings, dep["id"], Status.running, stage="function", progress=20)
    r = client.get(f"/v1/deployments/{dep['id']}", headers=alice)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    expected = reference_body(public(settings, dep["id"]))
    assert r.content == expected == render(public(settings, dep["id"]))
    assert client.get("/v1/deployments/mcp-time", headers=alice).content == expected, "by name too"


def test_etag_and_if_none_match(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy()
    url = f"/v1/deployments/{dep['id']}"
    first = client.get(url, headers=alice)
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        r = client.get(url, headers={**alice, "If-None-Match": header})
        assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag, header
    assert client.get(url, headers={**alice, "If-None-Match": '"other"'}).status_code == 200
    move(settings, dep["id"], Status.running, stage="function", progress=20)
    changed = client.get(url, headers={**alice, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_if_none_match_does_not_bypass_the_key_check(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy()
    etag = client.get(f"/v1/deployments/{dep['id']}", headers=alice).headers["etag"]
    assert_problem(client.get(f"/v1/deployments/{dep['id']}", headers={"If-None-Match": etag}), 401)
    other = bearer(new_key(settings)[1])
    assert_problem(client.get(f"/v1/deployments/{dep['id']}", headers={**other, "If-None-Match": etag}), 404)


def test_openapi_still_documents_the_model_the_key_and_the_etag(client: TestClient) -> None:
    op = client.get("/openapi.json").json()["paths"]["/v1/deployments/{id}"]["get"]
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Deployment"}
    assert op["security"] == [{"HTTPBearer": []}]
    assert {p["name"] for p in op["parameters"]} == {"id", "wait", "If-None-Match"}
    assert "304" in op["responses"] and "ETag" in op["responses"]["200"]["headers"]
