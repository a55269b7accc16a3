"""deployer/store/health.py's reads and guarded write on SQLite and PostgreSQL (JSON paths in `result`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from deployer.crypto import Vault
from deployer.settings import Settings
from deployer.store import health, lifecycle
from deployer.store import reads as store
from deployer.store.db import session_scope
from deployer.store.migrate import upgrade
from schemas import DeployRequest, HealthStatus, Status

NOW = datetime.now(UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    settings = Settings(_env_file=None, data_dir=tmp_path, database_url=url)  # type: ignore[call-arg]
    upgrade(settings.effective_database_url)
    return settings


def live(settings: Settings, name: str, owner: str = "own1") -> Any:
    with session_scope(settings) as session:
        req = DeployRequest(name=name, image="registry.cn-hangzhou.aliyuncs.com/ns/i:1", command=["srv"])
        row = lifecycle.create_deployment(
            session,
            Vault.from_settings(settings),
            owner_id=owner,
            req=req,
            region="cn-hangzhou",
            deadline_s=60,
        )
        row.status = Status.succeeded.value
        row.urls = {"mcp": f"http://fc/{name}/mcp"}
        row.result = {"trigger_result": {"body": {}}}
        session.flush()
        session.expunge(row)
        return row


def check(settings: Settings, row: Any, ok: bool, latency: int = 10) -> bool:
    with session_scope(settings) as session:
        fresh = store.get(session, row.id)
        session.expunge(fresh)
    prev = health.current(fresh)
    new = health.next_health(
        prev,
        health.Outcome(ok, latency, None if ok else "down"),
        task_id=fresh.task_id,
        now=datetime.now(UTC),
    )
    with session_scope(settings) as session:
        return health.record(session, fresh, new, health.change_message(prev, new))


def test_reads_filter_and_count_by_current_health(settings: Settings) -> None:
    up, down, never = live(settings, "up"), live(settings, "down"), live(settings, "never")
    assert (
        check(settings, up, True, 40) and check(settings, down, True) and check(settings, down, False, 15000)
    )
    with session_scope(settings) as session:
        by = {
            s: [r.name for r in store.list_for_owner(session, "own1", health_status=s)[0]]
            for s in HealthStatus
        }
        assert by == {
            HealthStatus.healthy: ["up"],
            HealthStatus.unhealthy: ["down"],
            HealthStatus.unknown: ["never"],
        }
        assert health.counts(session) == {"healthy": 1, "unhealthy": 1, "unknown": 1}
        assert sorted(health.latencies_ms(session)) == [40, 15000]
        assert health.tool_drift_count(session) == 0
        found = {c.id: c for c in health.candidates(session)}
        assert found[never.id].checked_at is None and found[up.id].checked_at is not None
        assert (
            health.due(list(found.values()), now=datetime.now(UTC) + timedelta(seconds=120), interval_s=60)[0]
            == never.id
        )
        messages = [e.message for e in store.events_after(session, down.id)]
        assert messages[-2:] == ["health: healthy (MCP probe answered in 10 ms)", "health: unhealthy: down"]
        public = store.to_public(store.get(session, down.id)).health
        assert public.status == HealthStatus.unhealthy and public.consecutive_failures == 1


def test_a_new_release_makes_the_old_health_unknown_and_a_late_check_writes_nothing(
    settings: Settings,
) -> None:
    row = live(settings, "redeployed", owner="own2")
    assert check(settings, row, True)
    with session_scope(settings) as session:
        stale = store.get(session, row.id)
        session.expunge(stale)
        fresh = store.get(session, row.id)
        assert lifecycle.queue_redeploy(session, Vault.from_settings(settings), fresh, None, deadline_s=60)
    new = health.next_health(None, health.Outcome(False, 1, "down"), task_id=stale.task_id, now=NOW)
    with session_scope(settings) as session:
        assert not health.record(session, stale, new, "health: unhealthy: down")  # the redeploy won
        row = store.get(session, row.id)
        row.status = Status.succeeded.value  # the redeploy finished
        session.flush()
        assert store.to_public(row).health.status == HealthStatus.unknown
        assert [
            r.name for r in store.list_for_owner(session, "own2", health_status=HealthStatus.unknown)[0]
        ] == ["redeployed"]


def test_a_check_keeps_the_keys_another_check_wrote_meanwhile(settings: Settings) -> None:
    row = live(settings, "shared", owner="own3")
    with session_scope(settings) as session:
        read = store.get(session, row.id)  # what the health check read before its probe
        session.expunge(read)
    with session_scope(settings) as session:  # the config drift check writes its own key meanwhile
        other = store.get(session, row.id)
        other.result = {**other.result, "drift": {"drifted": True}}
        session.flush()
    new = health.next_health(None, health.Outcome(True, 5), task_id=read.task_id, now=NOW)
    with session_scope(settings) as session:
        assert health.record(session, read, new, None)
    with session_scope(settings) as session:
        result = store.get(session, row.id).result
    assert result["drift"] == {"drifted": True} and result["health"]["status"] == "healthy"
    assert result["trigger_result"] == {"body": {}}
