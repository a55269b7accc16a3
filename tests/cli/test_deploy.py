"""`mcp-fc deploy`: the request it builds, how it waits, and what it prints (and never prints)."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from deployer.client import UNREACHABLE_HINT
from schemas import Deployment
from tests.cli.conftest import API_KEY, IMAGE, deployment, progression, responses, succeeded

SECRET = "s3cr3t-value-never-shown"


def test_deploy_sends_the_request_waits_and_prints_urls(api, cli):
    post = api.post("/v1/deployments").mock(return_value=httpx.Response(202, json=deployment()))
    get = api.get("/v1/deployments/0190aa00bb11cc22dd33").mock(side_effect=responses(*progression()))

    result = cli(
        "deploy",
        "mcp-time",
        "--image",
        IMAGE,
        "--env",
        "TZ=Asia/Shanghai",
        "--secret-env",
        f"TOKEN={SECRET}",
        "--memory",
        "1024",
        "--cpu",
        "1",
        "--auth",
        "anonymous",
        "--priority",
        "high",
        "--transport",
        "sse",
        "--",
        "mcp-server-time",
        "--local-timezone",
        "Asia/Shanghai",
    )

    assert result.exit_code == 0, result.stderr
    request = post.calls.last.request
    body = json.loads(request.content)
    assert body == {
        "name": "mcp-time",
        "image": IMAGE,
        "command": ["mcp-server-time", "--local-timezone", "Asia/Shanghai"],
        "env": {"TZ": "Asia/Shanghai"},
        "secret_env": {"TOKEN": SECRET},
        "cpu": 1.0,
        "memory_mb": 1024,
        "transport": "sse",
        "auth": {"type": "anonymous"},
        "priority": "high",
    }
    assert uuid.UUID(request.headers["Idempotency-Key"]).version == 4
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    # Long-polled until the terminal status, by id.
    assert get.call_count == 3
    assert all(c.request.url.params["wait"] == "20" for c in get.calls)
    out = result.stdout
    assert "https://mcp-time-abc.cn-hangzhou.fcapp.run/sse" in out
    assert "https://mcp-time-abc.cn-hangzhou.fcapp.run/mcp" in out
    assert "get_current_time" in out and "convert_time" in out
    assert "mcp-fc config mcp-time" in out
    assert SECRET not in result.output


def test_each_invocation_uses_a_fresh_idempotency_key(api, cli):
    post = api.post("/v1/deployments").mock(return_value=httpx.Response(202, json=deployment()))
    for _ in range(2):
        assert (
            cli("deploy", "mcp-time", "--image", IMAGE, "--no-wait", "--", "mcp-server-time").exit_code == 0
        )
    keys = {c.request.headers["Idempotency-Key"] for c in post.calls}
    assert len(keys) == 2


def test_a_retried_post_reuses_its_idempotency_key(api, cli, sleeps):
    post = api.post("/v1/deployments").mock(
        side_effect=[
            httpx.ReadTimeout("slow"),
            httpx.Response(503, json={"title": "broker down"}),
            httpx.Response(202, json=deployment()),
        ]
    )
    result = cli("deploy", "mcp-time", "--image", IMAGE, "--no-wait", "--", "mcp-server-time")
    assert result.exit_code == 0, result.stderr
    assert post.call_count == 3
    assert len({c.request.headers["Idempotency-Key"] for c in post.calls}) == 1
    assert len(sleeps) == 2


def test_json_prints_only_the_final_deployment(api, cli):
    final = succeeded(spec={"secret_env": {"TOKEN": "***"}})
    api.post("/v1/deployments").mock(return_value=httpx.Response(202, json=deployment()))
    api.get("/v1/deployments/0190aa00bb11cc22dd33").mock(side_effect=responses(*progression(final=final)))

    result = cli(
        "deploy",
        "mcp-time",
        "--image",
        IMAGE,
        "--secret-env",
        f"TOKEN={SECRET}",
        "--json",
        "--",
        "mcp-server-time",
    )

    assert result.exit_code == 0, result.stderr
    dep = Deployment.model_validate_json(result.stdout)
    assert dep.status == "succeeded" and dep.urls.sse.endswith("/sse")
    assert json.loads(result.stdout)["spec"]["secret_env"] == {"TOKEN": "***"}
    assert SECRET not in result.output


def test_no_wait_prints_id_and_status_without_polling(api, cli):
    api.post("/v1/deployments").mock(return_value=httpx.Response(202, json=deployment()))
    get = api.get(url__regex=r"/v1/deployments/.*")

    result = cli("deploy", "mcp-time", "--image", IMAGE, "--no-wait", "--", "mcp-server-time")

    assert result.exit_code == 0
    assert "0190aa00bb11cc22dd33" in result.stdout and "pending" in result.stdout
    assert get.call_count == 0

    as_json = cli("deploy", "mcp-time", "--image", IMAGE, "--no-wait", "--json", "--", "mcp-server-time")
    assert Deployment.model_validate_json(as_json.stdout).status == "pending"


def test_failed_deployment_exits_1_with_code_message_and_step(api, cli):
    failed = deployment(
        status="failed",
        stage="create_function",
        progress=30,
        updated_at="2025-01-02T03:06:00+00:00",
        error={
            "code": "InvalidArgument",
            "message": "image not found",
            "retryable": False,
            "request_id": "req-42",
            "step": "create_function",
        },
    )
    api.post("/v1/deployments").mock(return_value=httpx.Response(202, json=deployment()))
    api.get("/v1/deployments/0190aa00bb11cc22dd33").mock(side_effect=responses(*progression(final=failed)))

    result = cli("deploy", "mcp-time", "--image", IMAGE, "--", "mcp-server-time")

    assert result.exit_code == 1
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    line = error_lines[0]
    assert "InvalidArgument" in line and "image not found" in line and "create_function" in line
    assert "req-42" in line
    assert "Traceback" not in result.output
    assert "fcapp.run" not in result.stdout


def test_failed_deployment_with_json_still_prints_the_deployment(api, cli):
    failed = deployment(
        status="failed", error={"code": "ProbeFailed", "message": "no tools", "step": "probe"}
    )
    api.post("/v1/deployments").mock(return_value=httpx.Response(202, json=deployment()))
    api.get("/v1/deployments/0190aa00bb11cc22dd33").mock(side_effect=responses(failed))

    result = cli("deploy", "mcp-time", "--image", IMAGE, "--json", "--", "mcp-server-time")

    assert result.exit_code == 1
    assert Deployment.model_validate_json(result.stdout).error.code == "ProbeFailed"
    assert "error:" in result.stderr and "ProbeFailed" in result.stderr


def test_local_validation_failure_sends_nothing(api, cli):
    post = api.post("/v1/deployments")

    result = cli("deploy", "mcp-time", "--image", IMAGE, "--memory", "100", "--", "mcp-server-time")

    assert result.exit_code == 2
    assert post.call_count == 0
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1
    assert "memory_mb" in result.stderr and "memory_range" in result.stderr


@pytest.mark.parametrize(
    ("pairs", "rule"),
    [
        (["--secret-env", f"FC_TOKEN={SECRET}"], "env_key_reserved"),
        (["--secret-env", f"TOKEN={SECRET}\x00tail"], "no_nul"),
        (["--secret-env", f"TOKEN={SECRET}", "--env", "TOKEN=plain"], "env_duplicate_key"),
        (["--secret-env", "BIG=" + SECRET * 200], "env_total_size"),
    ],
)
def test_secret_env_errors_never_show_the_value(api, cli, pairs, rule):
    post = api.post("/v1/deployments")

    result = cli("deploy", "mcp-time", "--image", IMAGE, *pairs, "--", "mcp-server-time")

    assert result.exit_code == 2
    assert rule in result.stderr
    assert SECRET not in result.output
    assert post.call_count == 0


def test_secret_env_without_a_value_reads_the_environment(api, cli, monkeypatch):
    monkeypatch.setenv("MY_TOKEN", SECRET)
    post = api.post("/v1/deployments").mock(return_value=httpx.Response(202, json=deployment()))
    result = cli(
        "deploy", "mcp-time", "--image", IMAGE, "-s", "MY_TOKEN", "--no-wait", "--", "mcp-server-time"
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(post.calls.last.request.content)["secret_env"] == {"MY_TOKEN": SECRET}
    assert SECRET not in result.output

    # A bare argument naming no variable may be a mistyped secret: it is not repeated.
    result = cli("deploy", "mcp-time", "--image", IMAGE, "-s", SECRET, "--", "mcp-server-time")
    assert result.exit_code == 2
    assert SECRET not in result.output


def test_api_validation_problem_exits_2_with_field_and_rule(api, cli):
    api.post("/v1/deployments").mock(
        return_value=httpx.Response(
            422,
            headers={"content-type": "application/problem+json"},
            json={
                "type": "about:blank",
                "title": "Invalid deploy request",
                "status": 422,
                "detail": "1 field is invalid",
                "errors": [
                    {"field": "image", "rule": "image_reference", "message": "image must be a reference"}
                ],
            },
        )
    )

    result = cli("deploy", "mcp-time", "--image", IMAGE, "--", "mcp-server-time")

    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "image" in result.stderr and "image_reference" in result.stderr


def test_api_conflict_exits_2(api, cli):
    api.post("/v1/deployments").mock(
        return_value=httpx.Response(
            409, json={"title": "Conflict", "status": 409, "detail": "the name mcp-time is taken"}
        )
    )
    result = cli("deploy", "mcp-time", "--image", IMAGE, "--", "mcp-server-time")
    assert result.exit_code == 2
    assert result.stderr == "error: Conflict: the name mcp-time is taken (HTTP 409)\n"


def test_connection_refused_exits_3_with_one_line(api, cli, sleeps):
    post = api.post("/v1/deployments").mock(side_effect=httpx.ConnectError("[Errno 111] Connection refused"))

    result = cli("deploy", "mcp-time", "--image", IMAGE, "--", "mcp-server-time")

    assert result.exit_code == 3
    assert (
        result.stderr
        == "error: cannot reach the mcp-fc API at http://mcpfc.test: connection refused"
        + UNREACHABLE_HINT
        + "\n"
    )
    assert "Traceback" not in result.output
    assert post.call_count == 3, "a connection that never opened is retried"


def test_service_unavailable_exits_3(api, cli):
    api.post("/v1/deployments").mock(return_value=httpx.Response(503, json={"title": "Broker unavailable"}))
    result = cli("deploy", "mcp-time", "--image", IMAGE, "--", "mcp-server-time")
    assert result.exit_code == 3
    assert "Broker unavailable" in result.stderr


def test_unauthorized_exits_2(api, cli):
    api.post("/v1/deployments").mock(return_value=httpx.Response(401, json={"title": "Unauthorized"}))
    result = cli("deploy", "mcp-time", "--image", IMAGE, "--", "mcp-server-time")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: the API refused the API key from MCPFC_API_KEY")


def test_global_api_url_and_key_override_the_environment(cli):
    import respx

    with respx.mock(base_url="http://other.test", assert_all_called=True) as other:
        post = other.post("/v1/deployments").mock(return_value=httpx.Response(202, json=deployment()))
        result = cli(
            "--api-url",
            "http://other.test",
            "--api-key",
            "k2",
            "deploy",
            "mcp-time",
            "--image",
            IMAGE,
            "--no-wait",
            "--",
            "mcp-server-time",
        )
    assert result.exit_code == 0, result.stderr
    assert post.calls.last.request.headers["Authorization"] == "Bearer k2"


def test_file_yaml_with_flag_overrides(api, cli, tmp_path):
    (tmp_path / "deploy.yaml").write_text(
        "name: from-file\n"
        f"image: {IMAGE}\n"
        "command: [mcp-server-time]\n"
        "env: {TZ: UTC, PORT: 8080, DEBUG: true}\n"
        "memory_mb: 1024\n"
        "cpu: 1\n"
        "auth: {type: anonymous}\n"
        "description: from the file\n"
    )
    post = api.post("/v1/deployments").mock(return_value=httpx.Response(202, json=deployment("from-file")))

    result = cli(
        "deploy",
        "--file",
        "deploy.yaml",
        "--image",
        "registry.example.com/ns/other:2",
        "--env",
        "TZ=Asia/Shanghai",
        "--no-wait",
        "--",
        "uvx",
        "mcp-server-time",
    )

    assert result.exit_code == 0, result.stderr
    body = json.loads(post.calls.last.request.content)
    assert body["name"] == "from-file"
    assert body["image"] == "registry.example.com/ns/other:2"
    assert body["command"] == ["uvx", "mcp-server-time"]
    assert body["env"] == {"TZ": "Asia/Shanghai", "PORT": "8080", "DEBUG": "true"}
    assert (body["memory_mb"], body["cpu"], body["auth"]) == (1024, 1.0, {"type": "anonymous"})
    assert body["description"] == "from the file"

    # NAME on the command line wins over the file's.
    cli("deploy", "renamed", "--file", "deploy.yaml", "--no-wait")
    assert json.loads(post.calls.last.request.content)["name"] == "renamed"


def test_file_errors_are_one_line(api, cli, tmp_path):
    (tmp_path / "bad.yaml").write_text(f"name: x\nsecret_env: {{TOKEN: {SECRET}\n")
    result = cli("deploy", "--file", "bad.yaml")
    assert result.exit_code == 2 and "not valid YAML" in result.stderr and SECRET not in result.output

    (tmp_path / "typo.yaml").write_text(f"name: mcp-time\nimage: {IMAGE}\ncommand: [x]\nmemory: 1024\n")
    result = cli("deploy", "--file", "typo.yaml")
    assert result.exit_code == 2 and "memory" in result.stderr and "extra_forbidden" in result.stderr

    result = cli("deploy", "--file", "missing.yaml")
    assert result.exit_code == 2 and "cannot read missing.yaml" in result.stderr
    assert api.calls.call_count == 0


def test_missing_name_and_server_command(api, cli):
    result = cli("deploy", "--image", IMAGE)
    assert result.exit_code == 2 and "NAME" in result.stderr
    result = cli("deploy", "mcp-time", "--image", IMAGE)
    assert result.exit_code == 2 and "command_required" in result.stderr
    assert api.calls.call_count == 0


def test_bad_choice_is_a_usage_error(cli):
    result = cli("deploy", "mcp-time", "--image", IMAGE, "--transport", "websocket", "--", "x")
    assert result.exit_code == 2


def test_server_ignoring_wait_is_paced_not_hammered(api, cli, sleeps):
    api.post("/v1/deployments").mock(return_value=httpx.Response(202, json=deployment()))
    same = deployment()
    api.get("/v1/deployments/0190aa00bb11cc22dd33").mock(side_effect=responses(same, same, succeeded()))

    result = cli("deploy", "mcp-time", "--image", IMAGE, "--", "mcp-server-time")

    assert result.exit_code == 0
    assert len(sleeps) == 2 and all(0 < s <= 1.0 for s in sleeps)


def test_cancelled_deployment_exits_1(api, cli):
    api.post("/v1/deployments").mock(return_value=httpx.Response(202, json=deployment()))
    api.get("/v1/deployments/0190aa00bb11cc22dd33").mock(
        side_effect=responses(deployment(status="cancelled", stage="create_function"))
    )
    result = cli("deploy", "mcp-time", "--image", IMAGE, "--", "mcp-server-time")
    assert result.exit_code == 1
    assert "cancelled" in result.stderr


def test_a_deploy_onto_an_existing_name_says_it_replaces_it_and_what_changes(api, cli):
    api.post("/v1/deployments").mock(
        return_value=httpx.Response(
            202,
            json=deployment(),
            headers={"Mcpfc-Replaced": "succeeded", "Mcpfc-Changed-Fields": "image, memory_mb"},
        )
    )
    result = cli("deploy", "mcp-time", "--image", IMAGE, "--no-wait", "--json", "--", "mcp-server-time")
    assert result.exit_code == 0, result.stderr
    Deployment.model_validate_json(result.stdout)  # the notice stays off stdout
    assert "mcp-time already had a deployment (succeeded" in result.stderr
    assert "replaces it in place" in result.stderr and "changes image, memory_mb" in result.stderr


def test_a_new_name_gets_no_replace_notice(api, cli):
    api.post("/v1/deployments").mock(return_value=httpx.Response(202, json=deployment()))
    result = cli("deploy", "mcp-time", "--image", IMAGE, "--no-wait", "--", "mcp-server-time")
    assert result.exit_code == 0 and "already had" not in result.output


def test_the_same_spec_again_says_so(api, cli):
    api.post("/v1/deployments").mock(
        return_value=httpx.Response(
            202, json=deployment(), headers={"Mcpfc-Replaced": "failed", "Mcpfc-Changed-Fields": ""}
        )
    )
    result = cli("deploy", "mcp-time", "--image", IMAGE, "--no-wait", "--", "mcp-server-time")
    assert "(failed, id" in result.stderr and "the same spec, deployed again" in result.stderr


LOCAL = {"fc_local": True, "default_image": "localhost/mcp-fc-emulator:not-pulled", "region": "cn-hangzhou"}
CLOUD = {"fc_local": False, "default_image": None, "region": "cn-hangzhou"}


def test_without_image_the_local_emulator_gets_its_stand_in(api, cli):
    api.get("/v1/service").mock(return_value=httpx.Response(200, json={**LOCAL, "regions": []}))
    post = api.post("/v1/deployments").mock(return_value=httpx.Response(202, json=deployment()))
    result = cli("deploy", "mcp-time", "--no-wait", "--", "mcp-server-time")
    assert result.exit_code == 0, result.stderr
    assert json.loads(post.calls.last.request.content)["image"] == LOCAL["default_image"]
    assert "no --image: the local emulator runs the command on this host" in result.stderr
    assert "warning:" not in result.stderr, "the stand-in is nobody's to pull"


def test_without_image_on_alibaba_cloud_says_to_give_one(api, cli):
    api.get("/v1/service").mock(return_value=httpx.Response(200, json={**CLOUD, "regions": []}))
    post = api.post("/v1/deployments")
    result = cli("deploy", "mcp-time", "--", "mcp-server-time")
    assert result.exit_code == 2 and not post.called
    assert result.stderr.startswith("error: give --image IMAGE")


def test_an_api_without_the_service_route_needs_an_image(api, cli):
    api.get("/v1/service").mock(return_value=httpx.Response(404, json={"title": "Not Found"}))
    result = cli("deploy", "mcp-time", "--", "mcp-server-time")
    assert result.exit_code == 2 and "give --image IMAGE" in result.stderr


@pytest.mark.parametrize(
    ("image", "warnings"),
    [
        (IMAGE, []),
        ("ghcr.io/org/mcp-time:1", ["not in Alibaba Cloud Container Registry"]),
        ("registry.cn-hangzhou.aliyuncs.com/ns/mcp-time", ["has no tag"]),
    ],
)
def test_images_fc_may_not_pull_are_warned_about(api, cli, image, warnings):
    api.post("/v1/deployments").mock(return_value=httpx.Response(202, json=deployment()))
    result = cli("deploy", "mcp-time", "--image", image, "--no-wait", "--json", "--", "mcp-server-time")
    assert result.exit_code == 0, result.stderr
    Deployment.model_validate_json(result.stdout)
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(lines) == len(warnings)
    for line, words in zip(lines, warnings, strict=True):
        assert words in line


def test_from_mcp_json_without_image_on_the_local_emulator(api, cli, tmp_path):
    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps({"mcpServers": {"clock": {"command": "mcp-server-time", "env": {"TOKEN": SECRET}}}})
    )
    api.get("/v1/service").mock(return_value=httpx.Response(200, json={**LOCAL, "regions": []}))
    post = api.post("/v1/deployments").mock(
        return_value=httpx.Response(
            202,
            json=deployment("clock"),
            headers={"Mcpfc-Replaced": "succeeded", "Mcpfc-Changed-Fields": "command"},
        )
    )
    api.get("/v1/deployments/0190aa00bb11cc22dd33").mock(
        return_value=httpx.Response(200, json=succeeded("clock"))
    )
    entry = {"type": "http", "url": "https://clock-abc.cn-hangzhou.fcapp.run/mcp", "headers": {}}
    api.get("/v1/deployments/0190aa00bb11cc22dd33/client-config").mock(
        return_value=httpx.Response(200, json={"mcpServers": {"clock": entry}})
    )
    result = cli("deploy", "--from-mcp-json", str(config))
    assert result.exit_code == 0, result.stderr
    body = json.loads(post.calls.last.request.content)
    assert body["image"] == LOCAL["default_image"] and body["secret_env"] == {"TOKEN": SECRET}
    assert json.loads(result.stdout) == {"mcpServers": {"clock": entry}}
    assert "using localhost/mcp-fc-emulator:not-pulled" in result.stderr
    assert "clock already had a deployment" in result.stderr and "changes command" in result.stderr
    assert SECRET not in result.output


def test_ctrl_c_while_waiting_exits_130_and_says_the_deploy_goes_on(api, cli):
    """Ctrl-C ends the wait, not the deploy, and exits 130 (the documented code), never 0 (issue 26 #13)."""
    api.post("/v1/deployments").mock(return_value=httpx.Response(202, json=deployment()))

    def ctrl_c(request):
        raise KeyboardInterrupt  # what Ctrl-C does to the long-poll

    api.get("/v1/deployments/0190aa00bb11cc22dd33").mock(side_effect=ctrl_c)

    result = cli("deploy", "mcp-time", "--image", IMAGE, "--", "mcp-server-time")

    assert result.exit_code == 130, result.output
    assert "stopped waiting; mcp-time carries on" in result.stderr
