"""`mcp-fc dev` refuses what it cannot do, before it starts anything: a taken port, a data dir that another
stack holds. It never says "ready" then."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from deployer.cli.devstack import lock_data_dir
from tests.conftest import TIMEOUT_SCALE
from tests.integration.conftest import free_port

pytestmark = pytest.mark.e2e

MCP_FC = str(Path(sys.executable).parent / "mcp-fc")


def run_dev(tmp_path: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCPFC_", "ALIBABA_CLOUD_"))}
    return subprocess.run(
        [MCP_FC, "dev", "--port", str(port), "--data-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120 * TIMEOUT_SCALE,
    )


def test_dev_on_a_taken_port_names_it_and_never_says_ready(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_dev(tmp_path, port)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert f"port {port}" in output and "--port" in output
    assert "is ready" not in output
    assert not (tmp_path / "worker.log").exists()  # nothing was started


def test_a_second_dev_on_a_held_data_dir_is_refused(tmp_path):
    held = lock_data_dir(tmp_path)  # as a running `mcp-fc dev` holds it
    try:
        done = run_dev(tmp_path, free_port())
    finally:
        held.close()
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert f"in use by another mcp-fc dev (pid {os.getpid()})" in output and "--data-dir" in output
    assert "is ready" not in output
