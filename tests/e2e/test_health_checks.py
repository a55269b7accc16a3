"""Scheduled MCP health checks end to end (issue 15 #2): a real beat and worker, the real bridge and
mcp-server-time behind the emulated FC, the deployment's own URL and token.

The stdio server hangs after the deploy (SIGSTOP): the bridge keeps running but the MCP layer no longer
answers, so the next scheduled check marks the deployment `unhealthy` with an event; once the instance is
replaced, a check finds it `healthy` again. `GET /v1/deployments?health=`, /metrics, `mcp-fc status` and
`mcp-fc list` show it meanwhile. (A killed server no longer shows here: the bridge exits with it and the
next request, the check's own, gets a fresh instance: tests/e2e/test_both_eras.py.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from deployer import store
from deployer.cli import app as cli_app
from deployer.db import session_scope
from tests.conftest import TIMEOUT_SCALE, wait_until
from tests.e2e.test_emulator_runtime import family
from tests.e2e.test_live_endpoints import IMAGE
from tests.integration.conftest import REPO, stack_factory  # noqa: F401

pytestmark = pytest.mark.e2e

INTERVAL_S = 2.0
PROBE_TIMEOUT_S = 5.0
MCP_FC = str(Path(sys.executable).parent / "mcp-fc")


@pytest.fixture(scope="module")
def stack(stack_factory):  # noqa: F811
    stack = stack_factory(
        workers=1,
        pool="threads",
        concurrency=4,
        extra_env={
            "MCPFC_HEALTH_INTERVAL_S": str(INTERVAL_S),
            "MCPFC_HEALTH_TIMEOUT_S": str(PROBE_TIMEOUT_S),
            "MCPFC_BEAT_MAX_LOOP_S": "1",
        },
    )
    log = open(stack.settings.data_dir / "beat.log", "ab")  # noqa: SIM115 - closed with the process
    beat = subprocess.Popen([MCP_FC, "beat"], env=stack.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    yield stack
    beat.send_signal(signal.SIGTERM)
    try:
        beat.wait(30)
    except subprocess.TimeoutExpired:
        beat.kill()


def cli(stack, *args: str):
    return CliRunner().invoke(cli_app, ["--api-url", stack.api_url, "--api-key", stack.api_key, *args])


def events(stack, dep_id: str) -> list[tuple[float, str]]:
    with session_scope(stack.settings) as session:
        return [(e.at.timestamp(), e.message) for e in store.events_after(session, dep_id)]


def health_of(stack, dep_id: str) -> dict[str, Any]:
    with stack.http() as http:
        return http.get(f"/v1/deployments/{dep_id}").json()["health"]


def server_pids(stack, name: str) -> set[int]:
    """The mcp-server-time processes behind the function's instances (the bridge's stdio child)."""
    listed = httpx.get(f"{stack.fc.url}/_emulator/instances").json()["instances"]
    found = set()
    for inst in listed:
        if not inst["functionName"].startswith(name):
            continue
        for pid in family(inst["pid"]):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(a.endswith(b"mcp-server-time") for a in argv) and not any(
                b"serverwatch" in a for a in argv
            ):
                found.add(pid)
    return found


def test_a_hung_stdio_server_turns_unhealthy_within_an_interval_and_healthy_after_replacement(stack):
    name = "health-time"
    with stack.http() as http:
        dep_id = http.post(
            "/v1/deployments", json={"name": name, "image": IMAGE, "command": ["mcp-server-time"]}
        ).json()["id"]
    dep = stack.wait_for(dep_id, {"succeeded", "failed"})
    assert dep["status"] == "succeeded", (dep.get("error"), stack.worker_logs())

    first = wait_until(
        lambda: (h := health_of(stack, dep_id))["status"] == "healthy" and h, 60, what="first check healthy"
    )
    assert first["latency_ms"] is not None and first["consecutive_failures"] == 0

    pids = server_pids(stack, name)
    assert pids, httpx.get(f"{stack.fc.url}/_emulator/instances").json()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    killed = time.time()

    down = wait_until(
        lambda: next((e for e in events(stack, dep_id) if "health: unhealthy" in e[1]), None),
        INTERVAL_S + PROBE_TIMEOUT_S + 30,
        interval=0.1,
        what="an event saying unhealthy",
    )
    # one interval for the check to come round, plus the probe's own time limit (the hung server runs it out)
    assert down[0] - killed <= (INTERVAL_S + PROBE_TIMEOUT_S + 2) * TIMEOUT_SCALE, (down, killed)
    health = health_of(stack, dep_id)
    assert health["status"] == "unhealthy" and health["consecutive_failures"] >= 1 and health["last_error"]

    with stack.http() as http:
        listed = http.get("/v1/deployments", params={"health": "unhealthy"}).json()["items"]
        assert [d["id"] for d in listed] == [dep_id]
        assert http.get("/v1/deployments", params={"health": "healthy"}).json()["items"] == []
        metrics = http.get("/metrics").text
    assert 'mcpfc_deployments_health{health="unhealthy"} 1.0' in metrics, metrics
    assert "mcpfc_health_probe_latency_seconds_count 1.0" in metrics
    status = cli(stack, "status", name)
    assert "unhealthy" in status.output and "failed probe" in status.output, status.output
    listing = cli(stack, "list", "--health", "unhealthy")
    assert name in listing.output and "unhealthy" in listing.output, listing.output

    # FC replaces an instance that fails its health check (the bridge's /status fails while the server
    # hangs); the emulator does too, after failureThreshold x periodSeconds (60 s with the spec's values),
    # so its control API replaces the instance now (the next request cold-starts a new one).
    assert httpx.delete(f"{stack.fc.url}/_emulator/instances").status_code == 200
    back = wait_until(
        lambda: next((e for e in events(stack, dep_id) if "health: healthy again" in e[1]), None),
        120,
        interval=0.2,
        what="an event saying healthy again (the emulator replaced the instance)",
    )
    assert back[0] > down[0]
    assert server_pids(stack, name) - pids, "a new stdio server runs"
    assert health_of(stack, dep_id)["status"] == "healthy"
    assert "healthy" in cli(stack, "list").output
