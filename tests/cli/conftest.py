"""CLI tests: the HTTP API is mocked with respx, commands run in-process with Typer's CliRunner."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import respx
from typer.testing import CliRunner, Result

import deployer.client
from deployer.cli.main import app

API = "http://mcpfc.test"
API_KEY = "mcpfc_testkey_0123456789abcdef0123"
IMAGE = "registry.cn-hangzhou.aliyuncs.com/ns/mcp-time:1.0"


def deployment(name: str = "mcp-time", **overrides: Any) -> dict[str, Any]:
    """A Deployment as the API serialises it (secret values already masked)."""
    dep_id = overrides.pop("id", "0190aa00bb11cc22dd33")
    spec = {
        "name": name,
        "image": IMAGE,
        "command": ["mcp-server-time"],
        "env": {},
        "secret_env": {},
        "region": "cn-hangzhou",
        **overrides.pop("spec", {}),
    }
    data: dict[str, Any] = {
        "id": dep_id,
        "name": name,
        "region": "cn-hangzhou",
        "status": "pending",
        "stage": "queued",
        "progress": 0,
        "task_id": "0190task",
        "attempts": 0,
        "error": None,
        "spec": spec,
        "result": None,
        "urls": {"internet": None, "intranet": None, "sse": None, "mcp": None},
        "tools": [],
        "created_at": "2025-01-02T03:04:05+00:00",
        "updated_at": "2025-01-02T03:04:05+00:00",
    }
    data.update(overrides)
    return data


def succeeded(name: str = "mcp-time", **overrides: Any) -> dict[str, Any]:
    base = f"https://{name}-abc.cn-hangzhou.fcapp.run"
    return deployment(
        name,
        status="succeeded",
        stage="done",
        progress=100,
        urls={"internet": base, "intranet": None, "sse": f"{base}/sse", "mcp": f"{base}/mcp"},
        tools=["get_current_time", "convert_time"],
        updated_at="2025-01-02T03:05:00+00:00",
        **overrides,
    )


def progression(name: str = "mcp-time", final: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """pending → running (two stages) → final (succeeded by default), with distinct update times."""
    return [
        deployment(
            name,
            status="running",
            stage="create_function",
            progress=20,
            updated_at="2025-01-02T03:04:10+00:00",
        ),
        deployment(
            name, status="running", stage="probe", progress=80, updated_at="2025-01-02T03:04:20+00:00"
        ),
        final if final is not None else succeeded(name),
    ]


@pytest.fixture(autouse=True)
def client_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Client settings point at the mocked API; no .env from the working tree leaks in."""
    monkeypatch.chdir(tmp_path)
    for var in ("MCPFC_API_URL", "MCPFC_API_KEY", "MCPFC_DATABASE_URL", "MCPFC_DEBUG", "MCPFC_ENVIRONMENT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MCPFC_API_URL", API)
    monkeypatch.setenv("MCPFC_API_KEY", API_KEY)
    monkeypatch.setenv("MCPFC_DATA_DIR", str(tmp_path / "data"))
    # A bug of ours raises (and fails the test) instead of becoming a polite "error: unexpected ..." line.
    monkeypatch.setenv("MCPFC_DEBUG", "1")


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retry back-off and poll pacing are recorded, not slept."""
    recorded: list[float] = []
    monkeypatch.setattr(deployer.client, "_sleep", recorded.append)
    return recorded


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def cli() -> Callable[..., Result]:
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input, catch_exceptions=False)

    return invoke


def responses(*bodies: dict[str, Any], status: int = 200) -> list[Any]:
    import httpx

    return [httpx.Response(status, json=copy.deepcopy(b)) for b in bodies]
