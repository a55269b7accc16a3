"""SIGTERM and SIGHUP stop `mcp-fc dev` as Ctrl-C does: none of its processes (the worker, the function
instances) is left."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT_SCALE, alive, wait_until
from tests.e2e.test_dev_demo import read_lines
from tests.e2e.test_emulator_runtime import family
from tests.integration.conftest import free_port

pytestmark = pytest.mark.e2e

MCP_FC = str(Path(sys.executable).parent / "mcp-fc")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_on_dev_leaves_none_of_its_processes(tmp_path, sig):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCPFC_", "ALIBABA_CLOUD_"))}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["MCPFC_EMULATOR_PENDING_S"] = "0.3"
    env["MCPFC_EMULATOR_START_TIMEOUT_S"] = os.environ["MCPFC_EMULATOR_START_TIMEOUT_S"]
    env["MCPFC_PROBE_TIMEOUT_S"] = str(30 * TIMEOUT_SCALE)
    proc = subprocess.Popen(
        [MCP_FC, "dev", "--demo", "--port", str(free_port()), "--data-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    out: queue.Queue = queue.Queue()
    threading.Thread(target=read_lines, args=(proc.stdout, out), daemon=True).start()
    threading.Thread(target=read_lines, args=(proc.stderr, queue.Queue()), daemon=True).start()
    try:
        deadline = time.monotonic() + 180 * TIMEOUT_SCALE
        while True:  # the demo is deployed: worker and function instance (mcp-proxy + server) run
            assert time.monotonic() < deadline and proc.poll() is None, "the demo was not deployed"
            try:
                line = out.get(timeout=1)
            except queue.Empty:
                continue
            assert line is not None
            if line.startswith(("MCP URL:", "MCP SSE URL:")):
                break
        tree = family(proc.pid) - {proc.pid}
        assert len(tree) >= 3, tree  # the worker, and the instance's bridge and server at least
        proc.send_signal(sig)
        proc.wait(60 * TIMEOUT_SCALE)
        wait_until(
            lambda: not [p for p in tree if alive(p)], 30, what=f"every process of dev gone after {sig.name}"
        )
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0
