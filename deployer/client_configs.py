"""What each MCP client reads to reach deployed endpoints: pure rendering, used by the API and the CLI.

Each form is the one its client documents (shared/reference/mcp-protocol-2026.md section 4):

    json / default  {"mcpServers": {N: {"type": "http"|"sse", "url", "headers"}}}  Claude Code reads it as is,
                    Cursor too (it ignores `type`); the API's default answer, and what the CLI renders from
    claude-code     the same document, plus `claude mcp add --scope user --transport http N URL --header ...`
    cursor          {"mcpServers": {N: {"url", "headers"}}}
    vscode          {"servers": {N: {"type": "http"|"sse", "url", "headers"}}}
    claude-desktop  a stdio entry: `npx mcp-remote URL --header Authorization:${VAR}` with the token in `env`
                    (Claude Desktop's config file ignores `url` entries)
    inspector       no file: `npx -y @modelcontextprotocol/inspector@0.17.5 --cli URL --transport http --header ...`

`"type": "streamable-http"` is never written: Claude Code does not honour it (anthropics/claude-code#32708).
The documents carry endpoint tokens, as the client-config route is meant to hand them out.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from schemas import Transport


class ClientKind(StrEnum):
    claude_code = "claude-code"
    cursor = "cursor"
    vscode = "vscode"
    claude_desktop = "claude-desktop"
    inspector = "inspector"
    json = "json"


#: The `type` each client's file uses for a transport (never "streamable-http").
TYPE_OF = {Transport.streamable_http: "http", Transport.sse: "sse"}
TRANSPORT_OF = {
    "http": Transport.streamable_http,
    "streamable-http": Transport.streamable_http,
    "sse": Transport.sse,
}

# Pinned (issue 26 #6): unpinned, npx on Node < 22.7.5 picks 0.15.0, the newest whose `engines` it
# satisfies, which has no --header and fails ("Arguments cannot be passed to a URL-based MCP server").
# 0.17.5 declares node >=22.7.5; its --cli listed tools with --header on Node 20.20 too (checked by hand).
INSPECTOR_VERSION = "0.17.5"
INSPECTOR = f"@modelcontextprotocol/inspector@{INSPECTOR_VERSION}"
INSPECTOR_NODE = "22.7.5"
INSPECTOR_NOTE = (
    f"the MCP Inspector {INSPECTOR_VERSION} needs Node.js {INSPECTOR_NODE} or newer (`node --version`); "
    "an unpinned npx on an older Node picks 0.15.0, which has no --header"
)
MCP_REMOTE = "mcp-remote"


class BadDocument(ValueError):
    """A client-config document that is not the default `mcpServers` form."""


@dataclass(frozen=True)
class Endpoint:
    """One deployment as a client reaches it: its MCP URL for its transport and the headers to send."""

    name: str
    url: str
    transport: Transport
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rendered:
    """A client's form: the file it reads (None when it takes flags only) and commands that add or open the
    servers (argv lists; `shell_lines` quotes them for a terminal)."""

    client: ClientKind
    document: dict[str, Any] | None
    commands: list[list[str]]

    def shell_lines(self) -> list[str]:
        return [shlex.join(argv) for argv in self.commands]

    def body(self) -> dict[str, Any]:
        """What the API answers: the document itself (ready to save as the client's file), or, for a
        client without one, its commands."""
        if self.document is not None:
            return self.document
        return {"commands": [{"argv": argv, "shell": shlex.join(argv)} for argv in self.commands]}

    def as_json(self) -> dict[str, Any]:
        """Everything, for `mcp-fc config --json`."""
        return {"client": self.client.value, "config": self.document, "commands": self.shell_lines()}


def render(client: ClientKind, endpoints: Iterable[Endpoint]) -> Rendered:
    """The form `client` reads for these endpoints, merged into one document (later names win)."""
    eps = list({ep.name: ep for ep in endpoints}.values())
    if client in (ClientKind.json, ClientKind.claude_code):
        document: dict[str, Any] | None = {"mcpServers": {ep.name: _typed(ep) for ep in eps}}
        commands = [_claude_mcp_add(ep) for ep in eps] if client == ClientKind.claude_code else []
        return Rendered(client, document, commands)
    if client == ClientKind.cursor:
        return Rendered(client, {"mcpServers": {ep.name: _untyped(ep) for ep in eps}}, [])
    if client == ClientKind.vscode:
        return Rendered(client, {"servers": {ep.name: _typed(ep) for ep in eps}}, [])
    if client == ClientKind.claude_desktop:
        return Rendered(client, {"mcpServers": {ep.name: _mcp_remote(ep) for ep in eps}}, [])
    if client == ClientKind.inspector:
        return Rendered(client, None, [_inspector(ep) for ep in eps])
    raise ValueError(f"unknown client {client!r}")


def default_document(endpoint: Endpoint) -> dict[str, Any]:
    return render(ClientKind.json, [endpoint]).document or {}


def endpoints_from(document: Mapping[str, Any]) -> list[Endpoint]:
    """Read the default form back (as the API answers it) so the CLI can render any client's form from it.
    `"type": "streamable-http"` (what older APIs wrote) is read as streamable HTTP."""
    servers = document.get("mcpServers")
    if not isinstance(servers, Mapping):
        raise BadDocument("no mcpServers object")
    out = []
    for name, entry in servers.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("url"), str):
            raise BadDocument(f"the entry {name!r} has no url")
        kind = entry.get("type", "http")
        if kind not in TRANSPORT_OF:
            raise BadDocument(f"the entry {name!r} has an unknown type {kind!r}")
        headers = entry.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise BadDocument(f"the entry {name!r} has headers that are not an object")
        out.append(
            Endpoint(
                str(name), entry["url"], TRANSPORT_OF[kind], {str(k): str(v) for k, v in headers.items()}
            )
        )
    return out


# -- the forms ------------------------------------------------------------------------------------


def _untyped(ep: Endpoint) -> dict[str, Any]:
    entry: dict[str, Any] = {"url": ep.url}
    if ep.headers:
        entry["headers"] = dict(ep.headers)
    return entry


def _typed(ep: Endpoint) -> dict[str, Any]:
    return {"type": TYPE_OF[ep.transport], **_untyped(ep)}


def _header_flags(ep: Endpoint, sep: str = ": ") -> list[str]:
    return [arg for key, value in ep.headers.items() for arg in ("--header", f"{key}{sep}{value}")]


def _claude_mcp_add(ep: Endpoint) -> list[str]:
    # User scope (~/.claude.json): the header carries the endpoint token, and the project scope's .mcp.json
    # is a file Claude Code means to be committed (issue 26 #13).
    return [
        "claude", "mcp", "add", "--scope", "user", "--transport", TYPE_OF[ep.transport], ep.name, ep.url,
        *_header_flags(ep),
    ]  # fmt: skip


def _inspector(ep: Endpoint) -> list[str]:
    return [
        "npx",
        "-y",
        INSPECTOR,
        "--cli",
        ep.url,
        "--transport",
        TYPE_OF[ep.transport],
        *_header_flags(ep),
        "--method",
        "tools/list",
    ]


def token_variable(name: str, header: str = "Authorization") -> str:
    """The env variable a Claude Desktop entry keeps a header's value in: MCPFC_TOKEN_MCP_TIME for the
    Authorization header of mcp-time (MCPFC_<HEADER>_<NAME> for any other header)."""
    what = "TOKEN" if header.lower() == "authorization" else header
    return "MCPFC_" + re.sub(r"[^A-Z0-9]+", "_", f"{what}_{name}".upper()).strip("_")


def _mcp_remote(ep: Endpoint) -> dict[str, Any]:
    """mcp-remote's documented form: the header value comes from `env` through `${VAR}`, with no space after
    the colon (some clients split arguments on spaces); the transport is pinned so it does not probe the
    other one first; `--allow-http` because mcp-remote refuses plain http otherwise (the local stack)."""
    args = [MCP_REMOTE, ep.url]
    env: dict[str, str] = {}
    for key, value in ep.headers.items():
        var = token_variable(ep.name, key)
        env[var] = value
        args += ["--header", f"{key}:${{{var}}}"]
    args += ["--transport", "sse-only" if ep.transport == Transport.sse else "http-only"]
    if urlsplit(ep.url).scheme == "http":
        args.append("--allow-http")
    entry: dict[str, Any] = {"command": "npx", "args": args}
    if env:
        entry["env"] = env
    return entry
