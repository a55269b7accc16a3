"""The deploy and delete step machines run in this process against the FC emulator (no broker, no worker
process): each Celery retry the task raises is run again here, as a worker would after its countdown.
The subprocess-worker tests (test_flow.py, test_worker_process.py) cover the same machines end to end;
these pin the lifecycle's guarded writes one run at a time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import Retry

from deployer.crypto import Vault
from deployer.errors import FCNotFound
from deployer.logcontext import WORKER_LOG_FORMAT, DeploymentIdFilter
from deployer.settings import Settings, get_settings
from deployer.store import lifecycle
from deployer.store import reads as store
from deployer.store.checkpoint import Checkpoint
from deployer.store.db import session_scope
from deployer.store.migrate import upgrade
from fc_emulator import EmulatorServer
from schemas import DeployRequest, Status
from tasks import context as task_context
from tasks.delete import delete
from tasks.deploy import deploy
from tests.conftest import TIMEOUT_SCALE

IMAGE = "registry.cn-hangzhou.aliyuncs.com/ns/mcp-time:1.0"


@pytest.fixture
def settings(fc: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The worker's settings (read from the environment, as in a worker) on a fresh SQLite store."""
    import os

    for name in list(os.environ):
        if name.startswith("MCPFC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MCPFC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MCPFC_FC_ENDPOINT", fc.url)
    monkeypatch.setenv("MCPFC_PROBE_ENABLED", "false")
    monkeypatch.setenv("MCPFC_READY_POLL_S", "0.05")
    monkeypatch.setenv("MCPFC_READY_POLL_MAX_S", "0.2")
    get_settings.cache_clear()
    task_context.context.cache_clear()
    settings = get_settings()
    upgrade(settings.effective_database_url)
    yield settings
    get_settings.cache_clear()
    task_context.context.cache_clear()


def queued(settings: Settings, name: str = "mcp-steps") -> str:
    """A row as the API commits it before sending the task."""
    req = DeployRequest.model_validate({"name": name, "image": IMAGE, "command": ["mcp-server-time"]})
    with session_scope(settings) as session:
        row = lifecycle.create_deployment(
            session,
            Vault.from_settings(settings),
            owner_id="own-steps",
            req=req,
            region=settings.region,
            deadline_s=60,
        )
        return row.id


def row_of(settings: Settings, dep_id: str) -> Any:
    with session_scope(settings) as session:
        row = store.get(session, dep_id)
        assert row is not None
        session.expunge(row)
        return row


def run_once(task: Any, dep_id: str, task_id: str, retries: int = 0) -> dict[str, Any] | Retry:
    """One delivery of the task's message: its result, or the Retry it raised (not published: eager)."""
    task.push_request(
        id=task_id,
        args=[dep_id],
        kwargs={},
        retries=retries,
        is_eager=True,
        delivery_info={},
        called_directly=False,
    )
    try:
        return task.run(dep_id)
    except Retry as again:
        return again
    finally:
        task.pop_request()


def drive(settings: Settings, task: Any, dep_id: str, timeout: float = 30) -> tuple[dict[str, Any], int]:
    """Deliver the message again after each retry's countdown (capped: the emulator is quick) until the
    task returns; (its result, how many runs it took)."""
    task_id = row_of(settings, dep_id).task_id
    deadline = time.monotonic() + timeout * TIMEOUT_SCALE
    runs = 0
    while True:
        outcome = run_once(task, dep_id, task_id, retries=runs)
        runs += 1
        if not isinstance(outcome, Retry):
            return outcome, runs
        assert time.monotonic() < deadline, f"still retrying after {runs} runs: {row_of(settings, dep_id)}"
        time.sleep(min(float(outcome.when or 0), 0.2))  # the countdown a broker would wait


def fc_has(name: str) -> bool:
    try:
        task_context.context().gateway.get_function(name)
        return True
    except FCNotFound:
        return False


def events(settings: Settings, dep_id: str) -> list[tuple[str, str]]:
    with session_scope(settings) as session:
        return [(ev.status, ev.message) for ev in store.events_after(session, dep_id)]


def test_a_deploy_runs_its_steps_to_succeeded_and_hands_the_lease_back(settings: Settings) -> None:
    dep_id = queued(settings)
    result, runs = drive(settings, deploy, dep_id)
    assert result["status"] == "succeeded", result
    assert runs >= 2, "the wait step re-schedules while the emulator says Pending"
    row = row_of(settings, dep_id)
    assert row.status == Status.succeeded and row.stage == "done" and row.progress == 100
    assert row.lease_owner is None and row.lease_until is None
    assert row.urls["mcp"] and row.attempts == 1
    checkpoint = Checkpoint.from_json(row.checkpoint)
    assert checkpoint.function and checkpoint.created and checkpoint.ready and checkpoint.trigger
    assert not checkpoint.waiting and checkpoint.due_at is not None and checkpoint.polls >= 1
    statuses = [status for status, _ in events(settings, dep_id)]
    assert statuses[0] == "pending" and statuses[-1] == "succeeded" and "running" in statuses
    assert fc_has("mcp-steps")

    # A redelivered message of a finished deploy changes nothing.
    before = row_of(settings, dep_id).updated_at
    assert run_once(deploy, dep_id, row.task_id) == {"status": "superseded"}
    assert row_of(settings, dep_id).updated_at == before


def test_a_stale_message_does_nothing_and_a_held_lease_means_retry(settings: Settings) -> None:
    dep_id = queued(settings)
    assert run_once(deploy, dep_id, "not-the-current-task") == {"status": "superseded"}
    assert row_of(settings, dep_id).status == Status.pending

    with session_scope(settings) as session:
        assert lifecycle.acquire_lease(session, dep_id, "another:run", 60)
    again = run_once(deploy, dep_id, row_of(settings, dep_id).task_id)
    assert isinstance(again, Retry) and float(again.when) == 2
    row = row_of(settings, dep_id)
    assert row.status == Status.pending and row.lease_owner == "another:run"


def test_a_cancel_while_it_waits_removes_what_the_first_deploy_created(
    settings: Settings, fc: EmulatorServer
) -> None:
    fc.backend.configure(pending_seconds=30)  # the function stays Pending: the run re-schedules itself
    dep_id = queued(settings)
    task_id = row_of(settings, dep_id).task_id
    assert isinstance(run_once(deploy, dep_id, task_id), Retry)
    row = row_of(settings, dep_id)
    assert row.status == Status.running and Checkpoint.from_json(row.checkpoint).waiting
    assert row.lease_owner is None, "a re-scheduled run hands its lease back in its last write"
    assert fc_has("mcp-steps")

    with session_scope(settings) as session:
        assert lifecycle.request_cancel(session, row)
    assert run_once(deploy, dep_id, task_id, retries=1) == {"status": "cancelled"}
    row = row_of(settings, dep_id)
    assert row.status == Status.cancelled and row.stage == "cancelled" and row.lease_owner is None
    assert not fc_has("mcp-steps")


def test_a_pending_cancel_wins_over_the_message(settings: Settings) -> None:
    dep_id = queued(settings)
    with session_scope(settings) as session:
        row = store.get(session, dep_id)
        assert row is not None and lifecycle.cancel_pending(session, row)
    assert run_once(deploy, dep_id, row_of(settings, dep_id).task_id) == {"status": "superseded"}
    assert row_of(settings, dep_id).status == Status.cancelled
    assert not fc_has("mcp-steps")


def test_an_fc_refusal_fails_the_deploy_at_its_step(settings: Settings, fc: EmulatorServer) -> None:
    fc.faults.configure(
        {"CreateFunction": {"error_rate": 1.0, "error_status": 400, "error_code": "InvalidArgument"}}
    )
    dep_id = queued(settings)
    result, _ = drive(settings, deploy, dep_id)
    assert result == {"status": "failed", "code": "InvalidArgument", "step": "function"}
    row = row_of(settings, dep_id)
    assert row.status == Status.failed and row.error["code"] == "InvalidArgument"
    assert row.error["step"] == "function" and row.lease_owner is None
    assert events(settings, dep_id)[-1][1].startswith("failed at function: InvalidArgument")


def test_a_delete_removes_the_function_and_ends_deleted(settings: Settings) -> None:
    dep_id = queued(settings)
    assert drive(settings, deploy, dep_id)[0]["status"] == "succeeded"
    with session_scope(settings) as session:
        row = store.get(session, dep_id)
        assert row is not None and lifecycle.queue_delete(session, row, deadline_s=60)
    assert drive(settings, delete, dep_id)[0] == {"status": "deleted"}
    row = row_of(settings, dep_id)
    assert row.status == Status.deleted and row.urls == {} and row.lease_owner is None
    assert not fc_has("mcp-steps")


def test_a_transient_delete_failure_reschedules_with_a_due_time(
    settings: Settings, fc: EmulatorServer
) -> None:
    dep_id = queued(settings)
    assert drive(settings, deploy, dep_id)[0]["status"] == "succeeded"
    with session_scope(settings) as session:
        row = store.get(session, dep_id)
        assert row is not None and lifecycle.queue_delete(session, row, deadline_s=60)
    fc.faults.configure({"*": {"error_rate": 1.0, "error_status": 503, "error_code": "ServiceUnavailable"}})
    again = run_once(delete, dep_id, row_of(settings, dep_id).task_id)
    assert isinstance(again, Retry) and float(again.when) == 2
    row = row_of(settings, dep_id)
    checkpoint = Checkpoint.from_json(row.checkpoint)
    assert row.status == Status.deleting and checkpoint.transient == 1 and checkpoint.due_at
    assert row.lease_owner is None
    fc.faults.clear()
    assert drive(settings, delete, dep_id)[0] == {"status": "deleted"}


def test_every_log_record_of_a_run_names_its_deployment(settings: Settings, fc: EmulatorServer) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    handler.addFilter(DeploymentIdFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        # One 500 (the gateway retries it and logs that, naming no deployment), then a refused trigger.
        fc.faults.configure(
            {
                "CreateFunction": {"error_rate": 1.0, "error_status": 500, "count": 1},
                "CreateTrigger": {"error_rate": 1.0, "error_status": 400, "error_code": "InvalidArgument"},
            }
        )
        dep_id = queued(settings)
        assert drive(settings, deploy, dep_id)[0]["status"] == "failed"
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    # The run's own thread (the emulator answers from threads of its own).
    ours = [
        r for r in records if r.thread == threading.get_ident() and r.name.startswith(("tasks", "deployer"))
    ]
    messages = {r.getMessage() for r in ours}
    assert {"fc.retryable_error", "deploy.progress", "deploy.failed"} <= messages, messages
    assert all(getattr(r, "deployment_id", None) == dep_id for r in ours), [
        (r.name, r.getMessage(), getattr(r, "deployment_id", None)) for r in ours
    ]
    # ... and the worker's log format prints it on each line.
    worker_format = logging.Formatter(WORKER_LOG_FORMAT)
    assert all(f"[deployment={dep_id}] " in worker_format.format(r) for r in ours)


def test_the_checkpoint_stores_what_differs_and_keeps_what_it_does_not_know() -> None:
    stored = {"function": True, "polls": 3, "version": "4", "from_a_newer_version": {"x": 1}}
    checkpoint = Checkpoint.from_json(stored)
    assert checkpoint.function and checkpoint.polls == 3 and checkpoint.version == "4"
    assert not checkpoint.ready and checkpoint.tools is None
    assert checkpoint.to_json() == stored
    checkpoint.waiting = True
    checkpoint.waiting = False
    assert checkpoint.to_json() == stored, "a flag back at its default is not stored"
    assert Checkpoint().to_json() == {}
    assert Checkpoint(restore={"spec": None}).restore_fields() == {}
    assert Checkpoint(restore={"spec": {"image": "a"}}).restore_fields() == {
        "spec": {"image": "a"},
        "secret_env_enc": None,
    }


def test_the_probe_thread_s_records_name_the_deployment_too(
    settings: Settings, fc: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the probe on, the emulator runs the server (mcp-proxy + mcp-server-time) and the MCP client
    talks to it from the probe's own thread: its records (httpx's requests) carry the id as well."""
    monkeypatch.setenv("MCPFC_PROBE_ENABLED", "true")
    monkeypatch.setenv("MCPFC_PROBE_TIMEOUT_S", str(60 * TIMEOUT_SCALE))
    get_settings.cache_clear()
    task_context.context.cache_clear()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    handler.addFilter(DeploymentIdFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        dep_id = queued(settings, "mcp-probed")
        result, _ = drive(settings, deploy, dep_id, timeout=120)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert result["status"] == "succeeded", (result, row_of(settings, dep_id).error)
    assert "get_current_time" in result["tools"]
    probing = [r for r in records if r.threadName.startswith(f"probe-{dep_id}")]
    assert probing, "the probe logged nothing from its thread"
    assert all(getattr(r, "deployment_id", None) == dep_id for r in probing), [
        (r.name, r.getMessage()) for r in probing if getattr(r, "deployment_id", None) != dep_id
    ]


def test_a_rollback_says_it_started_once_and_a_rotation_publishes_no_version(
    settings: Settings, fc: EmulatorServer
) -> None:
    """Issue 26 #1, #13: one `rollback started` event; a token rotation rewrites the trigger alone (no
    function write, no version, `live` stays) and keeps the old key until its trigger step."""
    dep_id = queued(settings)
    assert drive(settings, deploy, dep_id)[0]["status"] == "succeeded"
    vault = Vault.from_settings(settings)
    with session_scope(settings) as session:
        row = store.get(session, dep_id)
        assert row is not None
        req = store.request_of(vault, row).model_copy(update={"command": ["mcp-server-time", "--v2"]})
        assert lifecycle.queue_redeploy(session, vault, row, req, deadline_s=60)
    assert drive(settings, deploy, dep_id)[0]["status"] == "succeeded"
    with session_scope(settings) as session:
        row = store.get(session, dep_id)
        assert row is not None
        assert lifecycle.queue_rollback(session, row, to="1", deadline_s=60)
    assert drive(settings, deploy, dep_id)[0] == {"status": "succeeded", "version": "1", "tools": []}
    rollback_run = row_of(settings, dep_id).task_id
    with session_scope(settings) as session:
        started = [e.message for e in store.events_after(session, dep_id, run=rollback_run)]
    assert started.count("rollback started") == 1, started

    key_before = row_of(settings, dep_id).endpoint_key_enc
    with session_scope(settings) as session:
        row = store.get(session, dep_id)
        assert row is not None
        assert lifecycle.rotate_token(session, row, deadline_s=60)
    assert row_of(settings, dep_id).endpoint_key_enc == key_before, "the old key stays until the trigger step"
    calls_before = dict(fc.faults.stats()["calls"])
    assert drive(settings, deploy, dep_id)[0]["status"] == "succeeded"
    row = row_of(settings, dep_id)
    assert row.endpoint_key_enc != key_before and row.operation == "rotate"
    calls = {op: n - calls_before.get(op, 0) for op, n in fc.faults.stats()["calls"].items()}
    assert {op for op, n in calls.items() if n} <= {"GetTrigger", "UpdateTrigger", "CreateTrigger"}, calls
    assert calls.get("UpdateTrigger") == 1, calls
    assert [v["versionId"] for v in fc.backend.list_function_versions("mcp-steps")["versions"]] == ["2", "1"]
    assert fc.backend.get_alias("mcp-steps", "live")["versionId"] == "1"
    with session_scope(settings) as session:
        messages = [e.message for e in store.events_after(session, dep_id, run=row.task_id)]
    assert messages[-1].startswith("token rotated") and "live still serves version 1" in messages[-1]
