"""redeploy, status, list, delete, cancel, config and events against a mocked API."""

from __future__ import annotations

import json

import httpx
import pytest

from deployer.client import UNREACHABLE_HINT
from schemas import Deployment
from tests.cli.conftest import IMAGE, deployment, progression, responses, succeeded

DEP = "/v1/deployments/0190aa00bb11cc22dd33"


# -- redeploy --------------------------------------------------------------------------------------


def test_redeploy_sends_only_the_changed_fields_and_waits(api, cli):
    post = api.post("/v1/deployments/mcp-time/redeploy").mock(
        return_value=httpx.Response(202, json=deployment())
    )
    get = api.get(DEP).mock(side_effect=responses(*progression()))

    result = cli(
        "redeploy",
        "mcp-time",
        "--image",
        "registry.example.com/ns/mcp-time:2",
        "--env",
        "TZ=UTC",
        "--secret-env",
        "TOKEN=hunter2-secret",
    )

    assert result.exit_code == 0, result.stderr
    assert json.loads(post.calls.last.request.content) == {
        "image": "registry.example.com/ns/mcp-time:2",
        "env": {"TZ": "UTC"},
        "secret_env": {"TOKEN": "hunter2-secret"},
    }
    assert get.call_count == 3
    assert "redeployed" in result.stdout and "/sse" in result.stdout
    assert "hunter2-secret" not in result.output


def test_redeploy_without_changes_sends_an_empty_body(api, cli):
    post = api.post("/v1/deployments/mcp-time/redeploy").mock(
        return_value=httpx.Response(202, json=deployment())
    )
    result = cli("redeploy", "mcp-time", "--no-wait", "--json")
    assert result.exit_code == 0
    assert json.loads(post.calls.last.request.content) == {}
    assert Deployment.model_validate_json(result.stdout).status == "pending"


def test_redeploy_new_command_and_size(api, cli):
    post = api.post("/v1/deployments/mcp-time/redeploy").mock(
        return_value=httpx.Response(202, json=deployment())
    )
    result = cli("redeploy", "mcp-time", "--memory", "2048", "--no-wait", "--", "uvx", "mcp-server-time")
    assert result.exit_code == 0, result.stderr
    assert json.loads(post.calls.last.request.content) == {
        "memory_mb": 2048,
        "command": ["uvx", "mcp-server-time"],
    }


def test_redeploy_checks_field_rules_locally(api, cli):
    post = api.post("/v1/deployments/mcp-time/redeploy")
    result = cli("redeploy", "mcp-time", "--memory", "100")
    assert result.exit_code == 2 and "memory_range" in result.stderr
    result = cli("redeploy", "mcp-time", "--image", "not a reference")
    assert result.exit_code == 2 and "image_reference" in result.stderr
    assert post.call_count == 0


def test_redeploy_failure_exits_1(api, cli):
    api.post("/v1/deployments/mcp-time/redeploy").mock(return_value=httpx.Response(202, json=deployment()))
    api.get(DEP).mock(
        side_effect=responses(
            deployment(
                status="failed",
                error={"code": "FunctionNotFound", "message": "gone", "step": "update_function"},
            )
        )
    )
    result = cli("redeploy", "mcp-time", "--image", IMAGE)
    assert result.exit_code == 1 and "FunctionNotFound" in result.stderr


def test_redeploy_unknown_deployment_exits_2(api, cli):
    api.post("/v1/deployments/nope/redeploy").mock(
        return_value=httpx.Response(404, json={"title": "Not Found", "detail": "no deployment nope"})
    )
    result = cli("redeploy", "nope")
    assert result.exit_code == 2
    assert result.stderr == "error: Not Found: no deployment nope (HTTP 404)\n"


# -- status ----------------------------------------------------------------------------------------


def test_status_shows_a_deployment(api, cli):
    dep = succeeded(spec={"env": {"TZ": "UTC"}, "secret_env": {"TOKEN": "***"}})
    route = api.get("/v1/deployments/mcp-time").mock(return_value=httpx.Response(200, json=dep))

    result = cli("status", "mcp-time")

    assert result.exit_code == 0
    assert route.calls.last.request.url.params.get("wait") is None
    out = result.stdout
    assert "succeeded" in out and "0190aa00bb11cc22dd33" in out and "/sse" in out
    assert "TOKEN=***" in out and "get_current_time" in out

    as_json = cli("status", "mcp-time", "--json")
    assert Deployment.model_validate_json(as_json.stdout).name == "mcp-time"


def test_status_shows_the_error_of_a_failed_deployment(api, cli):
    api.get("/v1/deployments/mcp-time").mock(
        return_value=httpx.Response(
            200,
            json=deployment(
                status="failed",
                error={"code": "ProbeFailed", "message": "no tools/list answer", "step": "probe"},
            ),
        )
    )
    result = cli("status", "mcp-time")
    assert result.exit_code == 1, "exit 1: the deployment failed"
    assert "ProbeFailed" in result.stdout and "probe" in result.stdout
    as_json = cli("status", "mcp-time", "--json")
    assert as_json.exit_code == 1 and Deployment.model_validate_json(as_json.stdout).status == "failed"


@pytest.mark.parametrize(("status", "code"), [("cancelled", 1), ("running", 0), ("deleted", 0)])
def test_status_exit_code_follows_the_deployment(api, cli, status, code):
    api.get("/v1/deployments/mcp-time").mock(return_value=httpx.Response(200, json=deployment(status=status)))
    assert cli("status", "mcp-time").exit_code == code


def test_status_of_an_invalid_answer_is_unreachable(api, cli):
    api.get("/v1/deployments/mcp-time").mock(return_value=httpx.Response(200, text="<html>proxy</html>"))
    result = cli("status", "mcp-time")
    assert result.exit_code == 3 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


# -- list ------------------------------------------------------------------------------------------


def _page(names: list[str], cursor: str | None) -> httpx.Response:
    items = [succeeded(n, id=f"id-{n}") for n in names]
    return httpx.Response(200, json={"items": items, "next_cursor": cursor})


def test_list_follows_cursors(api, cli):
    route = api.get("/v1/deployments").mock(
        side_effect=[_page(["a1", "a2"], "c1"), _page(["b1", "b2"], "c2"), _page(["c1x"], None)]
    )

    result = cli("list", "--status", "succeeded")

    assert result.exit_code == 0, result.stderr
    cursors = [c.request.url.params.get("cursor") for c in route.calls]
    assert cursors == [None, "c1", "c2"]
    assert all(c.request.url.params["status"] == "succeeded" for c in route.calls)
    for name in ("a1", "a2", "b1", "b2", "c1x"):
        assert name in result.stdout
    assert "NAME" in result.stdout and "STATUS" in result.stdout


def test_list_json_is_one_array(api, cli):
    api.get("/v1/deployments").mock(side_effect=[_page(["a1"], "c1"), _page(["b1"], None)])
    result = cli("list", "--json")
    assert result.exit_code == 0
    assert [d["name"] for d in json.loads(result.stdout)] == ["a1", "b1"]


def test_list_stops_at_the_cap(api, cli):
    route = api.get("/v1/deployments").mock(
        side_effect=[_page(["a1", "a2"], "c1"), _page(["b1", "b2"], "c2")]
    )
    result = cli("list", "--limit", "3", "--json")
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)) == 3
    assert route.call_count == 2
    assert "raise --limit" in result.stderr


def test_list_stops_when_the_server_repeats_a_cursor(api, cli):
    api.get("/v1/deployments").mock(side_effect=[_page(["a1"], "same"), _page(["a2"], "same")])
    result = cli("list", "--json")
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 2


def test_list_empty(api, cli):
    api.get("/v1/deployments").mock(return_value=httpx.Response(200, json={"items": [], "next_cursor": None}))
    result = cli("list")
    assert result.exit_code == 0 and "No deployments" in result.stdout


# -- delete / cancel -------------------------------------------------------------------------------


def test_delete_waits_until_deleted(api, cli):
    deleting = deployment(status="deleting", stage="delete_trigger", progress=10)
    api.delete("/v1/deployments/mcp-time").mock(return_value=httpx.Response(202, json=deleting))
    get = api.get(DEP).mock(
        side_effect=responses(
            deployment(
                status="deleting", stage="delete_function", progress=50, updated_at="2025-01-02T03:09:00Z"
            ),
            deployment(status="deleted", stage="deleted", progress=100, updated_at="2025-01-02T03:10:00Z"),
        )
    )
    result = cli("delete", "mcp-time")
    assert result.exit_code == 0, result.stderr
    assert get.call_count == 2
    assert "deleted mcp-time" in result.stdout


def test_delete_treats_a_vanished_deployment_as_deleted(api, cli):
    api.delete("/v1/deployments/mcp-time").mock(
        return_value=httpx.Response(202, json=deployment(status="deleting"))
    )
    api.get(DEP).mock(return_value=httpx.Response(404, json={"title": "Not Found"}))
    result = cli("delete", "mcp-time")
    assert result.exit_code == 0 and "deleted" in result.stdout


def test_delete_failure_exits_1(api, cli):
    api.delete("/v1/deployments/mcp-time").mock(
        return_value=httpx.Response(202, json=deployment(status="deleting"))
    )
    api.get(DEP).mock(
        side_effect=responses(
            deployment(
                status="failed",
                error={"code": "FunctionNotEmpty", "message": "triggers remain", "step": "delete_function"},
            )
        )
    )
    result = cli("delete", "mcp-time")
    assert result.exit_code == 1
    assert "delete of mcp-time failed" in result.stderr and "FunctionNotEmpty" in result.stderr


def test_delete_no_wait(api, cli):
    api.delete("/v1/deployments/mcp-time").mock(
        return_value=httpx.Response(202, json=deployment(status="deleting"))
    )
    get = api.get(DEP)
    result = cli("delete", "mcp-time", "--no-wait")
    assert result.exit_code == 0 and "deleting" in result.stdout
    assert get.call_count == 0


def test_cancel(api, cli):
    route = api.post("/v1/deployments/mcp-time/cancel").mock(
        return_value=httpx.Response(200, json=deployment(status="cancelled"))
    )
    result = cli("cancel", "mcp-time")
    assert result.exit_code == 0 and "cancelled" in result.stdout
    assert route.call_count == 1


def test_cancel_of_a_finished_deployment_is_a_conflict(api, cli):
    api.post("/v1/deployments/mcp-time/cancel").mock(
        return_value=httpx.Response(409, json={"title": "Conflict", "detail": "mcp-time already succeeded"})
    )
    result = cli("cancel", "mcp-time")
    assert result.exit_code == 2 and "already succeeded" in result.stderr


# -- config ----------------------------------------------------------------------------------------


def test_config_merges_servers(api, cli):
    for name in ("mcp-time", "mcp-fetch"):
        api.get(f"/v1/deployments/{name}/client-config").mock(
            return_value=httpx.Response(
                200,
                json={
                    "mcpServers": {
                        name: {
                            "type": "sse",
                            "url": f"https://{name}.fcapp.run/sse",
                            "headers": {"Authorization": f"Bearer tok-{name}"},
                        }
                    }
                },
            )
        )

    result = cli("config", "mcp-time", "mcp-fetch")

    assert result.exit_code == 0, result.stderr
    merged = json.loads(result.stdout)
    assert merged == {
        "mcpServers": {
            "mcp-time": {
                "type": "sse",
                "url": "https://mcp-time.fcapp.run/sse",
                "headers": {"Authorization": "Bearer tok-mcp-time"},
            },
            "mcp-fetch": {
                "type": "sse",
                "url": "https://mcp-fetch.fcapp.run/sse",
                "headers": {"Authorization": "Bearer tok-mcp-fetch"},
            },
        }
    }
    assert result.stderr == ""


def test_config_of_an_unknown_name_prints_no_partial_json(api, cli):
    api.get("/v1/deployments/mcp-time/client-config").mock(
        return_value=httpx.Response(200, json={"mcpServers": {"mcp-time": {"url": "u"}}})
    )
    api.get("/v1/deployments/nope/client-config").mock(
        return_value=httpx.Response(404, json={"title": "Not Found"})
    )
    result = cli("config", "mcp-time", "nope")
    assert result.exit_code == 2 and result.stdout == ""


# -- events ----------------------------------------------------------------------------------------


def test_events_streams_until_a_final_status(api, cli):
    stream = (
        'event: progress\ndata: {"status": "running", "stage": "create_function", "progress": 20}\n\n'
        ": keep-alive\n\n"
        "event: progress\n"
        'data: {"status": "succeeded", "stage": "done", "progress": 100, "message": "ok"}\n\n'
        'event: progress\ndata: {"status": "never-read"}\n\n'
    )
    api.get("/v1/deployments/mcp-time/events").mock(
        return_value=httpx.Response(200, headers={"content-type": "text/event-stream"}, text=stream)
    )
    result = cli("events", "mcp-time")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == ["running  create_function  20%", "succeeded  done  100%  ok"]

    as_json = cli("events", "mcp-time", "--json")
    assert [json.loads(line)["status"] for line in as_json.stdout.splitlines()] == ["running", "succeeded"]


def test_events_of_an_unknown_deployment(api, cli):
    api.get("/v1/deployments/nope/events").mock(return_value=httpx.Response(404, json={"title": "Not Found"}))
    result = cli("events", "nope")
    assert result.exit_code == 2 and "Not Found" in result.stderr


# -- everything that talks to the API maps failures the same way ------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["status", "x"],
        ["list"],
        ["delete", "x"],
        ["cancel", "x"],
        ["config", "x"],
        ["redeploy", "x"],
        ["events", "x"],
    ],
)
def test_unreachable_api_exits_3_for_every_command(api, cli, args):
    api.route().mock(side_effect=httpx.ConnectError("[Errno 111] Connection refused"))
    result = cli(*args)
    assert result.exit_code == 3
    assert (
        result.stderr
        == "error: cannot reach the mcp-fc API at http://mcpfc.test: connection refused"
        + UNREACHABLE_HINT
        + "\n"
    )


@pytest.mark.parametrize("args", [["status", "x"], ["list"], ["config", "x"]])
def test_refused_key_exits_2_for_every_command(api, cli, args):
    api.route().mock(return_value=httpx.Response(401, json={"title": "Unauthorized"}))
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: the API refused the API key from MCPFC_API_KEY: it is unknown")
    assert "set MCPFC_API_KEY" not in result.stderr, "the key is set: the hint must not say to set it"


def test_refused_key_names_the_flag_it_came_from(api, cli):
    api.route().mock(return_value=httpx.Response(401, json={"title": "Unauthorized"}))
    result = cli("--api-key", "mcpfc_other_key", "status", "x")
    assert result.exit_code == 2 and "the API key from --api-key" in result.stderr
    assert "mcpfc_other_key" not in result.output


def test_a_missing_key_says_to_set_one(api, cli, monkeypatch):
    monkeypatch.delenv("MCPFC_API_KEY")
    route = api.route().mock(return_value=httpx.Response(401, json={"title": "Unauthorized"}))
    result = cli("status", "x")
    assert result.exit_code == 2
    assert "Authorization" not in route.calls.last.request.headers
    assert result.stderr.startswith("error: no API key: set MCPFC_API_KEY or pass --api-key")


def test_status_shows_config_drift_and_an_expiring_token(api, cli):
    from tests.cli.conftest import succeeded

    dep = succeeded(
        drift={
            "drifted": True,
            "checked_at": "2025-01-02T03:06:00+00:00",
            "fields": [{"field": "memorySize", "fc": 1024, "spec": 512}],
        },
        token={
            "expires_at": "2025-01-20T00:00:00+00:00",
            "expiring": True,
            "checked_at": "2025-01-02T03:06:00+00:00",
        },
    )
    api.get("/v1/deployments/mcp-time").mock(return_value=httpx.Response(200, json=dep))
    result = cli("status", "mcp-time")
    assert result.exit_code == 0, result.stderr
    assert "memorySize: FC has 1024, the spec wants 512" in result.stdout
    assert "mcp-fc reconcile mcp-time" in result.stdout
    assert "mcp-fc token rotate mcp-time" in result.stdout


# -- what live serves, unchanged deploys, one run's events, configs with a warning (issue 26) ------------


LIVE_ONE = {
    "version": "1",
    "release": 1,
    "image": IMAGE,
    "command": ["mcp-server-time", "--old"],
    "env_keys": [],
    "differs_from_spec": ["command"],
}


def test_status_shows_what_live_serves_beside_the_spec_when_they_differ(api, cli):
    api.get("/v1/deployments/mcp-time").mock(
        return_value=httpx.Response(
            200, json=succeeded(live=LIVE_ONE, tool_fingerprint="ab" * 32, tool_fingerprints={"a": "x"})
        )
    )
    out = cli("status", "mcp-time").stdout
    assert "version 1 (release 1) serves another spec:" in out and "mcp-server-time --old" in out
    assert "not live (differs in command; `mcp-fc redeploy mcp-time` releases it)" in out
    assert "(1 tool)" in out, "one tool, not `1 tools`"
    same = {**LIVE_ONE, "differs_from_spec": []}
    api.get("/v1/deployments/mcp-time").mock(return_value=httpx.Response(200, json=succeeded(live=same)))
    out = cli("status", "mcp-time").stdout
    assert "version 1 (release 1): serves the spec below" in out and "not live" not in out


def test_a_deploy_that_changes_nothing_says_so_and_waits_for_nothing(api, cli):
    api.post("/v1/deployments").mock(
        return_value=httpx.Response(
            200,
            json=succeeded(),
            headers={
                "Mcpfc-Replaced": "succeeded",
                "Mcpfc-Changed-Fields": "",
                "Mcpfc-Unchanged": "nothing changed: mcp-time already has this spec, so no new release",
            },
        )
    )
    result = cli("deploy", "mcp-time", "--image", IMAGE, "--", "mcp-server-time")
    assert result.exit_code == 0, result.output
    assert "note: nothing changed" in result.stderr and "replaces it in place" not in result.stderr
    assert "unchanged, no new release (id" in result.stdout


def test_events_follow_the_run_asked_for(api, cli):
    body = 'event: progress\nid: 7\ndata: {"status":"succeeded","stage":"done","progress":100,"message":"deployed"}\n\n'
    route = api.get("/v1/deployments/mcp-time/events").mock(
        return_value=httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
    )
    result = cli("events", "mcp-time", "--run", "task-1")
    assert result.exit_code == 0, result.output
    assert route.calls.last.request.url.params.get("run") == "task-1"
    assert result.stdout.strip() == "succeeded  done  100%  deployed"


def test_config_of_a_failed_redeploy_still_serving_prints_it_with_the_warning(api, cli):
    entry = {"type": "http", "url": "https://x.fcapp.run/mcp", "headers": {"Authorization": "Bearer t"}}
    api.get("/v1/deployments/mcp-time/client-config").mock(
        return_value=httpx.Response(
            200,
            json={"mcpServers": {"mcp-time": entry}},
            headers={
                "Mcpfc-Warning": "the last deploy of mcp-time failed: the endpoint still serves version 1"
            },
        )
    )
    result = cli("config", "mcp-time")
    assert result.exit_code == 0, result.output
    assert "warning: the last deploy of mcp-time failed" in result.stderr
    assert json.loads(result.stdout)["mcpServers"]["mcp-time"]["url"] == entry["url"]
