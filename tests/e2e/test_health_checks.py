"""Scheduled MCP health checks end to end (issue 15 #2): a real beat and worker, the real mcp-fc-bridge and
mcp-server-time behind the emulated FC, the deployment's own URL and token.

A stdio server that stops answering (SIGSTOP: its process and the bridge live on) is seen by the next
scheduled check: `unhealthy`, with an event, within one interval plus the probe's time limit; the
emulator's own health check of the bridge (GET /status) then replaces the instance, and a check finds it
`healthy` again. `GET /v1/deployments?health=`, /metrics, `mcp-fc status` and `mcp-fc list` show it
meanwhile. A killed server (SIGKILL) takes the bridge with it, so FC (the emulator) starts a new instance
for the next request: the check after the kill finds the new server healthy.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from deployer.cli.main import app as cli_app
from deployer.store import reads as store
from deployer.store.db import session_scope
from tests.conftest import TIMEOUT_SCALE, wait_until
from tests.e2e.conftest import FC_HEALTH_FAILURE_THRESHOLD, HEALTH_INTERVAL_S, HEALTH_PROBE_TIMEOUT_S
from tests.e2e.test_emulator_runtime import family
from tests.e2e.test_live_endpoints import IMAGE

pytestmark = pytest.mark.e2e

INTERVAL_S = HEALTH_INTERVAL_S
PROBE_TIMEOUT_S = HEALTH_PROBE_TIMEOUT_S


@pytest.fixture
def stack(beat_stack):
    """This module's stack with a running beat (tests/e2e/conftest.py); test_tool_drift uses it too."""
    return beat_stack


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


def deploy(stack, name: str) -> str:
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
    return dep_id


def test_a_stdio_server_that_stops_answering_turns_unhealthy_then_healthy_after_the_emulator_replaces_it(
    stack,
):
    """SIGSTOP: the server is dead to MCP but its process (and the bridge) live on, so only a check of
    the MCP layer or the platform's own health check of the bridge can notice."""
    name = "health-hung"
    dep_id = deploy(stack, name)
    pids = server_pids(stack, name)
    assert pids, httpx.get(f"{stack.fc.url}/_emulator/instances").json()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    stopped = time.time()

    down = wait_until(
        lambda: next((e for e in events(stack, dep_id) if "health: unhealthy" in e[1]), None),
        INTERVAL_S + PROBE_TIMEOUT_S + 30,
        interval=0.1,
        what="an event saying unhealthy",
    )
    # one interval for the check to come round, plus the probe's own time limit (a hung server holds it)
    assert down[0] - stopped <= (INTERVAL_S + PROBE_TIMEOUT_S + 2) * TIMEOUT_SCALE, (down, stopped)
    health = health_of(stack, dep_id)
    assert health["status"] == "unhealthy" and health["consecutive_failures"] >= 1 and health["last_error"]

    with stack.http() as http:
        listed = http.get("/v1/deployments", params={"health": "unhealthy"}).json()["items"]
        # this module's other deployments may be listed too, if unhealthy: every listed one must be
        assert dep_id in [d["id"] for d in listed] and {d["health"]["status"] for d in listed} == {
            "unhealthy"
        }
        assert dep_id not in [
            d["id"] for d in http.get("/v1/deployments", params={"health": "healthy"}).json()["items"]
        ]
        metrics = http.get("/metrics").text
    assert f'mcpfc_deployments_health{{health="unhealthy"}} {len(listed)}.0' in metrics, metrics
    assert "mcpfc_health_probe_latency_seconds_count" in metrics
    status = cli(stack, "status", name)
    assert "unhealthy" in status.output and "failed probe" in status.output, status.output
    listing = cli(stack, "list", "--health", "unhealthy")
    assert name in listing.output and "unhealthy" in listing.output, listing.output

    # The emulator's own health check of the bridge (GET /status, failing while the server does not answer
    # its ping) replaces the instance after failureThreshold x periodSeconds (spec.health_check: 2 s, and
    # the threshold the beat stack sets, not the product's 30); the next request starts a new one, and the
    # next check finds the deployment healthy again.
    back = wait_until(
        lambda: next((e for e in events(stack, dep_id) if "health: healthy again" in e[1]), None),
        FC_HEALTH_FAILURE_THRESHOLD * 5 + 60,
        interval=0.2,
        what="an event saying healthy again (the emulator replaced the instance)",
    )
    assert back[0] > down[0]
    assert server_pids(stack, name) - pids, "a new stdio server runs"
    assert health_of(stack, dep_id)["status"] == "healthy"
    assert "healthy" in cli(stack, "list").output


def test_a_killed_stdio_server_is_replaced_at_the_next_request_and_the_check_sees_the_new_one(stack):
    """SIGKILL: the bridge exits with its server (mcp-fc-bridge), so FC (the emulator) starts a new
    instance for the next request, the health check's own included: the deployment is healthy again at
    once, served by a new server process."""
    name = "health-killed"
    dep_id = deploy(stack, name)
    pids = server_pids(stack, name)
    checked = health_of(stack, dep_id)["checked_at"]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: (h := health_of(stack, dep_id))["checked_at"] != checked and h["status"] == "healthy",
        INTERVAL_S + PROBE_TIMEOUT_S + 30,
        interval=0.1,
        what="a check after the kill finding it healthy",
    )
    new = server_pids(stack, name)
    assert new and not new & pids, (new, pids)
