"""`cancel` during the probe ends the deploy `cancelled` at once (not after the probe's timeout) and the CLI
says so; `token rotate` on the cancelled deployment is refused instead of deploying it again. Neither a
cancel during `verify` nor a `delete` of a never-ready deployment leaves its server running (issue 26 #11)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployer.cli.main import app as cli_app
from tests.conftest import TIMEOUT_SCALE, alive, wait_until

pytestmark = pytest.mark.e2e

IMAGE = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/hangs:1"
# a server that never answers initialize: the bridge never listens, the probe waits its whole timeout
HANGS = [sys.executable, "-c", "import time; time.sleep(600)"]


def servers_of(name: str) -> list[int]:
    """The pids of the processes that run `name`'s server (its argv carries the name as a marker)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"marker={name}".encode() in argv and alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def hangs(name: str) -> list[str]:
    return [*HANGS, f"marker={name}"]


def cli(stack, *args: str):
    return CliRunner().invoke(cli_app, ["--api-url", stack.api_url, "--api-key", stack.api_key, *args])


def test_cancel_during_the_probe_ends_cancelled_and_rotate_is_refused(stack):
    queued = cli(stack, "deploy", "hangs", "--image", IMAGE, "--no-wait", "--", *hangs("hangs"))
    assert queued.exit_code == 0, queued.output
    with stack.http() as http:
        wait_until(
            lambda: http.get("/v1/deployments/hangs").json()["stage"] in ("probing", "verifying"),
            60,
            what="the probe started",
        )
    started = time.monotonic()
    cancelled = cli(stack, "cancel", "hangs")
    took = time.monotonic() - started
    assert cancelled.exit_code == 0, cancelled.output
    assert "hangs" in cancelled.stdout and "cancelled" in cancelled.stdout, cancelled.output
    assert "running" not in cancelled.stdout
    # well before the probe's own timeout (30 s x the slowness scale) would have ended it
    assert took < 15 * TIMEOUT_SCALE, took
    with stack.http() as http:
        assert http.get("/v1/deployments/hangs").json()["status"] == "cancelled"
        refused = http.post("/v1/deployments/hangs/rotate-token")
    # the version's instance, which only the removed verify trigger reached, stops with it (it ran until its
    # idle timeout, 600 s); a few seconds cover the stop's SIGTERM grace
    wait_until(lambda: not servers_of("hangs"), 15, what="the cancelled deploy's server stopped")
    assert refused.status_code == 409 and "not live" in refused.json()["detail"], refused.text

    rotated = cli(stack, "token", "rotate", "hangs")
    assert rotated.exit_code in (1, 2), rotated.output
    assert "not live" in rotated.output
    with stack.http() as http:
        assert http.get("/v1/deployments/hangs").json()["status"] == "cancelled"  # nothing was deployed


def test_delete_of_a_never_ready_deployment_stops_its_server(stack):
    """A server still starting (never ready) when its function is deleted stops at once, not at its start
    deadline, and `mcp-fc delete` ends `deleted` (issue 26 #11)."""
    queued = cli(stack, "deploy", "never-ready", "--image", IMAGE, "--no-wait", "--", *hangs("never-ready"))
    assert queued.exit_code == 0, queued.output
    wait_until(lambda: servers_of("never-ready"), 60, what="the server started")
    deleted = cli(stack, "delete", "never-ready")
    assert deleted.exit_code == 0, deleted.output
    with stack.http() as http:
        assert http.get("/v1/deployments/never-ready").json()["status"] == "deleted"
    # its start deadline is 60 s x the slowness scale; the stop takes the SIGTERM grace at most
    wait_until(lambda: not servers_of("never-ready"), 15, what="the deleted deployment's server stopped")
    assert stack.fc.dataplane.list_instances() == []
