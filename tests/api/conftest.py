"""Fixtures for the HTTP API: an app on a temporary SQLite store and an embedded filesystem broker."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deployer.api import create_app
from deployer.settings import Settings
from deployer.store import keys, lifecycle
from deployer.store import reads as store
from deployer.store.db import session_scope
from schemas import Status

CANARY = "canary-s3cr3t-7f1d9a"
IMAGE = "registry.cn-hangzhou.aliyuncs.com/ns/mcp-time:1.0"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("MCPFC_"):
            monkeypatch.delenv(name)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp_path, "post_rate_limit_per_min": 10_000, **overrides}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def new_key(settings: Settings, *, owner_id: str | None = None) -> tuple[str, str]:
    """(key id, plaintext)."""
    with session_scope(settings) as session:
        row, plaintext = keys.create_api_key(session, name="test", owner_id=owner_id)
        return row.id, plaintext


def bearer(plaintext: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plaintext}"}


@pytest.fixture
def alice(client: TestClient, settings: Settings) -> dict[str, str]:
    return bearer(new_key(settings)[1])


@pytest.fixture
def bob(client: TestClient, settings: Settings) -> dict[str, str]:
    return bearer(new_key(settings)[1])


def deploy_body(name: str = "mcp-time", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "image": IMAGE,
        "command": ["mcp-server-time", "--local-timezone", "Asia/Shanghai"],
        "env": {"LOG_LEVEL": "info"},
        "secret_env": {"API_TOKEN": CANARY},
    }
    body.update(overrides)
    return body


@pytest.fixture
def deploy(client: TestClient, alice: dict[str, str]) -> Callable[..., dict[str, Any]]:
    """POST a deploy as alice (or `headers`) and return the 202 body."""

    def _deploy(
        name: str = "mcp-time", headers: dict[str, str] | None = None, **overrides: Any
    ) -> dict[str, Any]:
        r = client.post("/v1/deployments", json=deploy_body(name, **overrides), headers=headers or alice)
        assert r.status_code == 202, r.text
        return r.json()

    return _deploy


def move(settings: Settings, dep_id: str, *statuses: Status, **fields: Any) -> None:
    """Walk a deployment along legal edges, as a worker would."""
    with session_scope(settings) as session:
        for status in statuses:
            assert lifecycle.transition(session, dep_id, status, message=f"test: {status}", **fields), status


def set_fields(settings: Settings, dep_id: str, **fields: Any) -> None:
    with session_scope(settings) as session:
        assert lifecycle.set_fields(session, dep_id, **fields)


def row_of(settings: Settings, dep_id: str) -> Any:
    with session_scope(settings) as session:
        row = store.get(session, dep_id)
        assert row is not None
        session.expunge(row)
        return row


def count_rows(settings: Settings) -> int:
    from sqlalchemy import func, select

    from deployer.store.tables import DeploymentRow

    with session_scope(settings) as session:
        return session.scalar(select(func.count()).select_from(DeploymentRow)) or 0


def broker_files(settings: Settings) -> list[Path]:
    folder = settings.broker_dir / "queue"
    return sorted(folder.glob("*.msg")) if folder.is_dir() else []


def broker_messages(settings: Settings) -> list[dict[str, Any]]:
    """Each queued message: file name, raw text, headers, and the decoded [args, kwargs, embed] body."""
    out = []
    for path in broker_files(settings):
        raw = path.read_text()
        envelope = json.loads(raw)
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body).decode()
        out.append({"file": path.name, "raw": raw, "headers": envelope["headers"], "body": json.loads(body)})
    return out


def assert_problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers["content-type"]
    body = r.json()
    assert body["status"] == status and body["title"] and body["type"]
    return body
