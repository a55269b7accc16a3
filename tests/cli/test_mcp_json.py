"""Claude / Cursor mcp.json files become deploy requests; remote entries are skipped."""

import json

import pytest

from deployer.cli import mcp_json
from deployer.errors import SpecError

CONFIG = {
    "mcpServers": {
        "time": {"command": "uvx", "args": ["mcp-server-time", "--local-timezone", "UTC"]},
        "GitHub Server (beta)": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-github"],
            "env": {"GITHUB_TOKEN": "ghp_canary"},
        },
        "remote": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer x"}},
        "sse-remote": {"type": "sse", "url": "https://example.com/sse"},
        "off": {"command": "x", "disabled": True},
        "broken": {"args": ["no command"]},
    }
}


def test_stdio_servers_become_requests_and_remote_ones_are_skipped(tmp_path):
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(CONFIG))
    servers, skipped = mcp_json.load(path)
    assert [(s.key, s.name) for s in servers] == [
        ("time", "time"),
        ("GitHub Server (beta)", "github-server-beta"),
    ]
    assert servers[0].command == ["uvx", "mcp-server-time", "--local-timezone", "UTC"]
    assert servers[1].env == {"GITHUB_TOKEN": "ghp_canary"}
    assert {s.key: s.reason.split(" ")[0] for s in skipped} == {
        "remote": "already",
        "sse-remote": "already",
        "off": "disabled",
        "broken": "no",
    }


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("time", "time"),
        ("My Server", "my-server"),
        ("123", "mcp-123"),
        ("@scope/pkg", "scope-pkg"),
        ("a" * 80, "a" * 64),
        ("__x__", "x"),
    ],
)
def test_function_names_follow_fc_rules(key, name):
    assert mcp_json.function_name(key) == name


def test_colliding_names_are_refused():
    with pytest.raises(SpecError, match="both become"):
        mcp_json.parse({"mcpServers": {"A b": {"command": "x"}, "a-b": {"command": "y"}}})


def test_bad_files_say_where_without_echoing_content(tmp_path):
    path = tmp_path / "mcp.json"
    path.write_text('{"mcpServers": {"x": {"env": {"TOKEN": "secret-canary"}}')
    with pytest.raises(SpecError) as info:
        mcp_json.load(path)
    assert "line 1" in str(info.value) and "secret-canary" not in str(info.value)
    with pytest.raises(SpecError):
        mcp_json.parse({"servers": {}})
