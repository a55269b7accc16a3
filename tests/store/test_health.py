"""The health state machine and the due-list of the scheduled MCP checks (deployer/store/health.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deployer.store import health
from deployer.store.health import Candidate, Outcome, change_message, due, next_health

NOW = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
OK = Outcome(ok=True, latency_ms=42)
DOWN = Outcome(
    ok=False, latency_ms=15000, error="MCP streamable-http client at URL: no answer before the timeout"
)


def test_first_success_is_healthy_and_says_so():
    new = next_health(None, OK, task_id="t1", now=NOW)
    assert new == {
        "status": "healthy",
        "checked_at": NOW.isoformat(),
        "latency_ms": 42,
        "last_error": None,
        "consecutive_failures": 0,
        "task_id": "t1",
    }
    assert change_message(None, new) == "health: healthy (MCP probe answered in 42 ms)"


def test_a_failure_makes_it_unhealthy_and_counts_failures_then_recovers():
    healthy = next_health(None, OK, task_id="t1", now=NOW)
    down = next_health(healthy, DOWN, task_id="t1", now=NOW)
    assert down["status"] == "unhealthy" and down["consecutive_failures"] == 1
    assert down["last_error"] == DOWN.error
    assert change_message(healthy, down) == f"health: unhealthy: {DOWN.error}"
    still = next_health(down, DOWN, task_id="t1", now=NOW)
    assert still["consecutive_failures"] == 2 and change_message(down, still) is None
    back = next_health(still, OK, task_id="t1", now=NOW)
    assert back["status"] == "healthy" and back["consecutive_failures"] == 0
    assert back["last_error"] == DOWN.error  # when and why it was last down stays visible
    assert change_message(still, back) == "health: healthy again (MCP probe answered in 42 ms)"


def test_unhealthy_after_n_failures_keeps_the_status_until_then():
    healthy = next_health(None, OK, task_id="t1", now=NOW)
    one = next_health(healthy, DOWN, task_id="t1", now=NOW, unhealthy_after=3)
    two = next_health(one, DOWN, task_id="t1", now=NOW, unhealthy_after=3)
    three = next_health(two, DOWN, task_id="t1", now=NOW, unhealthy_after=3)
    assert [s["status"] for s in (one, two, three)] == ["healthy", "healthy", "unhealthy"]
    assert change_message(two, three) == f"health: unhealthy (3 probes in a row): {DOWN.error}"


def test_a_long_error_keeps_its_end():
    error = "x" * 5000 + "the server's last line"
    new = next_health(None, Outcome(ok=False, latency_ms=1, error=error), task_id="t", now=NOW)
    assert len(new["last_error"]) <= health.MAX_ERROR_CHARS + 1
    assert new["last_error"].endswith("the server's last line")


def test_due_never_checked_first_then_oldest_and_recent_ones_wait():
    found = [
        Candidate("recent", "t", NOW - timedelta(seconds=10)),
        Candidate("old", "t", NOW - timedelta(seconds=300)),
        Candidate("never", "t", None),
        Candidate("older", "t", NOW - timedelta(seconds=900)),
        Candidate("almost", "t", NOW - timedelta(seconds=55)),  # within 90 % of 60 s: counts as due
    ]
    assert due(found, now=NOW, interval_s=60) == ["never", "older", "old", "almost"]
    assert due(found, now=NOW, interval_s=60, limit=2) == ["never", "older"]
