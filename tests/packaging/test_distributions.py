"""The two distributions as users get them, in fresh virtualenvs (there is no container engine here, so this
is how the Dockerfiles are checked besides reading them):

- `pip install ./bridge` alone gives a working `mcp-fc-bridge` (what runtime/Dockerfile installs), serving a
  real stdio MCP server to the official client pinned to 2026-07-28, and it brings nothing of mcp-fc;
- the service image's wheel, built from exactly what the Dockerfile's build stage copies, holds no emulator,
  carries the migrations, and from a non-editable install migrates a fresh PostgreSQL database and serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.conftest import TIMEOUT_SCALE, wait_until
from tests.mcp_clients import MODERN, use

REPO = Path(__file__).resolve().parents[2]
SERVER = REPO / "tests" / "e2e" / "named_tool_server.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path / "bin"


def _pip(bin_dir: Path, *args: str) -> None:
    done = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=600 * TIMEOUT_SCALE,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@contextlib.contextmanager
def _serve(argv: list[str], env: dict[str, str], url: str, cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:

        def up() -> bool:
            assert proc.poll() is None, (
                proc.stderr.read().decode()[-3000:] if proc.stderr else proc.returncode
            )
            try:
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=60, interval=0.1, what=f"{argv[0]} answering {url}")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_pip_install_bridge_alone_gives_a_working_mcp_fc_bridge(tmp_path: Path) -> None:
    source = shutil.copytree(
        REPO / "bridge", tmp_path / "src", ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    bin_dir = _venv(tmp_path / "venv")
    _pip(bin_dir, str(source))
    python = str(bin_dir / "python")
    for mine in ("deployer", "tasks", "schemas", "fc_emulator"):
        found = subprocess.run([python, "-c", f"import {mine}"], capture_output=True, cwd=tmp_path)
        assert found.returncode != 0, f"the bridge's venv can import {mine}"

    port = _free_port()
    # The stdio server runs on the test's own interpreter (it has the `mcp` SDK); the bridge runs alone.
    argv = [str(bin_dir / "mcp-fc-bridge"), "--port", str(port), "--host", "127.0.0.1", "--"]
    argv += [sys.executable, str(SERVER), "hello_from_the_wheel"]
    base = f"http://127.0.0.1:{port}"
    with _serve(argv, {**os.environ, "PYTHONPATH": ""}, f"{base}/status", tmp_path):
        used = asyncio.run(use(f"{base}/mcp", mode=MODERN, tool="hello_from_the_wheel", arguments={}))
        assert used.tools == ["hello_from_the_wheel"] and used.text == "hello_from_the_wheel"
        assert used.protocol == MODERN


def _dockerfile_build_copies() -> list[str]:
    """The paths the service Dockerfile's build stage copies into the wheel's source tree."""
    build_stage = (REPO / "Dockerfile").read_text().split("FROM ")[1]
    copied: list[str] = []
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", build_stage, flags=re.M):
        copied += sources.split()
    return copied


def test_the_service_wheel_has_no_emulator_and_migrates_and_serves(tmp_path: Path, postgres_url: str) -> None:
    copies = _dockerfile_build_copies()
    assert "fc_emulator" not in " ".join(copies) and "deployer" in copies, copies
    stage = tmp_path / "src"
    stage.mkdir()
    for path in copies:
        src = REPO / path
        if src.is_dir():
            shutil.copytree(src, stage / path, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, stage / path)
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            str(stage),
            "-w",
            str(wheels),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("mcp_fc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("fc_emulator/")], "the service wheel carries the emulator"
    assert "deployer/store/migrations/env.py" in names and "deployer/store/migrations/script.py.mako" in names
    assert any(n.startswith("deployer/store/migrations/versions/0001_") for n in names)

    # mcp-fc itself from the wheel, not editable; its dependencies from this venv's site-packages (a path
    # line, so this venv's editable install of mcp-fc is not picked up), which keeps the test offline-fast.
    bin_dir = _venv(tmp_path / "venv")
    _pip(bin_dir, "--no-deps", str(wheel))
    site = next((tmp_path / "venv" / "lib").glob("python3*/site-packages"))
    (site / "zz_dev_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import deployer, fc_emulator"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "No module named 'fc_emulator'" in where.stderr, where.stderr
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import deployer; print(deployer.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert where.stdout.startswith(str(site)), where

    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MCPFC_")},
        "HOME": str(tmp_path),
        "MCPFC_DATABASE_URL": postgres_url,
        "MCPFC_DATA_DIR": str(tmp_path / "data"),
        "MCPFC_API_HOST": "127.0.0.1",
        "MCPFC_API_PORT": str(port),
    }
    with _serve([str(bin_dir / "mcp-fc"), "api"], env, f"http://127.0.0.1:{port}/healthz", tmp_path):
        service = httpx.get(f"http://127.0.0.1:{port}/v1/service", timeout=5)
        assert service.status_code in (200, 401), service.text
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        tables = {r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'public'")}
        (head,) = conn.execute("select version_num from alembic_version").fetchone()
    assert {"deployments", "deployment_events", "api_keys", "alembic_version"} <= tables, tables
    latest = sorted(p.name for p in (REPO / "deployer/store/migrations/versions").glob("0*.py"))[-1]
    assert (
        latest.startswith(head[:4])
        or head in (REPO / "deployer/store/migrations/versions" / latest).read_text()
    )
