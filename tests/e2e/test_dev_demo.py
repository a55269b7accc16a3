"""The README's first command: `mcp-fc dev --demo` deploys the sample server on the embedded stack and
prints a URL and a header that the official MCP client uses to list tools and call get_current_time."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TIMEOUT_SCALE
from tests.integration.conftest import BUILD_CACHE, free_port
from tests.mcp_clients import use

pytestmark = pytest.mark.e2e

MCP_FC = str(Path(sys.executable).parent / "mcp-fc")


def read_lines(stream, sink: queue.Queue) -> None:
    for raw in iter(stream.readline, b""):
        sink.put(raw.decode(errors="replace").rstrip("\n"))
    sink.put(None)


async def list_and_call(url: str, headers: dict[str, str], mode: str = "auto") -> tuple[list[str], str]:
    used = await use(url, "streamable-http", headers, mode=mode, arguments={"timezone": "Europe/Paris"})
    return used.tools, used.text


def processes_using(directory: Path) -> list[int]:
    """Processes with a file open under directory (the emulated functions log into the data dir)."""
    found = []
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            targets = [os.readlink(fd) for fd in (proc_dir / "fd").iterdir()]
        except OSError:
            continue
        if any(t.startswith(str(directory)) for t in targets):
            found.append(int(proc_dir.name))
    return found


def test_dev_demo_prints_a_working_url_and_header(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCPFC_", "ALIBABA_CLOUD_"))}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["MCPFC_EMULATOR_PENDING_S"] = "0.3"
    env["MCPFC_EMULATOR_START_TIMEOUT_S"] = os.environ["MCPFC_EMULATOR_START_TIMEOUT_S"]
    env["MCPFC_PROBE_TIMEOUT_S"] = str(30 * TIMEOUT_SCALE)  # a cold start on a loaded host
    # The demo is image-less: its build's downloads and package are cached between runs.
    env["MCPFC_BUILD_TOOL_CACHE_DIR"] = str(BUILD_CACHE / "tools")
    env["MCPFC_BUILD_CACHE_DIR"] = str(BUILD_CACHE / "packages")
    port = free_port()
    proc = subprocess.Popen(
        [MCP_FC, "dev", "--demo", "--port", str(port), "--data-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    out: queue.Queue = queue.Queue()
    err: queue.Queue = queue.Queue()
    threading.Thread(target=read_lines, args=(proc.stdout, out), daemon=True).start()
    threading.Thread(target=read_lines, args=(proc.stderr, err), daemon=True).start()
    seen: list[str] = []
    url = header = None
    try:
        deadline = time.monotonic() + 180 * TIMEOUT_SCALE
        while not (url and header):
            assert time.monotonic() < deadline, f"no URL and header printed: {seen}"
            try:
                line = out.get(timeout=1)
            except queue.Empty:
                assert proc.poll() is None, f"mcp-fc dev exited {proc.returncode}: {seen} {list(err.queue)}"
                continue
            assert line is not None, f"stdout closed: {seen} {list(err.queue)}"
            seen.append(line)
            if line.startswith("MCP URL:"):
                url = line.split(":", 1)[1].split()[0]
                assert url.endswith("/mcp"), line  # the default transport: streamable HTTP
            if line.startswith("Header:"):
                header = line.split(":", 1)[1].strip()
        name, value = header.split(":", 1)
        # the printed URL serves clients of both eras: pinned to 2026-07-28, the handshake, and auto
        for mode in ("2026-07-28", "legacy", "auto"):
            tools, text = asyncio.run(list_and_call(url, {name.strip(): value.strip()}, mode))
            assert "get_current_time" in tools, mode
            assert "Europe/Paris" in text, mode
        assert processes_using(tmp_path), "the function runs as a local process logging into the data dir"
        # On the product's defaults, the function FC runs gets a quick liveness verdict (issue 26 #14: 2 s x 30
        # cost two minutes of failed calls to a hung server); the start's patience is the bridge's late bind.
        state = json.loads((tmp_path / "emulator-state.json").read_text())
        (demo,) = [f for f in state["functions"] if f["name"] == "mcp-fc-demo"]
        check = demo["spec"]["customRuntimeConfig"]["healthCheckConfig"]
        assert check["periodSeconds"] * check["failureThreshold"] + check["timeoutSeconds"] <= 15, check
        assert "API key" in "\n".join(err.queue), "the banner shows the API key"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert proc.returncode == 0, list(err.queue)[-20:]
    # nothing is left behind: the worker and the emulated function's bridge stopped with it
    assert subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True).stdout == b""
    assert processes_using(tmp_path) == []


class Dev:
    """`mcp-fc dev --demo` on a port and data dir of the test's, its output read line by line."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MCPFC_", "ALIBABA_CLOUD_"))}
        self.env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + self.env.get("PATH", "")
        dev_env = dict(self.env)
        dev_env["MCPFC_EMULATOR_PENDING_S"] = "0.3"
        dev_env["MCPFC_EMULATOR_START_TIMEOUT_S"] = os.environ["MCPFC_EMULATOR_START_TIMEOUT_S"]
        dev_env["MCPFC_PROBE_TIMEOUT_S"] = str(30 * TIMEOUT_SCALE)
        self.proc = subprocess.Popen(
            [MCP_FC, "dev", "--demo", "--port", str(port), "--data-dir", str(data_dir)],
            env=dev_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.out: queue.Queue = queue.Queue()
        self.err: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=read_lines, args=(self.proc.stdout, self.out), daemon=True).start()
        threading.Thread(target=read_lines, args=(self.proc.stderr, self.err), daemon=True).start()

    def line(self, startswith: str, *, stream: str = "out") -> str:
        source = self.out if stream == "out" else self.err
        deadline = time.monotonic() + 180 * TIMEOUT_SCALE
        while True:
            assert time.monotonic() < deadline, f"no {startswith!r} line: {self.seen}"
            try:
                line = source.get(timeout=1)
            except queue.Empty:
                assert self.proc.poll() is None, f"mcp-fc dev exited {self.proc.returncode}: {self.seen}"
                continue
            assert line is not None, f"{stream} closed: {self.seen}"
            self.seen.append(line)
            if line.strip().startswith(startswith):
                return line.strip()

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(60 * TIMEOUT_SCALE)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise


def test_the_try_line_runs_as_printed_and_a_rerun_demo_leaves_the_users_time_alone(tmp_path):
    """`mcp-fc dev --port N` prints a `try` line that works as printed (it sets MCPFC_API_URL: without it the
    CLI calls port 8000), issue 26 #8; rerunning the quick start deploys the demo under its own name and
    never over the user's `time` (#7)."""
    port = free_port()
    dev = Dev(tmp_path, port)
    try:
        try_line = dev.line("try", stream="err")
        assert f"MCPFC_API_URL=http://127.0.0.1:{port}" in try_line, try_line
        demo = dev.line("Deployed ")
        assert not demo.startswith("Deployed time"), demo
        # the try line as printed, NAME and SERVER_CMD filled in, in a shell without MCPFC_* variables
        words = try_line.split()[1:]
        assigned = dict(w.split("=", 1) for w in words if "=" in w and w.startswith("MCPFC_"))
        command = ["time", "--", "mcp-server-time", "--local-timezone", "Asia/Shanghai"]
        mine = subprocess.run(
            [MCP_FC, "deploy", "--json", *command],
            env={**dev.env, **assigned},
            capture_output=True,
            text=True,
            timeout=180 * TIMEOUT_SCALE,
        )
        assert mine.returncode == 0, (mine.stdout[-2000:], mine.stderr[-2000:])
        users_time = json.loads(mine.stdout)
        assert "already had a deployment" not in mine.stderr, "the user's time replaced the demo"
    finally:
        dev.stop()
    again = Dev(tmp_path, port)
    try:
        assert again.line("Deployed ").startswith("Deployed mcp-fc-demo")
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {assigned['MCPFC_API_KEY']}"},
        ) as http:
            now = http.get("/v1/deployments/time").json()
        assert now["spec"]["command"] == users_time["spec"]["command"]
        assert now["updated_at"] == users_time["updated_at"] and now["attempts"] == users_time["attempts"]
    finally:
        assert again.stop(signal.SIGTERM) == 0
