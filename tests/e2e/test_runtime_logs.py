"""`mcp-fc logs NAME` shows what the MCP server itself wrote to stderr: a real stdio server behind the real
mcp-proxy in the emulator, a real worker, the API (which reads SLS GetLogs at the emulator) and the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployer.cli.main import app as cli_app
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e

IMAGE = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/noisy:1"
SERVER = [sys.executable, str(Path(__file__).with_name("noisy_server.py")), "marker-7f3a"]
TOKEN = "tok-very-secret-4242"


@pytest.fixture
def stack(stack, monkeypatch):
    """The shared e2e stack; its API runs in this process and reads SLS (the emulator) with the
    credential chain's env pair."""
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", stack.env["ALIBABA_CLOUD_ACCESS_KEY_ID"])
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", stack.env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"])
    return stack


def cli(stack, *args: str):
    return CliRunner().invoke(cli_app, ["--api-url", stack.api_url, "--api-key", stack.api_key, *args])


def test_logs_show_the_servers_own_stderr_with_secrets_scrubbed(stack):
    deployed = cli(
        stack, "deploy", "noisy", "--image", IMAGE, "--secret-env", f"API_TOKEN={TOKEN}", "--", *SERVER
    )
    assert deployed.exit_code == 0, deployed.output

    # the deploy's probe started the instance, so the server's start-up line is already in the output
    def logs():
        result = cli(stack, "logs", "noisy")
        assert result.exit_code == 0, result.output
        return result.stdout if "starting marker-7f3a" in result.stdout else None

    out = wait_until(logs, timeout=30, interval=0.2, what="the server's stderr line in `mcp-fc logs`")
    line = next(x for x in out.splitlines() if "starting marker-7f3a" in x)
    stamp, instance, stream, message = line.split(" ", 3)
    assert stamp.endswith("Z") and instance.startswith("c-") and stream == "stderr"
    assert TOKEN not in out and message == "starting marker-7f3a with token ***"

    as_json = cli(stack, "logs", "noisy", "--json", "--tail", "1000")
    records = [json.loads(x) for x in as_json.stdout.splitlines()]
    assert any(r["message"].startswith("starting marker-7f3a") for r in records)
    assert all(TOKEN not in r["message"] for r in records)

    # progress stays under `events`, not in the server's output
    events = cli(stack, "events", "noisy")
    assert "starting marker-7f3a" not in events.output

    with stack.http() as http:
        page = http.get("/v1/deployments/noisy/logs", params={"tail": 5}).json()
    assert page["source"] == {"project": "fc-emulator", "logstore": "function-logs", "emulator": True}
    assert len(page["lines"]) <= 5 and page["cursor"]
    with stack.http() as http:
        newer = http.get("/v1/deployments/noisy/logs", params={"after": page["cursor"]}).json()
    assert all(x["time_ns"] > page["lines"][-1]["time_ns"] for x in newer["lines"])

    # a `since` too far back for any clock is the caller's mistake, named as such (it was a 500 OverflowError)
    with stack.http() as http:
        for since in ("9" * 5000 + "s", "99999999999d"):
            r = http.get("/v1/deployments/noisy/logs", params={"since": since})
            assert r.status_code == 422 and "since" in r.text, (since[:12], r.status_code, r.text[:200])
    refused = cli(stack, "logs", "noisy", "--since", "99999999999d")
    assert refused.exit_code == 2 and "since" in refused.output, refused.output


def test_another_owner_cannot_read_the_logs(stack):
    with stack.http(stack.other_key) as http:
        assert http.get("/v1/deployments/noisy/logs").status_code == 404
