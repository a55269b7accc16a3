"""Every command documents itself; the server-side commands are only checked for --help here."""

from __future__ import annotations

import pytest

from deployer import __version__ as VERSION
from deployer.client import UNREACHABLE_HINT

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
    "keys list",
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
        == f"error: cannot reach the mcp-fc API at http://127.0.0.1:{port}: connection refused"
        + UNREACHABLE_HINT
        + "\n"
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


@pytest.mark.parametrize("command", ["status", "deploy", "dev", "keys create", "delete"])
def test_flags_show_no_value_type(cli, command):
    """A flag takes no value: its help line must not read `--json <bool>`."""
    out = cli(*command.split(), "--help").stdout
    assert "<bool>" not in out
    assert "<str>" in out or "<int>" in out or "<path>" in out, "options with a value keep their type"


@pytest.mark.parametrize(
    "args",
    [
        ["deploy", "time", "--image", "registry.cn-hangzhou.aliyuncs.com/ns/t:1", "mcp-server-time"],
        ["deploy", "time", "mcp-server-time", "--local-timezone", "UTC"],
        ["redeploy", "time", "mcp-server-time"],
    ],
)
def test_a_server_command_without_the_double_dash_says_where_it_goes(api, cli, args):
    result = cli(*args)
    assert result.exit_code == 2
    assert "command after `--`" in _flat(result.output)
    assert "Got unexpected extra argument" not in _flat(result.output)
    assert not api.calls, "nothing is sent"


def test_extra_words_before_the_double_dash_are_named(api, cli):
    result = cli(
        "deploy", "time", "stray", "--image", "registry.cn-hangzhou.aliyuncs.com/ns/t:1", "--", "srv"
    )
    assert result.exit_code == 2
    assert "stray before `--`" in _flat(result.output) and not api.calls


def _flat(text: str) -> str:
    """Typer boxes and wraps usage errors: the words, one space apart."""
    return " ".join(text.replace("│", " ").split())


#: Long-running service processes: they print logs, not a result (`--json` would have nothing to print).
PROCESSES = {"api", "worker", "emulator", "dev", "beat"}


def _leaf_commands(command, path=()):
    sub = getattr(command, "commands", None)
    if sub is None:
        yield " ".join(path), command
        return
    for name, child in sub.items():
        yield from _leaf_commands(child, (*path, name))


def test_every_command_takes_json():
    import typer

    from deployer.cli.main import app

    missing = [
        path
        for path, command in _leaf_commands(typer.main.get_command(app))
        if path not in PROCESSES and not any("--json" in p.opts for p in command.params)
    ]
    assert not missing, f"commands without --json: {missing}"
