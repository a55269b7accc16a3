"""Which server commands an image-less deploy packages (schemas/package.py)."""

from __future__ import annotations

import pytest

from schemas.package import Ecosystem, parse_package_command


@pytest.mark.parametrize(
    ("argv", "ecosystem", "name", "spec", "program", "args", "pinned"),
    [
        (
            ["npx", "-y", "@modelcontextprotocol/server-github"],
            "npm",
            "@modelcontextprotocol/server-github",
            "@modelcontextprotocol/server-github",
            "server-github",
            [],
            False,
        ),
        (["npx", "pkg@1.2.3", "--flag"], "npm", "pkg", "pkg@1.2.3", "pkg", ["--flag"], True),
        (["npx", "--yes", "pkg@latest"], "npm", "pkg", "pkg@latest", "pkg", [], False),
        (
            ["uvx", "mcp-server-time", "--local-timezone", "UTC"],
            "pypi",
            "mcp-server-time",
            "mcp-server-time",
            "mcp-server-time",
            ["--local-timezone", "UTC"],
            False,
        ),
        (
            ["uvx", "mcp-server-time@2026.10.19"],
            "pypi",
            "mcp-server-time",
            "mcp-server-time==2026.10.19",
            "mcp-server-time",
            [],
            True,
        ),
        (
            ["uvx", "--from", "mcp-server-git==1.0", "mcp-server-git"],
            "pypi",
            "mcp-server-git",
            "mcp-server-git==1.0",
            "mcp-server-git",
            [],
            True,
        ),
        (["/usr/bin/uvx", "--from", "./local", "tool"], "pypi", None, "./local", "tool", [], False),
    ],
)
def test_package_commands(argv, ecosystem, name, spec, program, args, pinned):
    found = parse_package_command(argv)
    assert found is not None
    assert (found.ecosystem, found.name, found.spec, found.program, found.args, found.pinned) == (
        Ecosystem(ecosystem),
        name,
        spec,
        program,
        args,
        pinned,
    )


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["node", "server.js"],
        ["npx"],
        ["npx", "-c", "echo"],
        ["npx", "--package", "x", "y"],
        ["uvx", "--with", "x", "y"],
        ["uvx"],
        ["npx", "Bad Name"],
        ["sh", "-c", "npx x"],
    ],
)
def test_other_commands_are_not_packaged(argv):
    assert parse_package_command(argv) is None
