"""Every client's form, for both transports, as its documentation shows it (mcp-protocol-2026.md section 4)."""

import json
import shlex

import pytest

from deployer.client_configs import (
    BadDocument,
    ClientKind,
    Endpoint,
    default_document,
    endpoints_from,
    render,
    token_variable,
)
from schemas import Transport

BASE = "https://mcp-time-abc.cn-hangzhou.fcapp.run"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.payload.sig"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HTTP = Endpoint("mcp-time", f"{BASE}/mcp", Transport.streamable_http, AUTH)
SSE = Endpoint("mcp-time", f"{BASE}/sse", Transport.sse, AUTH)
BOTH = [(HTTP, "http"), (SSE, "sse")]


def never_streamable_http(rendered) -> None:
    text = json.dumps(rendered.document) + " ".join(rendered.shell_lines())
    assert "streamable-http" not in text


@pytest.mark.parametrize(("ep", "kind"), BOTH)
def test_json_default_is_typed_mcpservers(ep, kind):
    rendered = render(ClientKind.json, [ep])
    assert rendered.document == {"mcpServers": {"mcp-time": {"type": kind, "url": ep.url, "headers": AUTH}}}
    assert rendered.commands == [] and rendered.body() == rendered.document
    assert default_document(ep) == rendered.document
    never_streamable_http(rendered)


@pytest.mark.parametrize(("ep", "kind"), BOTH)
def test_claude_code_file_and_mcp_add_line(ep, kind):
    rendered = render(ClientKind.claude_code, [ep])
    assert rendered.document == {"mcpServers": {"mcp-time": {"type": kind, "url": ep.url, "headers": AUTH}}}
    (line,) = rendered.shell_lines()
    assert shlex.split(line) == [
        "claude", "mcp", "add", "--scope", "user", "--transport", kind, "mcp-time", ep.url,
        "--header", f"Authorization: Bearer {TOKEN}",
    ]  # fmt: skip
    assert rendered.body() == rendered.document  # the API answers the file, ready to save as .mcp.json
    never_streamable_http(rendered)


@pytest.mark.parametrize(("ep", "kind"), BOTH)
def test_cursor_has_url_and_headers_only(ep, kind):
    rendered = render(ClientKind.cursor, [ep])
    assert rendered.document == {"mcpServers": {"mcp-time": {"url": ep.url, "headers": AUTH}}}
    assert rendered.commands == []


@pytest.mark.parametrize(("ep", "kind"), BOTH)
def test_vscode_uses_a_servers_block(ep, kind):
    rendered = render(ClientKind.vscode, [ep])
    assert rendered.document == {"servers": {"mcp-time": {"type": kind, "url": ep.url, "headers": AUTH}}}
    never_streamable_http(rendered)


@pytest.mark.parametrize(("ep", "pinned"), [(HTTP, "http-only"), (SSE, "sse-only")])
def test_claude_desktop_is_an_mcp_remote_stdio_entry_with_the_token_in_env(ep, pinned):
    rendered = render(ClientKind.claude_desktop, [ep])
    entry = rendered.document["mcpServers"]["mcp-time"]
    var = token_variable("mcp-time")
    assert var == "MCPFC_TOKEN_MCP_TIME"
    assert entry == {
        "command": "npx",
        "args": ["mcp-remote", ep.url, "--header", f"Authorization:${{{var}}}", "--transport", pinned],
        "env": {var: f"Bearer {TOKEN}"},
    }
    assert "url" not in entry  # Claude Desktop's file ignores url entries
    assert TOKEN not in " ".join(entry["args"])  # the token lives in env only


def test_claude_desktop_allows_plain_http_of_the_local_stack():
    local = Endpoint("demo", "http://127.0.0.1:8931/fn/demo/mcp", Transport.streamable_http, {})
    entry = render(ClientKind.claude_desktop, [local]).document["mcpServers"]["demo"]
    assert entry == {
        "command": "npx",
        "args": ["mcp-remote", local.url, "--transport", "http-only", "--allow-http"],
    }


@pytest.mark.parametrize(("ep", "kind"), BOTH)
def test_inspector_is_a_cli_command(ep, kind):
    rendered = render(ClientKind.inspector, [ep])
    assert rendered.document is None
    (argv,) = rendered.commands
    assert argv[:7] == [
        "npx",
        "-y",
        "@modelcontextprotocol/inspector@0.17.5",
        "--cli",
        ep.url,
        "--transport",
        kind,
    ]
    assert argv[7:9] == ["--header", f"Authorization: Bearer {TOKEN}"]
    assert argv[-2:] == ["--method", "tools/list"]
    body = rendered.body()
    assert body == {"commands": [{"argv": argv, "shell": shlex.join(argv)}]}
    never_streamable_http(rendered)


def test_anonymous_endpoints_have_no_headers_anywhere():
    ep = Endpoint("open", f"{BASE}/mcp", Transport.streamable_http)
    assert render(ClientKind.json, [ep]).document == {"mcpServers": {"open": {"type": "http", "url": ep.url}}}
    assert render(ClientKind.cursor, [ep]).document == {"mcpServers": {"open": {"url": ep.url}}}
    assert "--header" not in render(ClientKind.claude_code, [ep]).commands[0]
    assert "env" not in render(ClientKind.claude_desktop, [ep]).document["mcpServers"]["open"]


@pytest.mark.parametrize("client", list(ClientKind))
def test_several_endpoints_merge_into_one_document(client):
    other = Endpoint("mcp-fetch", "https://mcp-fetch-x.cn-hangzhou.fcapp.run/sse", Transport.sse, AUTH)
    rendered = render(client, [HTTP, other])
    if rendered.document is None:
        assert [argv[4] for argv in rendered.commands] == [HTTP.url, other.url]
    else:
        (servers,) = rendered.document.values()
        assert list(servers) == ["mcp-time", "mcp-fetch"]
    assert rendered.as_json()["client"] == client.value


def test_the_default_form_reads_back_into_the_same_endpoints():
    merged = render(ClientKind.json, [HTTP, Endpoint("b", f"{BASE}/sse", Transport.sse)]).document
    assert endpoints_from(merged) == [HTTP, Endpoint("b", f"{BASE}/sse", Transport.sse)]
    # what older APIs answered is still understood
    old = {"mcpServers": {"x": {"type": "streamable-http", "url": f"{BASE}/mcp"}}}
    assert endpoints_from(old)[0].transport == Transport.streamable_http


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"mcpServers": []},
        {"mcpServers": {"x": {"type": "http"}}},
        {"mcpServers": {"x": {"type": "ws", "url": "u"}}},
        {"mcpServers": {"x": {"url": "u", "headers": ["a"]}}},
    ],
)
def test_a_document_that_is_not_the_default_form_is_refused(doc):
    with pytest.raises(BadDocument):
        endpoints_from(doc)
