"""The bridge on its own (real processes, no emulator): what FC relies on it for.

Its health route fails while the stdio server does not answer (SIGSTOP) and recovers; it ends with the
server's exit code when the server dies; the server gets the bridge's whole environment (the function's
env and secret env); a browser Origin outside `--allow-origin` gets 403 (MCP 2025-11-25); only
`--transport sse` adds `/sse`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_until
from tests.e2e.test_emulator_runtime import family
from tests.integration.conftest import free_port
from tests.mcp_clients import MODERN, use

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
BRIDGE = str(BIN / "mcp-fc-bridge")
ENV_SERVER = [sys.executable, str(Path(__file__).with_name("env_tool_server.py"))]


class Running:
    def __init__(self, *flags: str, server: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        argv = [BRIDGE, "--port", str(self.port), "--host", "127.0.0.1", *flags, "--", *server]
        self.proc = subprocess.Popen(
            argv, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(self.listening, 60, what="the bridge listens")

    def listening(self) -> bool:
        assert self.proc.poll() is None, self.proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        try:
            httpx.get(self.url + "/status", timeout=2)
            return True
        except httpx.HTTPError:
            return False

    def server_pid(self) -> int:
        children = family(self.proc.pid) - {self.proc.pid}
        assert len(children) == 1, children
        return children.pop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def time_bridge() -> Iterator[Running]:
    running = Running(server=[str(BIN / "mcp-server-time")])
    yield running
    running.stop()


def test_health_fails_while_the_server_hangs_and_recovers(time_bridge):
    assert httpx.get(time_bridge.url + "/status", timeout=10).json()["status"] == "ok"
    server = time_bridge.server_pid()
    os.kill(server, signal.SIGSTOP)
    try:
        answer = httpx.get(time_bridge.url + "/status", timeout=30)
        assert answer.status_code == 503 and "did not answer ping" in answer.json()["reason"]
    finally:
        os.kill(server, signal.SIGCONT)
    wait_until(lambda: httpx.get(time_bridge.url + "/status", timeout=10).status_code == 200, 30)


def test_the_bridge_ends_with_its_servers_exit_code(time_bridge):
    os.kill(time_bridge.server_pid(), signal.SIGKILL)
    assert time_bridge.proc.wait(30) == 128 + signal.SIGKILL
    assert b"the MCP server was killed by signal 9" in time_bridge.proc.stderr.read()  # type: ignore[union-attr]


def test_a_server_that_exits_at_start_ends_the_bridge_with_its_code():
    port = free_port()
    crash = [sys.executable, "-c", "import sys; print('no config', file=sys.stderr); sys.exit(3)"]
    done = subprocess.run(
        [BRIDGE, "--port", str(port), "--host", "127.0.0.1", "--", *crash], capture_output=True, timeout=120
    )
    assert done.returncode == 3, done
    assert b"no config" in done.stderr and b"exited with code 3" in done.stderr


def test_the_server_gets_the_functions_environment_and_sse_is_opt_in():
    running = Running(server=ENV_SERVER, env={"SOME_API_KEY": "k-123"})
    try:
        used = asyncio.run(
            use(running.url + "/mcp", tool="env", arguments={"name": "SOME_API_KEY"}, mode=MODERN)
        )
        assert used.text == "k-123"
        assert httpx.get(running.url + "/sse", timeout=10).status_code == 404
    finally:
        running.stop()
    running = Running("--transport", "sse", server=ENV_SERVER, env={"SOME_API_KEY": "k-456"})
    try:
        used = asyncio.run(use(running.url + "/sse", "sse", tool="env", arguments={"name": "SOME_API_KEY"}))
        assert used.text == "k-456"
        # the stateless endpoint is there too, so converting to streamable-http breaks no client
        assert asyncio.run(use(running.url + "/mcp", tool=None, mode=MODERN)).tools == ["env"]
    finally:
        running.stop()


def test_an_origin_outside_allow_origin_gets_403(time_bridge):
    running = Running("--allow-origin", "https://app.example", server=[str(BIN / "mcp-server-time")])
    try:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        bad = httpx.post(
            running.url + "/mcp", json=body, headers={"Origin": "https://evil.example"}, timeout=10
        )
        assert bad.status_code == 403
        good = asyncio.run(
            use(running.url + "/mcp", headers={"Origin": "https://app.example"}, mode="legacy")
        )
        assert "get_current_time" in good.tools
    finally:
        running.stop()
