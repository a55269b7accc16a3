"""Releases that stay where the user put them (issue 26 #1-#4, #14), end to end: the real worker, the real
bridge and named-tool servers behind the emulator, the official MCP client through the deployment's URL.

- after a rollback, a token rotation, a reconcile without drift and a deploy of the same spec keep `live`
  on the rolled-back version and publish nothing; `status` shows what `live` serves beside the spec;
  `events` follows a redeploy in progress from its start to its end (and `--run` an earlier run);
- an unchanged `--from-mcp-json` rerun releases nothing and says so;
- a failed redeploy leaves the deployment `failed` while `live` serves the old version: the deployment says
  what `live` serves, its client config comes with a warning, the health and drift checks keep watching it,
  `rollback --to` the failed version is refused at once, and retention (keep 2 on this stack) deletes the
  failed version, not the last good one;
- a cancel during a rollback's probe stops it, and `live` stays where it was.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from deployer.celery_app import DRIFT_SWEEP_TASK, HEALTH_BATCH_TASK, HEALTH_QUEUE, make_celery
from deployer.cli.main import app as cli_app
from tests.conftest import wait_until
from tests.e2e.conftest import RELEASES_KEEP
from tests.mcp_clients import use

pytestmark = pytest.mark.e2e

IMAGE = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/named:1"
NAMED = str(Path(__file__).with_name("named_tool_server.py"))
# a server that exits at once: its version fails verification
CRASH = ["python", "-c", "import sys; sys.exit(3)", "--port", "8080"]


def server(tool: str) -> list[str]:
    return [sys.executable, NAMED, tool]


def cli(stack, *args: str):
    return CliRunner().invoke(cli_app, ["--api-url", stack.api_url, "--api-key", stack.api_key, *args])


def get(stack, path: str) -> dict:
    with stack.http() as http:
        r = http.get(path)
        assert r.status_code == 200, r.text
        return r.json()


def endpoint(stack, name: str) -> tuple[str, dict[str, str]]:
    entry = get(stack, f"/v1/deployments/{name}/client-config")["mcpServers"][name]
    return entry["url"], entry["headers"]


def tools_at(url: str, headers: dict[str, str]) -> list[str]:
    return asyncio.run(use(url, "streamable-http", headers, tool=None)).tools


def versions(stack, name: str) -> tuple[str | None, dict[str, dict]]:
    found = get(stack, f"/v1/deployments/{name}/versions")
    return found["live"], {v["version"]: v for v in found["versions"]}


def test_rotate_reconcile_and_an_unchanged_deploy_keep_a_rolled_back_live(stack):
    name = "keep-live"
    deployed = cli(stack, "deploy", name, "--image", IMAGE, "--", *server("keep_one"))
    assert deployed.exit_code == 0, (deployed.output, stack.worker_logs())
    first_run = get(stack, f"/v1/deployments/{name}")["task_id"]

    # #3: `events` during a redeploy follows that run from its start to its end, not the first deploy's
    queued = cli(stack, "redeploy", name, "--no-wait", "--", *server("keep_two"))
    assert queued.exit_code == 0, queued.output
    followed = cli(stack, "events", name)
    assert followed.exit_code == 0, followed.output
    lines = followed.stdout.splitlines()
    assert "queued for redeploy" in lines[0], lines
    assert "queued for deploy" not in followed.stdout, lines
    assert lines[-1].startswith("succeeded") and lines[-1].endswith("deployed"), lines
    earlier = cli(stack, "events", name, "--run", first_run)
    assert "queued for deploy" in earlier.stdout and "redeploy" not in earlier.stdout, earlier.output

    url, headers = endpoint(stack, name)
    assert tools_at(url, headers) == ["keep_two"]
    rolled = cli(stack, "rollback", name, "--to", "1")
    assert rolled.exit_code == 0, rolled.output

    # #4: the deployment says what `live` serves, and `status` shows both, labelled
    dep = get(stack, f"/v1/deployments/{name}")
    assert dep["live"]["version"] == "1" and dep["live"]["command"][-1] == "keep_one", dep["live"]
    assert dep["live"]["differs_from_spec"] == ["command"] and dep["spec"]["command"][-1] == "keep_two"
    status = cli(stack, "status", name)
    assert status.exit_code == 0, status.output
    assert "version 1 (release 1) serves another spec" in status.stdout, status.stdout
    assert "keep_one" in status.stdout and "keep_two" in status.stdout
    assert "not live (differs in command" in status.stdout, status.stdout

    # #1: a rotation rewrites the trigger's key alone: same version live, no new version
    rotated = cli(stack, "token", "rotate", name)
    assert rotated.exit_code == 0, (rotated.output, stack.worker_logs())
    url, new_headers = endpoint(stack, name)
    assert new_headers != headers
    assert httpx.post(url, headers=headers, json={}).status_code == 401, "the old token no longer works"
    assert tools_at(url, new_headers) == ["keep_one"]
    live, known = versions(stack, name)
    assert live == "1" and set(known) == {"1", "2"}, known

    # #2: a reconcile without drift writes nothing and says so
    reconciled = cli(stack, "reconcile", name)
    assert reconciled.exit_code == 0, (reconciled.output, stack.worker_logs())
    assert "nothing to reconcile" in reconciled.stderr and "no new release" in reconciled.stderr
    assert get(stack, f"/v1/deployments/{name}")["tools"] == ["keep_one"], "what live serves, kept"
    # ... and so does a deploy of the spec the deployment already has
    again = cli(stack, "deploy", name, "--image", IMAGE, "--", *server("keep_two"))
    assert again.exit_code == 0, again.output
    assert "nothing changed" in again.stderr and "live still serves version 1" in again.stderr
    live, known = versions(stack, name)
    assert live == "1" and set(known) == {"1", "2"}, known
    assert [v["versionId"] for v in stack.fc.backend.list_function_versions(name)["versions"]] == ["2", "1"]
    assert tools_at(url, new_headers) == ["keep_one"]


def test_an_unchanged_mcp_json_rerun_releases_nothing(stack, tmp_path):
    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps({"mcpServers": {"same-json": {"command": sys.executable, "args": [NAMED, "same_json"]}}})
    )
    first = cli(stack, "deploy", "--from-mcp-json", str(config), "--image", IMAGE)
    assert first.exit_code == 0, (first.output, stack.worker_logs())
    again = cli(stack, "deploy", "--from-mcp-json", str(config), "--image", IMAGE)
    assert again.exit_code == 0, again.output
    assert "nothing changed" in again.stderr and "unchanged (no new release) same-json" in again.stderr
    assert json.loads(again.stdout)["mcpServers"]["same-json"]["url"]
    live, known = versions(stack, "same-json")
    assert live == "1" and set(known) == {"1"}, known


def test_a_failed_redeploy_keeps_live_served_watched_and_its_good_versions(stack):
    name = "failed-live"
    deployed = cli(stack, "deploy", name, "--image", IMAGE, "--", *server("good_one"))
    assert deployed.exit_code == 0, (deployed.output, stack.worker_logs())
    dep_id = get(stack, f"/v1/deployments/{name}")["id"]
    url, headers = endpoint(stack, name)
    with stack.http() as http:
        http.post(f"/v1/deployments/{dep_id}/redeploy", json={"command": CRASH}).raise_for_status()
    dep = stack.wait_for(dep_id, {"succeeded", "failed"})
    assert dep["status"] == "failed" and dep["stage"] == "verify", dep

    # the deployment stays failed (and `status` exits 1) but says what `live` serves
    assert dep["live"]["version"] == "1" and dep["live"]["command"][-1] == "good_one", dep["live"]
    status = cli(stack, "status", name)
    assert status.exit_code == 1 and "version 1 (release 1) serves another spec" in status.stdout, (
        status.output
    )
    # its client config is still handed out, with a warning
    with stack.http() as http:
        r = http.get(f"/v1/deployments/{name}/client-config")
    assert r.status_code == 200, r.text
    assert "still serves version 1" in r.headers["Mcpfc-Warning"]
    config = cli(stack, "config", name)
    assert config.exit_code == 0 and "warning:" in config.stderr, config.output
    assert json.loads(config.stdout)["mcpServers"][name]["url"] == url
    assert tools_at(url, headers) == ["good_one"]

    # the health and drift checks keep watching the endpoint that takes the traffic
    celery = make_celery(stack.settings)
    celery.send_task(HEALTH_BATCH_TASK, args=[[dep_id]], queue=HEALTH_QUEUE)
    celery.send_task(DRIFT_SWEEP_TASK, queue=HEALTH_QUEUE)
    checked = wait_until(
        lambda: (
            (d := get(stack, f"/v1/deployments/{dep_id}"))["health"]["status"] != "unknown"
            and d["drift"] is not None
            and d
        ),
        60,
        0.2,
        what="a health check and a drift check of the failed deployment's live version",
    )
    assert checked["health"]["status"] == "healthy" and checked["drift"]["drifted"] is False, checked

    # a rollback to the version that failed verification is refused at once (nothing queued)
    with stack.http() as http:
        refused = http.post(f"/v1/deployments/{dep_id}/rollback", json={"to": "2"})
    assert refused.status_code == 409 and "failed verification" in refused.json()["detail"], refused.text
    assert get(stack, f"/v1/deployments/{dep_id}")["status"] == "failed"

    # retention (keep RELEASES_KEEP good versions) deletes the failed version, not the last good one
    assert RELEASES_KEEP == 2
    fixed = cli(stack, "redeploy", name, "--", *server("good_three"))
    assert fixed.exit_code == 0, (fixed.output, stack.worker_logs())
    live, known = versions(stack, name)
    assert live == "3" and known["2"]["deleted"] and not known["1"]["deleted"], known
    assert [v["versionId"] for v in stack.fc.backend.list_function_versions(name)["versions"]] == ["3", "1"]
    rolled = cli(stack, "rollback", name)
    assert rolled.exit_code == 0, rolled.output
    assert tools_at(url, headers) == ["good_one"]


# Serves the named tool unless the flag file exists: then it hangs before answering (a release that was
# good, and now does not answer when a rollback probes it again).
GATED = (
    "import os, runpy, sys, time\n"
    "flag, script, tool = sys.argv[1:4]\n"
    "while os.path.exists(flag):\n"
    "    time.sleep(0.2)\n"
    "sys.argv = [script, tool]\n"
    "runpy.run_path(script, run_name='__main__')\n"
)


def test_a_cancel_during_a_rollback_s_probe_stops_it(stack, tmp_path):
    """Issue 26 #13: the rollback's probe of its target stops on a cancel (it used to run to its timeout and
    then fail); `live` stays where it was, and the target stays a rollback target."""
    name, flag = "rollback-cancel", tmp_path / "hang"
    gated = [sys.executable, "-c", GATED, str(flag), NAMED, "gated_one"]
    assert cli(stack, "deploy", name, "--image", IMAGE, "--", *gated).exit_code == 0, stack.worker_logs()
    assert cli(stack, "redeploy", name, "--", *server("gated_two")).exit_code == 0, stack.worker_logs()
    flag.write_text("")
    stack.fc.dataplane.reset()  # FC reclaims idle instances: the rollback's probe starts version 1 anew
    with stack.http() as http:
        dep_id = http.post(f"/v1/deployments/{name}/rollback", json={"to": "1"}).json()["id"]
        wait_until(
            lambda: http.get(f"/v1/deployments/{dep_id}").json()["stage"] == "verifying",
            60,
            what="the rollback's probe started",
        )
    cancelled = cli(stack, "cancel", name)
    assert cancelled.exit_code == 0 and cancelled.stdout.strip().endswith("): cancelled"), cancelled.output
    dep = get(stack, f"/v1/deployments/{dep_id}")
    assert dep["status"] == "cancelled" and dep["live"]["version"] == "2", dep
    live, known = versions(stack, name)
    assert live == "2" and known["1"]["probe"]["ok"], known
    assert [t["triggerName"] for t in stack.fc.backend.list_triggers(name)["triggers"]] == ["http"]
    flag.unlink()
