"""GET /v1/deployments/{id}/events: a run's progress as Server-Sent Events.

A stream follows one run (issue 26 #3): the deployment's current one, or `?run=TASK_ID`; every event names
the run that wrote it. It reads the row's status, then the run's events after Last-Event-ID, until the
run's terminal event. With the
change feed (PostgreSQL) it reads when its deployment changed; without it, it polls with back-off. Each
API key may hold MCPFC_EVENTS_STREAMS_PER_KEY streams in this process at once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Header, Query, Request
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from deployer.api.deps import SettingsDep, StreamOwner, get_read_cache
from deployer.api.problems import Problem, ProblemDetail
from deployer.api.routes.common import (
    NOT_FOUND,
    PREFIX,
    IdOrName,
    deployments_router,
    not_found,
    wait_for_change,
)
from deployer.settings import Settings
from deployer.store import reads as store
from deployer.store.db import session_scope
from schemas import TERMINAL, Status

router = deployments_router()

# Without the change feed (SQLite): re-read after EVENTS_POLL_S, doubling while nothing happens up to
# EVENTS_POLL_MAX_S (150 streams each reading five times a second slowed every GET from 43 to 625 ms).
# With the feed a stream reads when its deployment changed, or after EVENTS_FEED_CHECK_S as a backstop.
EVENTS_POLL_S = 0.2
EVENTS_POLL_MAX_S = 2.0
EVENTS_FEED_CHECK_S = 5.0
EVENTS_MAX_S = 3600.0  # a stream ends after an hour; clients reconnect with Last-Event-ID


def _events_since(
    settings: Settings, dep_id: str, after: int, run: str | None
) -> tuple[str, str | None, list[dict[str, Any]]]:
    """The row's status and current run, then the events of `run` (None: every event, for a run older
    than migration 0004) after `after`, read in that order (see stream_events)."""
    with session_scope(settings) as session:
        row = store.get(session, dep_id)
        status = row.status if row is not None else Status.deleted.value
        current = row.task_id if row is not None else None
        events = [
            {
                "id": ev.id,
                "status": ev.status,
                "stage": ev.stage,
                "progress": ev.progress,
                "message": ev.message,
                "at": ev.at.isoformat(),
                "task_id": ev.task_id,
            }
            for ev in store.events_after(session, dep_id, after, run=run)
        ]
        return status, current, events


def _resolve(
    settings: Settings, owner_id: str, id_or_name: str, run: str | None
) -> tuple[str, str | None] | None:
    """(deployment id, the run to follow): `run` when given, else the deployment's current run; the run is
    None for a run that started before events named their run (migration 0004): every event then."""
    with session_scope(settings) as session:
        row = store.get_for_owner(session, owner_id, id_or_name)
        if row is None:
            return None
        run = run or row.task_id
        if run and not store.run_has_events(session, row.id, run):
            if run != row.task_id:
                raise Problem(404, f"{row.name} has no run {run}", kind="no-such-run")
            run = None
        return row.id, run


def run_over(status: str, current: str | None, run: str | None, batch: list[dict[str, Any]]) -> bool:
    """Whether a stream has shown its run to the end: the run's terminal event came, or (nothing new) the
    deployment is terminal on that run, or another run replaced it."""
    if batch and Status(batch[-1]["status"]) in TERMINAL:
        return True
    if batch:
        return False
    return Status(status) in TERMINAL or (run is not None and current != run)


class StreamSlots:
    """Open /events streams per API key in this process, at most `limit` each (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}

    def take(self, key_id: str) -> bool:
        count = self.open.get(key_id, 0)
        if self.limit and count >= self.limit:
            return False
        self.open[key_id] = count + 1
        return True

    def give_back(self, key_id: str) -> None:
        count = self.open.get(key_id, 0) - 1
        if count > 0:
            self.open[key_id] = count
        else:
            self.open.pop(key_id, None)


def _stream_slots(request: Request, settings: Settings) -> StreamSlots:
    slots: StreamSlots | None = getattr(request.app.state, "event_streams", None)
    if slots is None:
        slots = request.app.state.event_streams = StreamSlots(settings.events_streams_per_key)
    return slots


class _SlotHoldingResponse(EventSourceResponse):
    """Gives its stream slot back however the response ends (finished, client gone, server stopping)."""

    def __init__(self, *args: Any, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def _wait_for_events(request: Request, dep_id: str, token: int, idle_s: float) -> None:
    """Until the deployment may have new events: its change-feed eviction (or the backstop), else idle_s."""
    cache = get_read_cache(request)
    if cache is None:
        await asyncio.sleep(idle_s)
        return
    await wait_for_change(request, dep_id, token, EVENTS_FEED_CHECK_S)


@router.get(
    PREFIX + "/{id}/events",
    response_class=EventSourceResponse,
    responses={
        **NOT_FOUND,
        200: {"content": {"text/event-stream": {}}, "description": "`event: progress` events"},
        429: {"model": ProblemDetail, "description": "this API key has too many event streams open"},
    },
)
async def stream_events(
    id: IdOrName,
    request: Request,
    owner: StreamOwner,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    run: Annotated[
        str | None,
        Query(max_length=64, description="the run (task id) to follow; default the deployment's current run"),
    ] = None,
) -> EventSourceResponse:
    """Server-Sent Events of one run's progress, from its start: the current run (a redeploy in progress,
    else the last one), or `?run=TASK_ID`; ends after the run's terminal event. Honours Last-Event-ID. At
    most MCPFC_EVENTS_STREAMS_PER_KEY streams per API key are open at once (429 beyond)."""
    resolved = await run_in_threadpool(_resolve, settings, owner.owner_id, id, run)
    if resolved is None:
        raise not_found(id)
    dep_id, run = resolved
    try:
        after = max(0, int(last_event_id or 0))
    except ValueError:
        after = 0
    slots = _stream_slots(request, settings)
    if not slots.take(owner.key_id):
        raise Problem(
            429,
            f"this API key has {slots.limit} event streams open; close one or poll with ?wait=",
            kind="too-many-streams",
            headers={"Retry-After": "5"},
        )

    async def events() -> AsyncIterator[dict[str, str]]:
        nonlocal after
        deadline = time.monotonic() + EVENTS_MAX_S
        idle_s = EVENTS_POLL_S
        while True:
            cache = get_read_cache(request)
            token = cache.token() if cache is not None else 0  # before the read: no change is missed
            # Status first: if it was terminal, the events read next include its terminal event.
            status, current, batch = await run_in_threadpool(_events_since, settings, dep_id, after, run)
            for ev in batch:
                after = ev.pop("id")
                yield {"event": "progress", "id": str(after), "data": json.dumps(ev, separators=(",", ":"))}
            if run_over(status, current, run, batch):
                return
            if time.monotonic() > deadline:
                return
            if batch:
                idle_s = EVENTS_POLL_S
            await _wait_for_events(request, dep_id, token, idle_s)
            idle_s = min(idle_s * 2, EVENTS_POLL_MAX_S)

    return _SlotHoldingResponse(
        events(),
        ping=15,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        release=lambda: slots.give_back(owner.key_id),
    )
