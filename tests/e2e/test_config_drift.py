"""Config drift end to end (issue 15 #4): a memory change made directly through the FC SDK against the
emulator is reported as drift by the scheduled check (run by a real worker) and `mcp-fc reconcile`
converges it through the deploy task."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from alibabacloud_fc20230330 import models as fc
from alibabacloud_fc20230330.client import Client
from alibabacloud_tea_openapi import models as open_api
from typer.testing import CliRunner

from deployer.celery_app import DRIFT_CHECK_TASK, DRIFT_SWEEP_TASK, make_celery
from deployer.cli.main import app as cli_app
from tasks.drift import OPS_QUEUE
from tests.conftest import TEST_AK, TEST_SK, wait_until

pytestmark = pytest.mark.e2e

IMAGE = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/named:1"
SERVER = [sys.executable, str(Path(__file__).with_name("named_tool_server.py")), "drifty"]


def cli(stack, *args: str):
    return CliRunner().invoke(cli_app, ["--api-url", stack.api_url, "--api-key", stack.api_key, *args])


def sdk(stack) -> Client:
    return Client(
        open_api.Config(
            access_key_id=TEST_AK, access_key_secret=TEST_SK, endpoint=stack.fc.endpoint, protocol="http"
        )
    )


def run_check(stack, dep_id: str, *, sweep: bool = False) -> None:
    """What the beat schedule does every drift_check_interval_s: queue the check for a worker."""
    app = make_celery(stack.settings)
    if sweep:
        app.send_task(DRIFT_SWEEP_TASK, queue=OPS_QUEUE)
    else:
        app.send_task(DRIFT_CHECK_TASK, args=[dep_id], queue=OPS_QUEUE)


def deployment(stack, name: str) -> dict:
    with stack.http() as http:
        return http.get(f"/v1/deployments/{name}").json()


def events(stack, dep_id: str) -> list[str]:
    with stack.http() as http, http.stream("GET", f"/v1/deployments/{dep_id}/events") as r:
        lines = [line for line in r.iter_lines() if line.startswith("data:")]
    return [json.loads(line[5:]).get("message") or "" for line in lines]


def test_a_memory_change_through_the_sdk_is_drift_and_reconcile_converges_it(stack):
    deployed = cli(stack, "deploy", "drifty", "--image", IMAGE, "--memory", "512", "--", *SERVER)
    assert deployed.exit_code == 0, (deployed.output, stack.worker_logs())
    dep = deployment(stack, "drifty")
    assert dep["drift"] is None

    # in sync first: the check records that it looked and found nothing
    run_check(stack, dep["id"], sweep=True)
    checked = wait_until(lambda: deployment(stack, "drifty")["drift"], 60, 0.2, what="a first drift check")
    assert checked["drifted"] is False and checked["fields"] == []

    # someone changes the function behind mcp-fc's back
    sdk(stack).update_function(
        "drifty", fc.UpdateFunctionRequest(body=fc.UpdateFunctionInput(memory_size=1024))
    )
    run_check(stack, dep["id"])
    drift = wait_until(
        lambda: (d := deployment(stack, "drifty")["drift"]) and d["drifted"] and d,
        60,
        0.2,
        what="the memory change reported as drift",
    )
    assert drift["fields"] == [{"field": "memorySize", "fc": 1024, "spec": 512}]
    assert any(
        "config drift: memorySize: FC has 1024, the spec wants 512" in m for m in events(stack, dep["id"])
    )

    status = cli(stack, "status", "drifty")
    assert "memorySize: FC has 1024, the spec wants 512" in status.stdout, status.output
    assert "mcp-fc reconcile drifty" in status.stdout

    reconciled = cli(stack, "reconcile", "drifty")
    assert reconciled.exit_code == 0, (reconciled.output, stack.worker_logs())
    assert "converging memorySize" in reconciled.stderr
    after = deployment(stack, "drifty")
    assert after["status"] == "succeeded" and after["drift"] is None
    assert sdk(stack).get_function("drifty", fc.GetFunctionRequest()).body.memory_size == 512
    messages = events(stack, dep["id"])
    assert any("reconciled" in m for m in messages), messages

    # and the next check finds FC in sync again
    run_check(stack, dep["id"])
    again = wait_until(
        lambda: deployment(stack, "drifty")["drift"], 60, 0.2, what="the check after reconcile"
    )
    assert again["drifted"] is False


def test_a_trigger_edit_is_drift_too(stack):
    deployed = cli(stack, "deploy", "drifty-trigger", "--image", IMAGE, "--", *SERVER)
    assert deployed.exit_code == 0, (deployed.output, stack.worker_logs())
    dep = deployment(stack, "drifty-trigger")
    client = sdk(stack)
    trigger = client.get_trigger("drifty-trigger", "http").body
    config = json.loads(trigger.trigger_config)
    config["methods"] = ["GET"]
    client.update_trigger(
        "drifty-trigger",
        "http",
        fc.UpdateTriggerRequest(body=fc.UpdateTriggerInput(trigger_config=json.dumps(config))),
    )
    run_check(stack, dep["id"])
    drift = wait_until(
        lambda: (d := deployment(stack, "drifty-trigger")["drift"]) and d["drifted"] and d,
        60,
        0.2,
        what="drift",
    )
    [field] = drift["fields"]
    assert field["field"] == "trigger.triggerConfig.methods" and field["fc"] == ["GET"]

    with stack.http() as http:
        r = http.post("/v1/deployments/drifty-trigger/reconcile")
        assert r.status_code == 202, r.text
    done = stack.wait_for(dep["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded" and done["drift"] is None
    assert json.loads(client.get_trigger("drifty-trigger", "http").body.trigger_config)["methods"] != ["GET"]
