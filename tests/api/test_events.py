"""GET /v1/deployments/{id}/events: Server-Sent Events of progress, resumable with Last-Event-ID."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from schemas import Status

from .conftest import CANARY, move

pytestmark = pytest.mark.timeout(60)


def read_events(client: TestClient, url: str, headers: dict[str, str], on_event=None) -> list[dict[str, Any]]:
    """Read the stream to its end; each event as {event, id, data}."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with client.stream("GET", url, headers=headers) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            assert CANARY not in line
            if not line:
                if current.get("event"):
                    events.append(current)
                    if on_event:
                        on_event(current)
                current = {}
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                current["data"] = json.loads(value)
            elif field in ("event", "id"):
                current[field] = value
    return events


def test_events_replay_the_history_and_end_at_a_terminal_status(
    client: TestClient, alice, deploy, settings
) -> None:
    dep = deploy()
    move(settings, dep["id"], Status.running, stage="function", progress=30)
    move(settings, dep["id"], Status.succeeded, stage="done", progress=100)
    events = read_events(client, f"/v1/deployments/{dep['name']}/events", alice)
    assert [e["event"] for e in events] == ["progress"] * 3
    assert [e["data"]["status"] for e in events] == ["pending", "running", "succeeded"]
    assert events[1]["data"]["stage"] == "function" and events[1]["data"]["progress"] == 30
    assert events[2]["data"]["progress"] == 100
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert set(events[0]["data"]) == {"status", "stage", "progress", "message", "at", "task_id"}


def test_events_resume_after_last_event_id(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy()
    move(settings, dep["id"], Status.running, Status.failed)
    events = read_events(client, f"/v1/deployments/{dep['id']}/events", alice)
    resumed = read_events(
        client, f"/v1/deployments/{dep['id']}/events", {**alice, "Last-Event-ID": events[0]["id"]}
    )
    assert [e["id"] for e in resumed] == [e["id"] for e in events[1:]]
    after_end = read_events(
        client, f"/v1/deployments/{dep['id']}/events", {**alice, "Last-Event-ID": events[-1]["id"]}
    )
    assert after_end == [], "nothing new and the deployment is finished: the stream ends at once"


def test_events_follow_a_live_deployment(client: TestClient, alice, deploy, settings) -> None:
    dep = deploy()
    step = iter([(Status.running,), (Status.succeeded,)])

    def advance(_event: dict[str, Any]) -> None:
        # Each time the client receives an event, the "worker" makes the next move.
        nxt = next(step, None)
        if nxt:
            threading.Thread(target=move, args=(settings, dep["id"], *nxt)).start()

    events = read_events(client, f"/v1/deployments/{dep['id']}/events", alice, on_event=advance)
    assert [e["data"]["status"] for e in events] == ["pending", "running", "succeeded"]


def test_events_after_a_redeploy_do_not_stop_at_the_old_terminal_event(
    client: TestClient, alice, deploy, settings
) -> None:
    dep = deploy()
    move(settings, dep["id"], Status.running, Status.succeeded)
    move(settings, dep["id"], Status.pending, Status.running, Status.succeeded)
    statuses = [
        e["data"]["status"] for e in read_events(client, f"/v1/deployments/{dep['id']}/events", alice)
    ]
    assert statuses == ["pending", "running", "succeeded", "pending", "running", "succeeded"]
