"""The generated container command really makes the bridge listen on 0.0.0.0:8080.

Runs the real bridge (mcp-fc-bridge) with the spec builder's flags in a private network namespace (so port
8080 on the host does not matter) and reads the sockets the process holds from /proc. mcp-proxy's old
`--sse-port/--sse-host` flags, which mcp-proxy >= 0.8.1 silently ignored (it then listened on a random
loopback port), are refused by the bridge with a usage error instead.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deployer.fc import spec
from schemas import DeployRequest
from tests.conftest import TIMEOUT_SCALE

pytestmark = pytest.mark.e2e

LISTEN = "0A"


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """(address, port) pairs the process listens on, read from its own network namespace."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state == LISTEN and inode in inodes:
                addr_hex, port_hex = local.split(":")
                addr = "0.0.0.0" if set(addr_hex) == {"0"} else addr_hex
                if addr_hex == "0100007F":
                    addr = "127.0.0.1"
                found.add((addr, int(port_hex, 16)))
    return found


def run_until_listening(argv: list[str], timeout: float = 30.0) -> set[tuple[str, int]]:
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    # A private network namespace: port 8080 may be taken on the host.
    prefix = ["unshare", "-n"] if os.geteuid() == 0 and shutil.which("unshare") else []
    proc = subprocess.Popen(prefix + argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"the bridge exited: {proc.stderr.read().decode()[-2000:]}")
            sockets = listening_sockets(proc.pid)
            if sockets:
                return sockets
            time.sleep(0.1)  # polling the process's socket table, not synchronising on time
        raise AssertionError("the bridge never listened")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_generated_command_binds_all_interfaces_on_8080():
    req = DeployRequest(
        name="mcp-test1",
        image="registry.cn-beijing.aliyuncs.com/biyao/public:python-mcp-server-sentry-2025.1.14-v7",
        command=["mcp-server-time"],
        auth={"type": "anonymous"},
    )
    command = spec.create_function_input(req).custom_container_config.command
    assert command[0] == "mcp-fc-bridge"
    assert ("0.0.0.0", 8080) in run_until_listening(command)
    sse = spec.create_function_input(req.model_copy(update={"transport": "sse"})).custom_container_config
    assert ("0.0.0.0", 8080) in run_until_listening(sse.command)


def test_deprecated_sse_flags_are_refused_not_ignored():
    bridge = str(Path(sys.executable).parent / "mcp-fc-bridge")
    old = [bridge, "--sse-port", "8080", "--sse-host", "0.0.0.0", "--", "mcp-server-time"]
    done = subprocess.run(old, capture_output=True, timeout=60 * TIMEOUT_SCALE)
    assert done.returncode == 2, done
    assert b"unrecognized arguments: --sse-port" in done.stderr
