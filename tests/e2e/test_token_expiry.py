"""Endpoint token expiry (issue 15 #5), with a real worker: a token inside the warning window is flagged on
the deployment, in an event and in `mcp-fc status`; with auto-rotation on, the scheduled check rotates it
through the `token rotate` path: a new token works at the trigger, the old one is refused."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from deployer.celery_app import TOKEN_SWEEP_TASK, make_celery
from deployer.cli.main import app as cli_app
from tasks.drift import OPS_QUEUE
from tests.conftest import wait_until
from tests.integration.conftest import stack_factory  # noqa: F401

pytestmark = pytest.mark.e2e

IMAGE = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/named:1"
SERVER = [sys.executable, str(Path(__file__).with_name("named_tool_server.py")), "tokens"]


@pytest.fixture(scope="module")
def stack(stack_factory):  # noqa: F811
    # new tokens live 20 days, the warning window is 30: every token is "expiring" from the start
    return stack_factory(
        workers=1,
        pool="threads",
        concurrency=4,
        extra_env={"MCPFC_ENDPOINT_TOKEN_TTL_DAYS": "20", "MCPFC_TOKEN_EXPIRY_WARN_DAYS": "30"},
    )


def cli(stack, *args: str):
    return CliRunner().invoke(cli_app, ["--api-url", stack.api_url, "--api-key", stack.api_key, *args])


def deployment(stack, name: str) -> dict:
    with stack.http() as http:
        return http.get(f"/v1/deployments/{name}").json()


def token_of(stack, name: str) -> tuple[str, str]:
    with stack.http() as http:
        server = http.get(f"/v1/deployments/{name}/client-config").json()["mcpServers"][name]
    return server["url"], server["headers"]["Authorization"]


def trigger_answers(url: str, authorization: str) -> int:
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Authorization": authorization, "Accept": "application/json, text/event-stream"}
    return httpx.post(url, json=body, headers=headers, timeout=60).status_code


def sweep(stack) -> None:
    make_celery(stack.settings).send_task(TOKEN_SWEEP_TASK, queue=OPS_QUEUE)


def test_an_expiring_token_is_flagged_then_rotated_when_asked_to(stack):
    deployed = cli(stack, "deploy", "tokens", "--image", IMAGE, "--auth", "jwt", "--", *SERVER)
    assert deployed.exit_code == 0, (deployed.output, stack.worker_logs())
    dep = deployment(stack, "tokens")
    assert dep["token"]["expiring"] is True  # recorded by the deploy itself
    status = cli(stack, "status", "tokens")
    assert "rotate it with `mcp-fc token rotate tokens`" in status.stdout, status.output

    sweep(stack)

    def flagged_event() -> bool:
        with stack.http() as http, http.stream("GET", f"/v1/deployments/{dep['id']}/events") as r:
            return any("the endpoint token expires at" in line for line in r.iter_lines())

    wait_until(flagged_event, 60, 0.3, what="the expiry event")
    url, old = token_of(stack, "tokens")
    assert trigger_answers(url, old) == 200

    # now with auto-rotation and tokens that outlive the window: the next sweep rotates
    stack.stop_workers()
    stack.env.update(MCPFC_ENDPOINT_TOKEN_TTL_DAYS="365", MCPFC_TOKEN_AUTO_ROTATE="true")
    stack.start_worker("rotator", pool="threads", concurrency=4)
    sweep(stack)
    rotated = wait_until(
        lambda: (
            (d := deployment(stack, "tokens"))["status"] == "succeeded"
            and d["token"]["expiring"] is False
            and d
        ),
        120,
        0.3,
        what="the rotated token",
    )
    assert rotated["task_id"] != dep["task_id"]
    new_url, new = token_of(stack, "tokens")
    assert new_url == url and new != old
    assert trigger_answers(url, new) == 200
    assert trigger_answers(url, old) == 401
