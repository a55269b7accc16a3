"""Every command documents itself; the server-side commands are only checked for --help here."""

from __future__ import annotations

import pytest

from deployer.client import VERSION

COMMANDS = [
    "deploy",
    "redeploy",
    "status",
    "list",
    "delete",
    "cancel",
    "config",
    "events",
    "logs",
    "reconcile",
    "emulator",
    "api",
    "worker",
    "dev",
    "keys",
    "keys create",
    "keys revoke",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_help(cli, command):
    result = cli(*command.split(), "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.stdout


def test_root_help_lists_the_commands(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for name in ("deploy", "redeploy", "status", "list", "delete", "config", "keys", "dev", "emulator"):
        assert name in result.stdout


def test_deploy_usage_shows_the_server_command(cli):
    assert "-- SERVER_CMD" in cli("deploy", "--help").stdout


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"mcp-fc {VERSION}"


def test_unknown_command_is_a_usage_error(cli):
    assert cli("deplyo").exit_code == 2


def test_unexpected_bugs_are_one_line_without_debug(api, cli, monkeypatch):
    import deployer.client

    monkeypatch.delenv("MCPFC_DEBUG")

    def boom(self, *a, **k):
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr(deployer.client.APIClient, "get", boom)
    result = cli("status", "x")
    assert result.exit_code == 1
    assert result.stderr == "error: unexpected RuntimeError: kaboom (set MCPFC_DEBUG=1 for the traceback)\n"


def test_a_real_closed_port_exits_3(cli):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = cli("--api-url", f"http://127.0.0.1:{port}", "status", "x")
    assert result.exit_code == 3
    assert (
        result.stderr
        == f"error: cannot reach the mcp-fc API at http://127.0.0.1:{port}: connection refused\n"
    )


def test_console_script_exit_codes(tmp_path):
    """The installed `mcp-fc` entry point: usage errors and validation errors exit 2, on one line."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    exe = shutil.which("mcp-fc") or str(Path(sys.executable).with_name("mcp-fc"))
    bad = subprocess.run(
        [exe, "deploy", "x", "--image", "registry.example.com/a/b:1", "--memory", "100", "--", "srv"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert bad.returncode == 2
    assert bad.stdout == "" and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1
    usage = subprocess.run([exe, "status"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert usage.returncode == 2


def test_broken_settings_are_a_one_line_usage_error(cli, monkeypatch):
    monkeypatch.setenv("MCPFC_API_PORT", "not-a-port")
    result = cli("status", "x")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid settings") and "api_port" in result.stderr
    assert result.stderr.count("\n") == 1
