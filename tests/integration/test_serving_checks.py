"""Which deployments the scheduled health and drift checks watch (issue 26 #14), on PostgreSQL and SQLite:
succeeded ones, and failed or cancelled ones whose `live` alias still serves an earlier version
(deployer/store/health.py `serving_clause`, the same rule as deployer/ops/releases.py `endpoint_serves`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from deployer.crypto import Vault
from deployer.ops import releases
from deployer.settings import Settings
from deployer.store import health, lifecycle
from deployer.store.db import session_scope
from deployer.store.migrate import upgrade
from deployer.store.tables import DeploymentRow
from schemas import DeployRequest
from tests.integration.conftest import postgres_url  # noqa: F401

LIVE = {"trigger_result": {"body": {"qualifier": "live"}}, "alias_result": {"body": {"versionId": "1"}}}
LATEST = {"trigger_result": {"body": {"qualifier": "LATEST"}}}
NO_ALIAS = {"trigger_result": {"body": {"qualifier": "live"}}, "alias_result": None}
ROWS = {
    "ok": ("succeeded", LATEST),
    "failed-live": ("failed", LIVE),
    "cancelled-live": ("cancelled", LIVE),
    "failed-latest": ("failed", LATEST),
    "failed-first": ("failed", NO_ALIAS),
    "running-live": ("running", LIVE),
}
WATCHED = {"ok", "failed-live", "cancelled-live"}


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return Settings(_env_file=None, data_dir=tmp_path)
    url = request.getfixturevalue("postgres_url")
    return Settings(_env_file=None, data_dir=tmp_path, database_url=url)


def test_the_checks_watch_what_an_endpoint_serves(settings: Settings):
    upgrade(settings.effective_database_url)
    vault = Vault.from_settings(settings)
    with session_scope(settings) as session:
        for name, (status, result) in ROWS.items():
            req = DeployRequest(name=name, image="registry.cn-hangzhou.aliyuncs.com/a/b:1", command=["srv"])
            row = lifecycle.create_deployment(
                session, vault, owner_id="o", req=req, region="cn-hangzhou", deadline_s=60
            )
            lifecycle.set_fields(session, row.id, status=status, result=result, urls={"mcp": "http://x/mcp"})
    with session_scope(settings) as session:
        names = dict(session.execute(select(DeploymentRow.id, DeploymentRow.name)).all())
        watched = {names[c.id] for c in health.candidates(session)}
        rows = session.scalars(select(DeploymentRow).where(health.serving_clause())).all()
        assert {r.name for r in rows} == watched == WATCHED
        # the SQL and the Python rule agree
        for row in session.scalars(select(DeploymentRow)):
            assert releases.endpoint_serves(row.status, row.result) == (row.name in WATCHED), row.name
