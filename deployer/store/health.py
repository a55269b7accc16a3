"""A deployment's health: what a scheduled MCP probe found, kept in the row's `result` JSON (no migration).

`result["health"]` holds `{status, checked_at, latency_ms, last_error, consecutive_failures, task_id}`.
`task_id` is the task of the deploy that made the release it checked: a redeploy, rollback or token
rotation gives the row a new task id, so the old release's health stops counting (`unknown` until the
first check of the new one) without the deploy task having to clear it.

The state machine (`next_health`) is pure; the reads and the guarded write are here too, so the tasks
(tasks/health.py), the API's filter and /metrics read one definition of "current health".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, not_, or_, select, true
from sqlalchemy.orm import Session

from deployer.fc.spec import LIVE_ALIAS
from deployer.store import lifecycle
from deployer.store.result import DeploymentResult
from deployer.store.tables import DeploymentRow
from schemas import Health, HealthStatus, Status

KEY = "health"
#: A failed probe's message is kept this long (the server's last lines are at its end).
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Outcome:
    """One probe: ok, how long it took, and what went wrong."""

    ok: bool
    latency_ms: int
    error: str | None = None


def current(row: DeploymentRow) -> dict[str, Any] | None:
    """The stored health of the row's live release, or None (never checked, or it belongs to an older one)."""
    return DeploymentResult.from_json(row.result).finding(KEY, status=row.status, task_id=row.task_id)


def public(row: DeploymentRow) -> Health:
    return public_of(current(row))


def public_of(stored: dict[str, Any] | None) -> Health:
    """The API's view of a live release's stored health (`current`)."""
    if stored is None:
        return Health()
    return Health.model_validate({k: v for k, v in stored.items() if k != "task_id"})


def next_health(
    prev: dict[str, Any] | None,
    outcome: Outcome,
    *,
    task_id: str | None,
    now: datetime,
    unhealthy_after: int = 1,
) -> dict[str, Any]:
    """The health after one probe. Unhealthy after `unhealthy_after` failures in a row (until then a
    failure keeps the previous status); healthy at the first success."""
    prev = prev or {}
    failures = 0 if outcome.ok else int(prev.get("consecutive_failures") or 0) + 1
    if outcome.ok:
        status = HealthStatus.healthy
    elif failures >= unhealthy_after:
        status = HealthStatus.unhealthy
    else:
        status = HealthStatus(prev.get("status") or HealthStatus.unknown.value)
    error = outcome.error
    if error and len(error) > MAX_ERROR_CHARS:
        error = "…" + error[-MAX_ERROR_CHARS:]
    return {
        "status": status.value,
        "checked_at": now.isoformat(),
        "latency_ms": outcome.latency_ms,
        # the last failure stays visible after a recovery (when and why it was unhealthy)
        "last_error": error if not outcome.ok else prev.get("last_error"),
        "consecutive_failures": failures,
        "task_id": task_id,
    }


def change_message(prev: dict[str, Any] | None, new: dict[str, Any]) -> str | None:
    """The event of a change of status (None when the status stays)."""
    before = prev.get("status") if prev else None
    before = before or HealthStatus.unknown.value
    after = new["status"]
    if before == after:
        return None
    if after == HealthStatus.unhealthy.value:
        failures = new["consecutive_failures"]
        times = f" ({failures} probes in a row)" if failures > 1 else ""
        return f"health: unhealthy{times}: {new.get('last_error') or 'probe failed'}"
    if before == HealthStatus.unhealthy.value:
        return f"health: healthy again (MCP probe answered in {new['latency_ms']} ms)"
    return f"health: {after} (MCP probe answered in {new['latency_ms']} ms)"


# -- reads ------------------------------------------------------------------------------------------


def serving_clause() -> Any:
    """A WHERE clause: deployments whose endpoint serves a known release (deployer/ops/releases.py
    `endpoint_serves`): succeeded, or failed or cancelled with the trigger on `live` and `live` on a
    version. What the scheduled health and drift checks watch (issue 26 #14)."""
    result = DeploymentRow.result
    return or_(
        DeploymentRow.status == Status.succeeded.value,
        and_(
            DeploymentRow.status.in_([Status.failed.value, Status.cancelled.value]),
            result["trigger_result"]["body"]["qualifier"].as_string() == LIVE_ALIAS,
            result["alias_result"]["body"]["versionId"].as_string().is_not(None),
        ),
    )


def _is_current() -> Any:
    return and_(
        serving_clause(),
        DeploymentRow.result[KEY]["task_id"].as_string() == DeploymentRow.task_id,
    )


def status_filter(status: HealthStatus) -> Any:
    """A WHERE clause: deployments whose current health is `status` (`unknown`: none recorded yet, which
    includes every deployment that is not live)."""
    if status == HealthStatus.unknown:
        known = and_(
            _is_current(),
            DeploymentRow.result[KEY]["status"]
            .as_string()
            .in_([HealthStatus.healthy.value, HealthStatus.unhealthy.value]),
        )
        # a row without health makes `known` NULL, not false: that is unknown too
        return func.coalesce(not_(known), true())
    return and_(_is_current(), DeploymentRow.result[KEY]["status"].as_string() == status.value)


@dataclass(frozen=True)
class Candidate:
    id: str
    task_id: str | None
    checked_at: datetime | None  # of the live release; None when never checked


def candidates(session: Session) -> list[Candidate]:
    """Every live deployment with when its release was last checked (ids and two JSON fields, not rows)."""
    stmt = select(
        DeploymentRow.id,
        DeploymentRow.task_id,
        DeploymentRow.result[KEY]["task_id"].as_string(),
        DeploymentRow.result[KEY]["checked_at"].as_string(),
    ).where(serving_clause(), DeploymentRow.urls.is_not(None))
    found = []
    for dep_id, task_id, checked_task, checked_at in session.execute(stmt):
        when = None
        if checked_task == task_id and checked_at:
            try:
                when = datetime.fromisoformat(checked_at)
            except ValueError:
                when = None
        found.append(Candidate(dep_id, task_id, when))
    return found


def due(found: list[Candidate], *, now: datetime, interval_s: float, limit: int | None = None) -> list[str]:
    """The ids to check now: never checked first, then the longest unchecked. A check counts as recent for
    90 % of the interval, so a sweep that fires a little early still finds the deployments of the last."""
    horizon = now - timedelta(seconds=interval_s * 0.9)
    late = [c for c in found if c.checked_at is None or c.checked_at <= horizon]
    late.sort(key=lambda c: (c.checked_at is not None, c.checked_at or now))
    ids = [c.id for c in late]
    return ids if limit is None else ids[:limit]


def counts(session: Session) -> dict[str, int]:
    """Live deployments by current health (for /metrics)."""
    status = DeploymentRow.result[KEY]["status"].as_string()
    checked_task = DeploymentRow.result[KEY]["task_id"].as_string()
    inner = (
        select(status.label("h"), (checked_task == DeploymentRow.task_id).label("cur"))
        .where(serving_clause())
        .subquery()
    )
    stmt = select(inner.c.h, inner.c.cur, func.count()).group_by(inner.c.h, inner.c.cur)
    out = {s.value: 0 for s in HealthStatus}
    for value, is_current, n in session.execute(stmt):
        key = value if is_current and value in out else HealthStatus.unknown.value
        out[key] += int(n)
    return out


def latencies_ms(session: Session) -> list[int]:
    """The latest probe latency of each live deployment checked since its release (for /metrics)."""
    stmt = select(DeploymentRow.result[KEY]["latency_ms"].as_integer()).where(_is_current())
    return [int(v) for (v,) in session.execute(stmt) if v is not None]


def tool_drift_count(session: Session) -> int:
    """Live deployments whose health check saw other tools than their deploy recorded (for /metrics)."""
    drift = DeploymentRow.result["tool_drift"]
    stmt = select(func.count()).where(
        serving_clause(),
        drift["task_id"].as_string() == DeploymentRow.task_id,
    )
    return int(session.scalar(stmt) or 0)


# -- the write (a lifecycle verb) -------------------------------------------------------------------


def record(
    session: Session,
    row: DeploymentRow,
    new: dict[str, Any],
    messages: list[str] | str | None,
    **extra_result: Any,
) -> bool:
    """Store the health (and any other result keys given, e.g. `tool_drift`) through
    `lifecycle.record_check`: only if the row still serves the release that was checked; an event for each
    message (something changed)."""
    if isinstance(messages, str):
        messages = [messages]
    found = {KEY: new, **extra_result}
    return lifecycle.record_check(session, row.id, row.task_id, found, [m for m in messages or [] if m])
