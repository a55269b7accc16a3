"""`mcp-fc config --client ...`, its errors, and `redeploy --transport` printing the new config."""

from __future__ import annotations

import json

import httpx

from tests.cli.conftest import progression, responses, succeeded

TOKEN = "eyJ.endpoint.tok"
MCP = "https://mcp-time-abc.cn-hangzhou.fcapp.run/mcp"


def serve_config(api, name="mcp-time", url=MCP, kind="http"):
    api.get(f"/v1/deployments/{name}/client-config").mock(
        return_value=httpx.Response(
            200,
            json={
                "mcpServers": {
                    name: {"type": kind, "url": url, "headers": {"Authorization": f"Bearer {TOKEN}"}}
                }
            },
        )
    )


def test_claude_code_prints_type_http_and_the_mcp_add_line(api, cli):
    serve_config(api)
    result = cli("config", "mcp-time", "--client", "claude-code")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc == {
        "mcpServers": {
            "mcp-time": {"type": "http", "url": MCP, "headers": {"Authorization": f"Bearer {TOKEN}"}}
        }
    }
    assert '"type": "http"' in result.stdout and "streamable-http" not in result.output
    assert (
        f"claude mcp add --scope user --transport http mcp-time {MCP} --header 'Authorization: Bearer {TOKEN}'"
        in result.stderr
    )


def test_vscode_prints_a_servers_block(api, cli):
    serve_config(api)
    result = cli("config", "mcp-time", "--client", "vscode")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "servers": {"mcp-time": {"type": "http", "url": MCP, "headers": {"Authorization": f"Bearer {TOKEN}"}}}
    }


def test_claude_desktop_prints_an_mcp_remote_entry(api, cli):
    serve_config(api)
    result = cli("config", "mcp-time", "--client", "claude-desktop")
    assert result.exit_code == 0, result.stderr
    entry = json.loads(result.stdout)["mcpServers"]["mcp-time"]
    assert entry["command"] == "npx" and entry["args"][:2] == ["mcp-remote", MCP]
    assert "Authorization:${MCPFC_TOKEN_MCP_TIME}" in entry["args"]
    assert entry["env"] == {"MCPFC_TOKEN_MCP_TIME": f"Bearer {TOKEN}"}


def test_inspector_prints_its_command_and_several_names_merge(api, cli):
    serve_config(api)
    serve_config(api, "mcp-fetch", "https://mcp-fetch-x.fcapp.run/sse", "sse")
    result = cli("config", "mcp-time", "mcp-fetch", "--client", "inspector")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(
        f"npx -y @modelcontextprotocol/inspector@0.17.5 --cli {MCP} --transport http --header"
    )
    assert "needs Node.js 22.7.5 or newer" in result.stderr  # issue 26 #6
    assert "--transport sse" in lines[1]
    merged = json.loads(cli("config", "mcp-time", "mcp-fetch", "--client", "cursor").stdout)
    assert list(merged["mcpServers"]) == ["mcp-time", "mcp-fetch"]
    assert "type" not in merged["mcpServers"]["mcp-time"]


def test_config_json_carries_client_document_and_commands(api, cli):
    serve_config(api)
    out = json.loads(cli("config", "mcp-time", "--client", "claude-code", "--json").stdout)
    assert out["client"] == "claude-code" and out["config"]["mcpServers"]["mcp-time"]["type"] == "http"
    assert out["commands"][0].startswith("claude mcp add --scope user --transport http mcp-time")


def test_config_of_a_failed_deployment_exits_1_without_an_entry(api, cli):
    api.get("/v1/deployments/broken/client-config").mock(
        return_value=httpx.Response(
            409,
            json={
                "type": "urn:mcp-fc:problem:deployment-failed",
                "title": "Conflict",
                "status": 409,
                "detail": "broken failed at step probe (ProbeFailed): it has no working endpoint",
            },
        )
    )
    result = cli("config", "broken")
    assert result.exit_code == 1 and result.stdout == ""
    assert "failed at step probe" in result.stderr


def test_config_of_a_pending_deployment_exits_2(api, cli):
    api.get("/v1/deployments/new/client-config").mock(
        return_value=httpx.Response(
            409,
            json={
                "type": "urn:mcp-fc:problem:not-ready",
                "title": "Conflict",
                "status": 409,
                "detail": "in progress",
            },
        )
    )
    result = cli("config", "new", "--json")
    assert result.exit_code == 2 and result.stdout == ""


def test_redeploy_transport_converts_and_prints_the_new_config(api, cli):
    final = succeeded(spec={"transport": "streamable-http"})
    route = api.post("/v1/deployments/mcp-time/redeploy").mock(
        return_value=httpx.Response(202, json=progression(final=final)[0])
    )
    api.get("/v1/deployments/0190aa00bb11cc22dd33").mock(side_effect=responses(*progression(final=final)[1:]))
    serve_config(api)
    result = cli("redeploy", "mcp-time", "--transport", "streamable-http")
    assert result.exit_code == 0, result.output
    assert json.loads(route.calls[0].request.content) == {"transport": "streamable-http"}
    assert "now uses transport streamable-http" in result.stderr
    doc = json.loads(result.stdout[result.stdout.index("{") :])
    assert doc["mcpServers"]["mcp-time"] == {
        "type": "http",
        "url": MCP,
        "headers": {"Authorization": f"Bearer {TOKEN}"},
    }


def test_deploy_with_sse_warns_that_it_is_deprecated(api, cli):
    api.post("/v1/deployments").mock(return_value=httpx.Response(202, json=progression()[0]))
    result = cli(
        "deploy",
        "mcp-time",
        "--image",
        "registry.cn-hangzhou.aliyuncs.com/ns/t:1",
        "--transport",
        "sse",
        "--no-wait",
        "--",
        "srv",
    )
    assert result.exit_code == 0, result.output
    assert "transport sse is deprecated" in result.stderr


def test_help_marks_sse_deprecated(cli):
    for command in ("deploy", "redeploy"):
        text = " ".join(cli(command, "--help").stdout.replace("│", " ").split())
        assert "streamable-http" in text and "sse is deprecated" in text, text
