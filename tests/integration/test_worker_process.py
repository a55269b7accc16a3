"""`mcp-fc worker` as operators run it: several on one host, before the API, watched by Flower.

- Two `mcp-fc worker` processes on one host on RabbitMQ both run (distinct node names by default; with
  Celery's default `celery@<host>` the second one's exclusive pidbox queue collides and it dies).
- A worker that cannot start exits non-zero.
- A worker started alone on an empty PostgreSQL database creates the schema, then serves deploys.
- Task events are on for RabbitMQ, so Flower (or `celery events`) sees the deploy task.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from deployer.celery_app import DEPLOY_TASK, make_celery
from deployer.settings import Settings
from deployer.store.db import engine_for
from tests.conftest import TIMEOUT_SCALE, wait_until
from tests.integration.conftest import (  # noqa: F401 - fixtures
    REPO,
    Stack,
    postgres_url,
    rabbitmq_url,
    redis_url,
    stack_factory,
)

IMAGE = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/mcp-server-time:1.0"


def body(name: str) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, "command": ["mcp-server-time"], "auth": {"type": "anonymous"}}


def mcp_fc_worker(env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deployer.cli.main",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            "2",
            *extra,
        ],
        env=env,
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def nodes(settings: Settings) -> set[str]:
    app = make_celery(settings)
    try:
        return {name for reply in app.control.ping(timeout=1.0) or [] for name in reply}
    finally:
        app.close()


def test_two_workers_on_one_host_both_run_on_rabbitmq(stack_factory: Any, rabbitmq_url: str) -> None:  # noqa: F811
    stack: Stack = stack_factory(broker_url=rabbitmq_url, workers=0, probe=False)
    logs = [stack.settings.data_dir / f"worker-mcpfc-{i}.log" for i in range(2)]
    workers = [mcp_fc_worker(stack.env, log) for log in logs]
    stack.workers.extend(workers)
    host = socket.gethostname()
    expected = {f"mcpfc-{w.pid}@{host}" for w in workers}

    def both_answer() -> bool:
        for w, log in zip(workers, logs, strict=True):
            assert w.poll() is None, f"worker exited with {w.returncode}: {log.read_text()[-3000:]}"
        return expected <= nodes(stack.settings)

    wait_until(both_answer, 60, interval=0.5, what="both workers answer a ping")

    events: list[dict[str, Any]] = []
    seen_heartbeat = threading.Event()
    done = threading.Event()
    app = make_celery(stack.settings)

    def on_event(event: dict[str, Any]) -> None:
        events.append(event)
        if event.get("type") == "worker-heartbeat":
            seen_heartbeat.set()
        if event.get("type") == "task-succeeded":
            done.set()

    def capture() -> None:
        with app.connection_for_read() as conn:
            receiver = app.events.Receiver(conn, handlers={"*": on_event})
            while not done.is_set():
                try:
                    receiver.capture(limit=1, timeout=1, wakeup=False)
                except TimeoutError:
                    continue

    watcher = threading.Thread(target=capture, daemon=True)
    watcher.start()
    assert seen_heartbeat.wait(30 * TIMEOUT_SCALE), "no worker events at all"

    with stack.http() as http:
        ids = [
            http.post("/v1/deployments", json=body(f"two-{i}-{secrets.token_hex(2)}")).json()["id"]
            for i in range(4)
        ]
    for dep_id in ids:
        assert stack.wait_for(dep_id, {"succeeded", "failed"})["status"] == "succeeded"
    for w in workers:
        assert w.poll() is None

    # Flower's view: the deploy task was received, started and succeeded on one of our nodes.
    assert done.wait(30 * TIMEOUT_SCALE), "no task-succeeded event"
    watcher.join(5)
    app.close()
    kinds = {e["type"] for e in events if e.get("type", "").startswith("task-")}
    assert {"task-received", "task-started", "task-succeeded"} <= kinds, kinds
    received = [e for e in events if e.get("type") == "task-received"]
    assert any(e.get("name") == DEPLOY_TASK and e.get("hostname") in expected for e in received), received
    stack.stop_workers()


def test_a_worker_that_cannot_start_exits_non_zero(stack_factory: Any, rabbitmq_url: str) -> None:  # noqa: F811
    """The collision itself, forced with one explicit --hostname: the second worker must say it failed."""
    stack: Stack = stack_factory(broker_url=rabbitmq_url, workers=0, probe=False)
    node = f"dup-{secrets.token_hex(3)}@{socket.gethostname()}"
    first = mcp_fc_worker(stack.env, stack.settings.data_dir / "worker-dup-1.log", "--hostname", node)
    stack.workers.append(first)
    wait_until(lambda: node in nodes(stack.settings), 60, interval=0.5, what="the first worker answers")
    log = stack.settings.data_dir / "worker-dup-2.log"
    second = mcp_fc_worker(stack.env, log, "--hostname", node)
    try:
        code = second.wait(90 * TIMEOUT_SCALE)
    finally:
        if second.poll() is None:
            second.kill()
    assert code != 0, log.read_text()[-3000:]
    assert first.poll() is None
    stack.stop_workers()


def test_worker_alone_on_an_empty_postgres_migrates_then_serves(
    stack_factory: Any,  # noqa: F811
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    import psycopg

    name = f"mcpfc_it_{secrets.token_hex(4)}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    worker: subprocess.Popen[bytes] | None = None
    try:
        # The stack's emulator and env, but its API (which migrates) only after the worker made the schema.
        probe_stack: Stack = stack_factory(broker_url=redis_url, workers=0, probe=False)
        env = {**probe_stack.env, "MCPFC_DATABASE_URL": url}
        log = tmp_path / "worker.log"
        worker = mcp_fc_worker(env, log)

        def schema_made() -> bool:
            assert worker is not None and worker.poll() is None, log.read_text()[-3000:]
            return "deployments" in inspect(engine_for(url)).get_table_names()

        wait_until(schema_made, 60, interval=0.5, what="the worker created the schema")
        stack: Stack = stack_factory(broker_url=redis_url, database_url=url, workers=0, probe=False)
        stack.workers.append(worker)
        # Same emulator as the worker's: the worker's env points at probe_stack's.
        with stack.http() as http:
            dep = http.post("/v1/deployments", json=body(f"early-{secrets.token_hex(2)}")).json()
        assert stack.wait_for(dep["id"], {"succeeded", "failed"})["status"] == "succeeded"
        assert "does not exist" not in log.read_text()
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            worker.wait(30)
        for u in (url, url.replace("postgresql://", "postgresql+psycopg://")):
            engine_for(u).dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
