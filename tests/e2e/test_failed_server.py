"""A server that fails at start: the deploy's error names the server's own exit code and ends with its own
last stderr lines, through the real bridge, the emulator, a real worker, the API and the CLI."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from deployer.cli.main import app as cli_app

pytestmark = pytest.mark.e2e

IMAGE = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/broken:1"
LINE = "fatal: config missing"
SERVER = [sys.executable, "-c", f"import sys; print({LINE!r}, file=sys.stderr); sys.exit(3)"]


def cli(stack, *args: str):
    return CliRunner().invoke(cli_app, ["--api-url", stack.api_url, "--api-key", stack.api_key, *args])


def test_the_servers_exit_code_and_last_line_reach_deploy_status_json_and_events(stack):
    deployed = cli(stack, "deploy", "broken", "--image", IMAGE, "--", *SERVER)
    assert deployed.exit_code == 1, deployed.output
    assert LINE in deployed.output and "MCP server" in deployed.output
    assert "exited with code 3" in deployed.output

    status = cli(stack, "status", "broken")
    assert status.exit_code == 1, "status of a failed deployment exits 1"
    assert "failed" in status.output and "exited with code 3" in status.output, status.output
    # the error ENDS with the server's own line (not a traceback cut mid-way)
    error_lines = status.output[status.output.index("error") :].splitlines()
    assert LINE in [line.strip() for line in error_lines], status.output
    # short, cause first, the server's own words once (issue 26 #9: ~2,300 characters, its line four times)
    shown = status.output[status.output.index("error") : status.output.index("attempts")].rstrip()
    assert len(shown) < 800, (len(shown), shown)
    assert "exited with code 3" in shown.splitlines()[0], shown
    assert shown.count(LINE) == 1, shown

    raw = cli(stack, "status", "broken", "--json")
    error = json.loads(raw.stdout)["error"]
    assert error["code"] == "ProbeFailed"
    assert error["message"].rstrip().endswith(LINE), error["message"]
    assert "its MCP server exited with code 3" in error["message"]

    events = cli(stack, "events", "broken")
    assert events.exit_code == 0, events.output
    last = events.output.strip().splitlines()
    assert any("exited with code 3" in line for line in last) and last[-1].endswith(LINE), events.output


def test_an_image_fc_may_not_pull_is_warned_about_in_deploy_and_events(stack):
    deployed = cli(stack, "deploy", "untagged", "--image", "ghcr.io/mcp-fc/broken", "--", *SERVER)
    assert deployed.exit_code == 1, deployed.output
    assert "warning: ghcr.io/mcp-fc/broken is not in Alibaba Cloud Container Registry" in deployed.output
    events = cli(stack, "events", "untagged")
    assert "has no tag" in events.output and "not in Alibaba Cloud Container Registry" in events.output
