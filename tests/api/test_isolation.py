"""A caller sees only its own deployments: another owner's id or name is a 404 on every route."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from schemas import Status

from .conftest import assert_problem, broker_messages, move, row_of, set_fields

ROUTES = [
    ("GET", "/v1/deployments/{ref}", None),
    ("GET", "/v1/deployments/{ref}?wait=5", None),
    ("POST", "/v1/deployments/{ref}/redeploy", {"image": "registry.cn-hangzhou.aliyuncs.com/ns/other:9"}),
    ("POST", "/v1/deployments/{ref}/cancel", None),
    ("POST", "/v1/deployments/{ref}/rotate-token", None),
    ("DELETE", "/v1/deployments/{ref}", None),
    ("GET", "/v1/deployments/{ref}/events", None),
    ("GET", "/v1/deployments/{ref}/client-config", None),
    ("GET", "/v1/tasks/{task}", None),
]


@pytest.fixture
def alices(deploy, settings) -> dict[str, Any]:
    dep = deploy()
    move(settings, dep["id"], Status.running)
    set_fields(settings, dep["id"], urls={"sse": "https://x.fcapp.run/sse", "mcp": "https://x.fcapp.run/mcp"})
    return dep


@pytest.mark.parametrize("ref", ["id", "name"])
@pytest.mark.parametrize(("method", "template", "body"), ROUTES, ids=[f"{m} {t}" for m, t, _ in ROUTES])
def test_other_owners_get_404(client: TestClient, alices, bob, settings, ref, method, template, body) -> None:
    # Tasks are addressed by task id; alice's name there is just as unknown to bob.
    path = template.format(ref=alices[ref], task=alices["task_id"] if ref == "id" else alices["name"])
    r = client.request(method, path, json=body, headers=bob)
    problem = assert_problem(r, 404)
    # The answer is the one for a reference that never existed: it reveals nothing about alice's row.
    assert set(problem) == {"type", "title", "status", "detail", "instance"}
    for fact in ("running", "mcp-time", alices["id"], alices["task_id"]):
        if fact not in path:
            assert fact not in r.text, fact
    row = row_of(settings, alices["id"])
    assert (row.status, row.task_id, row.cancel_requested) == ("running", alices["task_id"], False)
    assert len(broker_messages(settings)) == 1
    assert problem["instance"] == path.split("?")[0]


def test_the_owner_reaches_the_same_routes(client: TestClient, alices, alice) -> None:
    # DELETE last: it starts a new task, and the task route looks up the current one.
    for method, template, body in sorted(ROUTES, key=lambda route: route[0] == "DELETE"):
        path = template.format(ref=alices["id"], task=alices["task_id"])
        if path.endswith("/events") or "wait=" in path:
            continue  # a running deployment's stream and long-poll do not end by themselves
        r = client.request(method, path, json=body, headers=alice)
        assert r.status_code != 404, (method, path, r.text)


def test_lists_are_per_owner(client: TestClient, alices, alice, bob) -> None:
    assert client.get("/v1/deployments", headers=bob).json() == {"items": [], "next_cursor": None}
    assert [d["id"] for d in client.get("/v1/deployments", headers=alice).json()["items"]] == [alices["id"]]


def test_every_owned_route_is_in_the_isolation_table(client: TestClient) -> None:
    """A new route on someone's deployment or task must be added to ROUTES (and so to the test above)."""
    listed = {
        (m, t.split("?")[0].replace("{ref}", "{id}").replace("{task}", "{task_id}")) for m, t, _ in ROUTES
    }
    served = {
        (method, route.path)
        for route in client.app.routes
        if "{" in getattr(route, "path", "")
        for method in getattr(route, "methods", set()) - {"HEAD", "OPTIONS"}
    }
    assert served <= listed, served - listed
