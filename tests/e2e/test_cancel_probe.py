"""`cancel` during the probe ends the deploy `cancelled` at once (not after the probe's timeout) and the CLI
says so; `token rotate` on the cancelled deployment is refused instead of deploying it again."""

from __future__ import annotations

import sys
import time

import pytest
from typer.testing import CliRunner

from deployer.cli.main import app as cli_app
from tests.conftest import TIMEOUT_SCALE, wait_until

pytestmark = pytest.mark.e2e

IMAGE = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/hangs:1"
# a server that never answers initialize: the bridge never listens, the probe waits its whole timeout
HANGS = [sys.executable, "-c", "import time; time.sleep(600)"]


def cli(stack, *args: str):
    return CliRunner().invoke(cli_app, ["--api-url", stack.api_url, "--api-key", stack.api_key, *args])


def test_cancel_during_the_probe_ends_cancelled_and_rotate_is_refused(stack):
    queued = cli(stack, "deploy", "hangs", "--image", IMAGE, "--no-wait", "--", *HANGS)
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
    assert refused.status_code == 409 and "not live" in refused.json()["detail"], refused.text

    rotated = cli(stack, "token", "rotate", "hangs")
    assert rotated.exit_code in (1, 2), rotated.output
    assert "not live" in rotated.output
    with stack.http() as http:
        assert http.get("/v1/deployments/hangs").json()["status"] == "cancelled"  # nothing was deployed
