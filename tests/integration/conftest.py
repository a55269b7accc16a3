"""A whole mcp-fc stack per test module: the real API (uvicorn on loopback), real Celery worker
processes, and the FC emulator, on the embedded default or on Redis / RabbitMQ / PostgreSQL.

Under CI=true a missing Redis, RabbitMQ or PostgreSQL fails the test instead of skipping it.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from deployer.settings import Settings
from deployer.store import keys
from deployer.store.db import session_scope
from deployer.store.migrate import upgrade
from fc_emulator import EmulatorServer
from tests.conftest import TEST_AK, TEST_SK, TIMEOUT_SCALE, alive, in_ci, wait_until

REPO = Path(__file__).resolve().parents[2]
#: npm's and uv's downloads and the built code packages of image-less deploys, kept between test runs (and
#: between clones on one machine: CI runs in a fresh clone).
BUILD_CACHE = Path(
    os.environ.get("MCPFC_TEST_BUILD_CACHE") or Path.home() / ".cache" / "mcp-fc-tests" / "build"
)


def service_up(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, port: int) -> None:
    if service_up(port):
        return
    message = f"{name} is not running on 127.0.0.1:{port} (.ci/run starts it)"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ApiServer:
    """uvicorn in a thread, like httpx's test server."""

    def __init__(self, app: Any, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class Stack:
    settings: Settings
    api_url: str
    api_key: str
    other_key: str
    fc: EmulatorServer
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.api_key}"}
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=70)

    def wait_for(self, dep_id: str, statuses: set[str], timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        with self.http() as http:
            while True:
                dep = http.get(f"/v1/deployments/{dep_id}", params={"wait": 10}).json()
                if dep["status"] in statuses:
                    return dep
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"deployment {dep_id} still {dep['status']}/{dep.get('stage')}: {dep}"
                    )
                for worker in self.workers:
                    assert worker.poll() is None, f"a worker died with code {worker.returncode}"

    def start_worker(
        self, name: str, *, pool: str = "prefork", concurrency: int = 2, queues: str | None = None
    ) -> subprocess.Popen[bytes]:
        log = open(self.settings.data_dir / f"worker-{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tasks",
                "worker",
                "--pool",
                pool,
                "--concurrency",
                str(concurrency),
                "--hostname",
                f"{name}@%h",
                "--loglevel",
                "INFO",
                "--without-mingle",
                "--without-gossip",
                *(["--queues", queues] if queues else []),
            ],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(proc)
        return proc

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.workers.clear()

    def worker_logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in self.settings.data_dir.glob("worker-*.log")
        )


class Stacks:
    """Builds stacks and stops them all at close(): behind the module-scoped `stack_factory` and the
    session-scoped stacks that e2e modules share (tests/e2e/conftest.py)."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.started: list[tuple[Stack, ApiServer]] = []
        self.emulators: list[EmulatorServer] = []

    def start(
        self,
        *,
        broker_url: str | None = None,
        database_url: str | None = None,
        result_backend: str | None = None,
        workers: int = 1,
        pool: str = "prefork",
        concurrency: int = 2,
        probe: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> Stack:
        data_dir = self.tmp_path_factory.mktemp("stack")
        fc = EmulatorServer(
            port=0, access_key_id=TEST_AK, access_key_secret=TEST_SK, pending_seconds=0.5
        ).start()
        self.emulators.append(fc)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCPFC_")}
        env.update(
            MCPFC_DATA_DIR=str(data_dir),
            MCPFC_FC_ENDPOINT=fc.url,
            MCPFC_READY_POLL_S="0.2",
            MCPFC_READY_POLL_MAX_S="1",
            MCPFC_PROBE_ENABLED="true" if probe else "false",
            MCPFC_PROBE_TIMEOUT_S=str(30 * TIMEOUT_SCALE),
            # The product's 5 checks are a liveness verdict (issue 26 #14); a cold start on a loaded host whose
            # bridge listens before its server answers needs them stretched like every other deadline.
            MCPFC_FC_HEALTH_FAILURE_THRESHOLD=str(max(6, math.ceil(3 * TIMEOUT_SCALE))),
            ALIBABA_CLOUD_ACCESS_KEY_ID=TEST_AK,
            ALIBABA_CLOUD_ACCESS_KEY_SECRET=TEST_SK,
            PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
            PYTHONPATH=str(REPO),
            # Image-less builds (issue 23): npm's and uv's downloads and the built packages kept between
            # runs, so a run builds each test package once at most.
            MCPFC_BUILD_TOOL_CACHE_DIR=str(BUILD_CACHE / "tools"),
            MCPFC_BUILD_CACHE_DIR=str(BUILD_CACHE / "packages"),
        )
        for key, value in (
            ("MCPFC_BROKER_URL", broker_url),
            ("MCPFC_DATABASE_URL", database_url),
            ("MCPFC_RESULT_BACKEND", result_backend),
        ):
            if value:
                env[key] = value
        env.update(extra_env or {})
        settings = Settings(
            data_dir=data_dir,
            broker_url=broker_url,
            database_url=database_url,
            result_backend=result_backend,
            fc_endpoint=fc.url,
            probe_enabled=probe,
        )
        upgrade(settings.effective_database_url)
        with session_scope(settings) as session:
            _, key = keys.create_api_key(session, name="it-owner")
            _, other = keys.create_api_key(session, name="it-other")

        from deployer.api import create_app

        api = ApiServer(create_app(settings), free_port()).__enter__()
        stack = Stack(settings=settings, api_url=api.url, api_key=key, other_key=other, fc=fc, env=env)
        self.started.append((stack, api))
        for i in range(workers):
            stack.start_worker(f"w{i}-{secrets.token_hex(3)}", pool=pool, concurrency=concurrency)
        return stack

    def close(self) -> None:
        for stack, api in self.started:
            stack.stop_workers()
            api.__exit__()
        for fc in self.emulators:
            fc.stop()


@pytest.fixture(scope="module")
def stack_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    stacks = Stacks(tmp_path_factory)
    yield stacks.start
    stacks.close()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A fresh database for this module, dropped afterwards."""
    require_service("PostgreSQL", 5432)
    import psycopg

    name = f"mcpfc_it_{secrets.token_hex(4)}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    from deployer.store.db import engine_for

    for url in (
        f"postgresql://postgres@127.0.0.1:5432/{name}",
        f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
    ):
        engine_for(url).dispose()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def claimed_redis_db() -> Iterator[str]:
    """A database number (8-15) on the machine's Redis, claimed in db 0 for as long as it is used and
    flushed before and after, so two test runs (or two xdist workers) on one Redis never flush each
    other's. A claim whose process died (a killed run) is taken over instead of blocking its database
    for the claim's hour."""
    require_service("Redis", 6379)
    import redis

    claims = redis.Redis(host="127.0.0.1", port=6379, db=0)
    me = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def claim() -> tuple[int, str] | None:
        for db in range(8, 16):
            key = f"mcpfc-test:claim:{db}"
            if claims.set(key, me, nx=True, ex=3600):
                return db, key
            holder = (claims.get(key) or b"").decode()
            host, _, pid = holder.partition(":")
            if host == socket.gethostname() and not alive(int(pid.partition(":")[0] or 0)):
                if claims.set(key, me, xx=True, ex=3600, get=True) == holder.encode():
                    return db, key  # the dead holder's claim, and no live run took it over first
        return None

    # Eight databases for every xdist worker's modules (two each at most): when all are held, one is
    # released as soon as a module ends, so wait for it rather than fail.
    db, key = wait_until(claim, timeout=120, interval=0.2, what="a free Redis database among 8-15")
    client = redis.Redis(host="127.0.0.1", port=6379, db=db)
    client.flushdb()
    try:
        yield f"redis://127.0.0.1:6379/{db}"
    finally:
        client.flushdb()
        if (claims.get(key) or b"").decode() == me:
            claims.delete(key)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with claimed_redis_db() as url:
        yield url


@pytest.fixture(scope="module")
def redis_results_url() -> Iterator[str]:
    """A second claimed database, for Celery's results apart from the broker's."""
    with claimed_redis_db() as url:
        yield url


@pytest.fixture(scope="module")
def rabbitmq_url() -> Iterator[str]:
    """A virtual host of this module's own, so two test runs on one broker never take each other's tasks."""
    require_service("RabbitMQ", 5672)
    vhost = f"mcpfc-test-{secrets.token_hex(4)}"
    # an sbin tool: not on a plain user's PATH (a shell started with a minimal environment, say)
    ctl = shutil.which("rabbitmqctl") or shutil.which("rabbitmqctl", path="/usr/sbin:/usr/local/sbin")
    assert ctl is not None, "rabbitmqctl is needed to give each test module a virtual host of its own"
    subprocess.run([ctl, "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(
        [ctl, "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    subprocess.run([ctl, "-q", "delete_vhost", vhost], check=False, capture_output=True)
