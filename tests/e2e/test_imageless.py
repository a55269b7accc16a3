"""Image-less deploys on the emulator (issue 23's must-show list): `uvx mcp-server-time` and
`npx -y @modelcontextprotocol/server-everything` with no image, through the real worker (its build queue),
the real bridge inside the built code package and the official MCP client in both eras. Downloads and
built packages are cached under ~/.cache/mcp-fc-tests/build (MCPFC_TEST_BUILD_CACHE) between runs."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.e2e.test_both_eras import cli
from tests.mcp_clients import MODERN, use

pytestmark = pytest.mark.e2e


def deploy(stack, name: str, command: list[str], **fields: Any) -> dict[str, Any]:
    with stack.http() as http:
        resp = http.post("/v1/deployments", json={"name": name, "command": command, **fields})
        assert resp.status_code == 202, resp.text
        return stack.wait_for(resp.json()["id"], {"succeeded", "failed"})


def redeploy(stack, name: str, **fields: Any) -> dict[str, Any]:
    with stack.http() as http:
        resp = http.post(f"/v1/deployments/{name}/redeploy", json=fields)
        assert resp.status_code == 202, resp.text
        return stack.wait_for(resp.json()["id"], {"succeeded", "failed"})


def headers_of(stack, name: str) -> dict[str, str]:
    with stack.http() as http:
        return http.get(f"/v1/deployments/{name}/client-config").json()["mcpServers"][name]["headers"]


def events(stack, name: str) -> list[str]:
    with stack.http() as http:
        found = http.get(f"/v1/deployments/{name}/events")
    return [line for line in found.text.splitlines() if line.startswith("data:")]


def fc_function(stack, name: str) -> dict[str, Any]:
    return stack.fc.backend.get_function(name)


def test_uvx_server_deploys_without_an_image_and_an_unchanged_redeploy_builds_and_uploads_nothing(stack):
    dep = deploy(stack, "il-time", ["uvx", "mcp-server-time"])
    assert dep["status"] == "succeeded", (dep.get("error"), stack.worker_logs())
    build = dep["build"]
    assert build["ecosystem"] == "pypi" and build["package"] == "mcp-server-time"
    assert build["version"][0].isdigit() and build["target"] == "host"
    function = fc_function(stack, "il-time")
    assert function["runtime"] == "custom.debian12"
    assert [layer["arn"] for layer in function["layers"]] == [
        "acs:fc:cn-hangzhou:official:layers/Python312/versions/1"
    ]
    assert function["environmentVariables"]["PATH"].startswith("/opt/python3.12/bin:")
    assert function["customRuntimeConfig"]["command"] == ["/opt/python3.12/bin/python3"]
    assert function["customRuntimeConfig"]["port"] == 8080
    assert function["codeChecksum"] == build["code_checksum"] and function["codeSize"] == build["code_size"]
    assert "customContainerConfig" not in function or not function["customContainerConfig"]

    headers = headers_of(stack, "il-time")
    for mode, protocol in ((MODERN, MODERN), ("legacy", "2025-11-25")):
        used = asyncio.run(use(dep["urls"]["mcp"], "streamable-http", headers, mode=mode))
        assert json.loads(used.text)["timezone"] == "UTC" and used.protocol == protocol

    status = cli(stack, "status", "il-time")
    assert status.exit_code == 0 and build["version"] in status.output, status.output

    again = redeploy(stack, "il-time", description="same package")
    assert again["status"] == "succeeded", again.get("error")
    assert again["build"]["version"] == build["version"] and again["build"]["lock_hash"] == build["lock_hash"]
    said = "\n".join(events(stack, "il-time"))
    assert "from the build cache (nothing built)" in said
    assert "FC has this code package: nothing to upload" in said


def test_npx_server_deploys_without_an_image_with_node_from_its_layer(stack):
    dep = deploy(stack, "il-every", ["npx", "-y", "@modelcontextprotocol/server-everything"])
    assert dep["status"] == "succeeded", (dep.get("error"), stack.worker_logs())
    assert dep["build"]["ecosystem"] == "npm" and dep["build"]["version"][0].isdigit()
    function = fc_function(stack, "il-every")
    assert [layer["arn"].split(":layers/")[1] for layer in function["layers"]] == [
        "Nodejs22/versions/3",
        "Python312/versions/1",
    ]
    args = function["customRuntimeConfig"]["args"]
    assert args[args.index("--") + 1] == "/opt/nodejs22/bin/node"
    assert "npx" not in " ".join(args)
    used = asyncio.run(
        use(
            dep["urls"]["mcp"],
            "streamable-http",
            headers_of(stack, "il-every"),
            mode=MODERN,
            tool="echo",
            arguments={"message": "hi"},
        )
    )
    assert "echo" in used.tools and "hi" in used.text


def test_the_github_server_lists_its_tools_in_both_eras(stack):
    """The README's own example (`npx -y @modelcontextprotocol/server-github`): it starts and lists its tools
    without a token; its calls need the internet and a token, so none is made."""
    dep = deploy(stack, "il-github", ["npx", "-y", "@modelcontextprotocol/server-github"])
    assert dep["status"] == "succeeded", (dep.get("error"), stack.worker_logs())
    assert dep["build"]["package"] == "@modelcontextprotocol/server-github"
    headers = headers_of(stack, "il-github")
    for mode in (MODERN, "legacy"):
        used = asyncio.run(use(dep["urls"]["mcp"], "streamable-http", headers, mode=mode, tool=None))
        assert {"search_repositories", "create_issue", "get_file_contents"} <= set(used.tools), used.tools


def test_a_package_that_does_not_exist_fails_the_build_before_any_fc_call(stack):
    dep = deploy(stack, "il-missing", ["npx", "-y", "@mcp-fc-test-nonexistent/no-such-server-0"])
    assert dep["status"] == "failed"
    assert dep["error"]["code"] == "BuildFailed" and dep["stage"] == "build", dep["error"]
    assert "404" in dep["error"]["message"]  # npm's own words
    assert "il-missing" not in stack.fc.backend.functions


def test_from_mcp_json_deploys_each_npx_and_uvx_server_as_its_own_package(stack, tmp_path):
    config = {
        "mcpServers": {
            "il-json-time": {"command": "uvx", "args": ["mcp-server-time"]},
            "il-json-tokyo": {
                "command": "uvx",
                "args": ["mcp-server-time", "--local-timezone", "Asia/Tokyo"],
                "env": {"SOME_TOKEN": "t0ken-value"},
            },
            "il-json-every": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-everything"]},
        }
    }
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(config))
    result = cli(stack, "deploy", "--from-mcp-json", str(path))
    assert result.exit_code == 0, result.output
    assert "t0ken-value" not in result.output
    remote = json.loads(result.stdout)["mcpServers"]
    assert set(remote) == set(config["mcpServers"])
    builds = {name: fc_function(stack, name)["codeChecksum"] for name in remote}
    assert all(builds.values()) and builds["il-json-every"] != builds["il-json-time"]
    for name, entry in remote.items():
        tool = "echo" if name == "il-json-every" else "get_current_time"
        arguments = {"message": "hi"} if tool == "echo" else None
        used = asyncio.run(
            use(entry["url"], "streamable-http", entry["headers"], tool=tool, arguments=arguments)
        )
        assert tool in used.tools
    env = fc_function(stack, "il-json-tokyo")["environmentVariables"]
    assert env["SOME_TOKEN"] == "t0ken-value" and env["HOME"] == "/tmp"


def test_redeploy_upgrade_resolves_again_and_says_from_what_to_what(stack):
    dep = deploy(stack, "il-upgrade", ["uvx", "mcp-server-time"])
    assert dep["status"] == "succeeded", dep.get("error")
    again = redeploy(stack, "il-upgrade", upgrade=True)
    assert again["status"] == "succeeded", again.get("error")
    said = "\n".join(events(stack, "il-upgrade"))
    version = dep["build"]["version"]
    # the registry's newest is what was just pinned, so the upgrade finds nothing newer and says so
    assert f"mcp-server-time stays at {version}" in said or f"from {version} to" in said
    assert again["build"]["lock_hash"] == dep["build"]["lock_hash"] or again["build"]["version"] != version
