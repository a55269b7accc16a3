"""Read a Claude Desktop / Cursor style `mcp.json` and turn its stdio servers into deploy requests.

    {"mcpServers": {"github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                               "env": {"GITHUB_TOKEN": "..."}},
                    "remote": {"url": "https://..."}}}

Servers with a `url` (or a `type` other than stdio) are already remote and are skipped. The `env` of a
local server usually holds API tokens, so it is sent as `secret_env` (encrypted, never shown).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployer.errors import SpecError
from schemas.limits import FUNCTION_NAME_RE


@dataclass(frozen=True)
class StdioServer:
    key: str  # the name in mcp.json
    name: str  # a valid FC function name derived from it
    command: list[str]
    env: dict[str, str]


@dataclass(frozen=True)
class Skipped:
    key: str
    reason: str


def function_name(key: str, prefix: str = "") -> str:
    """`My Server (beta)` → `my-server-beta`: FC's 1-64 letters, digits, `_` and `-`, starting with a letter."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{prefix}{key}").strip("-_").lower()
    slug = re.sub(r"-{2,}", "-", slug)
    if not slug or not slug[0].isalpha():
        slug = f"mcp-{slug}".rstrip("-")
    slug = slug[:64].rstrip("-")
    if not FUNCTION_NAME_RE.match(slug):
        raise SpecError(f"cannot make a function name from {key!r}")
    return slug


def parse(data: Any, *, prefix: str = "") -> tuple[list[StdioServer], list[Skipped]]:
    if not isinstance(data, dict) or not isinstance(data.get("mcpServers"), dict):
        raise SpecError('an mcp.json needs an object "mcpServers": {name: {command, args, env}}')
    servers: list[StdioServer] = []
    skipped: list[Skipped] = []
    seen: dict[str, str] = {}
    for key, entry in data["mcpServers"].items():
        if not isinstance(entry, dict):
            skipped.append(Skipped(key, "not an object"))
            continue
        kind = str(entry.get("type") or entry.get("transport") or "stdio").lower()
        if entry.get("url") or kind not in ("stdio", ""):
            skipped.append(Skipped(key, "already a remote server (has a url)"))
            continue
        if entry.get("disabled") is True:
            skipped.append(Skipped(key, "disabled"))
            continue
        command = entry.get("command")
        args = entry.get("args") or []
        if not isinstance(command, str) or not command.strip():
            skipped.append(Skipped(key, "no command"))
            continue
        if not isinstance(args, list) or not all(isinstance(a, str | int | float) for a in args):
            skipped.append(Skipped(key, "args must be a list of strings"))
            continue
        env = entry.get("env") or {}
        if not isinstance(env, dict):
            skipped.append(Skipped(key, "env must be an object"))
            continue
        name = function_name(key, prefix)
        if name in seen:
            raise SpecError(f"servers {seen[name]!r} and {key!r} both become the function name {name!r}")
        seen[name] = key
        servers.append(
            StdioServer(
                key=key,
                name=name,
                command=[command, *map(str, args)],
                env={str(k): str(v) for k, v in env.items()},
            )
        )
    return servers, skipped


def load(path: str | Path, *, prefix: str = "") -> tuple[list[StdioServer], list[Skipped]]:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        # Position only: the file may hold tokens.
        raise SpecError(f"{path} is not JSON (line {exc.lineno}, column {exc.colno})") from None
    return parse(data, prefix=prefix)
