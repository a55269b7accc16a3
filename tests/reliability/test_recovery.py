"""Stuck-deploy recovery (tasks/recovery.py): a deployment whose task is gone is re-queued with the same
task id, or failed with the reason, automatically and within a bounded time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deployer.celery_app import make_celery
from deployer.crypto import Vault
from deployer.settings import Settings
from deployer.store import keys, lifecycle
from deployer.store import reads as store
from deployer.store.db import session_scope
from deployer.store.migrate import upgrade
from schemas import DeployRequest
from tasks import recovery
from tests.reliability.conftest import (
    deploy_body,
    kill_worker,
    statuses,
    wait_until,
    wait_workers_ready,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _owner(stack) -> str:
    with session_scope(stack.settings) as session:
        key = keys.authenticate(session, stack.api_key)
        assert key is not None
        return key.owner_id


def _row_without_task(
    settings: Settings, owner_id: str, name: str, *, deadline_s: float = 120, checkpoint: dict | None = None
) -> tuple[str, str]:
    """What the API writes before it sends the task, and then the task is never sent (or lost)."""
    with session_scope(settings) as session:
        row = lifecycle.create_deployment(
            session,
            Vault.from_settings(settings),
            owner_id=owner_id,
            req=DeployRequest.model_validate(deploy_body(name)),
            region=settings.region,
            deadline_s=deadline_s,
        )
        if checkpoint is not None:
            lifecycle.set_fields(session, row.id, checkpoint=checkpoint)
        return row.id, row.task_id or ""


def _events(settings: Settings, dep_id: str) -> list[str]:
    with session_scope(settings) as session:
        return [ev.message for ev in store.events_after(session, dep_id)]


def test_stalled_deployments_are_requeued_or_failed_with_a_reason(embedded_stack):
    """Three rows whose task was never sent, on the embedded file broker + SQLite with one worker:
    one is re-queued and succeeds, one past its deadline fails with DeadlineExceeded, one that was
    already re-queued recovery_max_requeues times fails with TaskLost. All within 30 s."""
    stack = embedded_stack(workers=1, concurrency=2)
    owner = _owner(stack)
    lost_id, lost_task = _row_without_task(stack.settings, owner, "rr-lost")
    late_id, _ = _row_without_task(stack.settings, owner, "rr-late", deadline_s=0.5)
    tired_id, _ = _row_without_task(stack.settings, owner, "rr-tired", checkpoint={"recovered": 5})
    ids = [lost_id, late_id, tired_id]

    def all_terminal():
        rows = statuses(stack, ids)
        return rows if all(r.status in ("succeeded", "failed") for r in rows.values()) else None

    rows = wait_until(all_terminal, 30, what="recovery settles the three rows", interval=0.2)

    lost = rows[lost_id]
    assert lost.status == "succeeded", (lost.error, stack.worker_logs())
    assert lost.task_id == lost_task  # re-queued with the same task id, not a new deployment
    assert any(m.startswith("recovery: re-queued deploy") for m in _events(stack.settings, lost_id))
    assert stack.fc.backend.snapshot()["functions"].keys() >= {"rr-lost"}

    late = rows[late_id]
    assert late.status == "failed" and late.error["code"] == "DeadlineExceeded", late.error
    assert "no worker is running it" in late.error["message"] and late.error["step"] == "queued"

    tired = rows[tired_id]
    assert tired.status == "failed" and tired.error["code"] == "TaskLost", tired.error
    assert "lost 6 times" in tired.error["message"]
    # neither failed row ever reached FC
    assert not {"rr-late", "rr-tired"} & set(stack.fc.backend.snapshot()["functions"])


def test_whole_worker_sigkill_on_the_embedded_broker(embedded_stack):
    """The embedded file broker deletes a message when a worker takes it: SIGKILL the whole worker in the
    middle of CreateFunction and the task is gone for good. Recovery re-queues it after the dead run's
    lease expires; the restarted worker finishes the deploy."""
    stack = embedded_stack(workers=1, concurrency=2)
    stack.fc.faults.configure({"CreateFunction": {"latency_ms": 3000, "count": 1}})
    with stack.http() as http:
        dep_id = http.post("/v1/deployments", json=deploy_body("rr-killed")).json()["id"]
    wait_until(
        lambda: (
            (r := statuses(stack, [dep_id]).get(dep_id)) and r.lease_owner and r.stage == "creating_function"
        ),
        30,
        what="the deploy inside CreateFunction",
        interval=0.05,
    )
    kill_worker(stack, stack.workers[0])
    assert not list((stack.settings.broker_dir / "queue").glob("*.msg")), "the message should be gone"
    stack.start_worker("restarted", concurrency=2)
    wait_workers_ready(stack)

    dep = wait_until(
        lambda: (r := statuses(stack, [dep_id])[dep_id]).status in ("succeeded", "failed") and r,
        40,
        what="the killed deploy recovered",
        interval=0.2,
    )
    assert dep.status == "succeeded", dep.error
    assert any(m.startswith("recovery: re-queued deploy") for m in _events(stack.settings, dep_id))
    state = stack.fc.backend.snapshot()
    assert "rr-killed" in state["functions"] and len(state["triggers"]["rr-killed"]) == 1


# -- the guard: one sweep at a time, and compare-and-set per row ------------------------------------------


def _local_settings(tmp_path: Path, **kw) -> Settings:
    settings = Settings(_env_file=None, data_dir=tmp_path, recovery_stall_s=10, **kw)  # type: ignore[call-arg]
    upgrade(settings.effective_database_url)
    return settings


def _queued_messages(settings: Settings) -> int:
    return len(list((settings.broker_dir / "queue").glob("*.msg")))


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_only_one_sweep_at_a_time(tmp_path, database, request):
    if database == "postgresql":
        settings = _local_settings(tmp_path, database_url=request.getfixturevalue("pg_database")())
    else:
        settings = _local_settings(tmp_path)
    app = make_celery(settings)
    with session_scope(settings) as session:
        key, _ = keys.create_api_key(session)
        owner = key.owner_id
    dep_id, _ = _row_without_task(settings, owner, "rr-guard")
    later = datetime.now(UTC) + timedelta(seconds=15)  # stalled: idle > recovery_stall_s

    # While one sweep holds the lock, another (here: from a second thread) does nothing.
    results = []
    with recovery.sweep_lock(settings) as mine:
        assert mine
        thread = threading.Thread(target=lambda: results.append(recovery.sweep(settings, app, now=later)))
        thread.start()
        thread.join(30)
    assert results and results[0].locked is False and not results[0]
    assert _queued_messages(settings) == 0

    # Two sweeps that read the same row: the compare-and-set lets only the first act.
    with session_scope(settings) as session:
        stale = store.get(session, dep_id)
        session.expunge(stale)
    first = recovery.sweep(settings, app, now=later)
    assert first.requeued == [dep_id]
    with session_scope(settings) as session:
        assert not lifecycle.claim_requeue(session, stale, now=later, count=1, message="second sweep")
        assert not lifecycle.fail_stuck(
            session, stale, now=later, error={"code": "X", "message": "x"}, message="x"
        )
    assert _queued_messages(settings) == 1
    # A sweep right after finds the row fresh (just re-queued) and leaves it alone.
    assert recovery.sweep(settings, app, now=later).requeued == []
    assert _queued_messages(settings) == 1
    app.close()


def test_a_live_lease_or_a_due_run_is_left_alone(tmp_path):
    """No false positives: a deployment whose run holds the lease, or whose re-scheduled run is due,
    is not stalled, however old its last change."""
    settings = _local_settings(tmp_path)
    app = make_celery(settings)
    with session_scope(settings) as session:
        owner = keys.create_api_key(session)[0].owner_id
    held, _ = _row_without_task(settings, owner, "rr-held")
    due, _ = _row_without_task(settings, owner, "rr-due")
    queued, _ = _row_without_task(settings, owner, "rr-queued")
    now = datetime.now(UTC) + timedelta(seconds=15)  # idle 15 s: stalled, but not 5x
    with session_scope(settings) as session:
        assert lifecycle.acquire_lease(session, held, "someone:alive", 3600)
        lifecycle.set_fields(session, due, checkpoint={"due_at": now.timestamp() + 60})
    # a message waiting in rr-queued's queue: recovery must wait for the queue to drain first
    from deployer.celery_app import DEPLOY_TASK, enqueue

    enqueue(app, task=DEPLOY_TASK, deployment_id="someone-else", task_id="t-other")
    report = recovery.sweep(settings, app, now=now)
    assert report.requeued == [] and report.failed == []
    assert report.waiting == [queued]
    # stalled five times as long: a busy queue no longer protects it
    report = recovery.sweep(settings, app, now=now + timedelta(seconds=5 * settings.recovery_stall_s))
    assert report.requeued == [queued]
    app.close()


@pytest.mark.parametrize("broker", ["filesystem", "redis"])
def test_queue_depth_counts_waiting_messages(tmp_path, broker, request):
    """What keeps recovery from re-queuing a deployment whose message is merely waiting in line."""
    from deployer.celery_app import DEPLOY_TASK, enqueue

    url = request.getfixturevalue("private_redis").new_dbs()[0] if broker == "redis" else None
    settings = Settings(_env_file=None, data_dir=tmp_path, broker_url=url)  # type: ignore[call-arg]
    app = make_celery(settings)
    assert recovery.queue_depth(app, "default") == 0
    enqueue(app, task=DEPLOY_TASK, deployment_id="d1", task_id="t1")
    enqueue(app, task=DEPLOY_TASK, deployment_id="d2", task_id="t2", priority="high")
    assert recovery.queue_depth(app, "default") == 1 and recovery.queue_depth(app, "high") == 1
    app.close()


# -- the embedded broker ------------------------------------------------------------------------------------


def test_embedded_broker_never_hands_out_a_half_written_message(tmp_path):
    """kombu's filesystem transport creates a message file, then writes it; a worker in another process that
    takes the file in between reads it empty and dies ("Unrecoverable error: JSONDecodeError", seen in the
    e2e suite under load). Ours renames complete files into place, and skips an undecodable one."""
    from kombu import Connection
    from kombu.transport import filesystem

    from deployer.celery_app import FilesystemTransport, broker_options

    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    url, options = broker_options(settings)
    queue_dir = settings.broker_dir / "queue"

    def half_written() -> None:  # what a consumer sees between kombu's open() and write()
        (queue_dir / "0_half.default.msg").write_bytes(b"")  # "0_" sorts before every real name

    with Connection(url, transport=filesystem.Transport, transport_options=options) as stock:
        half_written()
        with pytest.raises(ValueError):
            stock.default_channel._get("default")

    with Connection(url, transport=FilesystemTransport, transport_options=options) as ours:
        channel = ours.default_channel
        channel._put("default", {"n": 1})
        assert [
            p.name for p in queue_dir.iterdir() if not p.name.endswith(".default.msg")
        ] == []  # no temp left
        half_written()  # sorts first
        assert channel._get("default") == {"n": 1}  # the bad file is skipped, the good one delivered
        assert channel._size("default") == 0


def test_embedded_worker_survives_an_undecodable_message(embedded_stack):
    """A garbage message file in the queue no longer stops the embedded worker: it logs, skips it, and goes
    on deploying."""
    stack = embedded_stack(workers=1, pool="threads", concurrency=4)
    (stack.settings.broker_dir / "queue" / "1_garbage.default.msg").write_bytes(b"\x00not json")
    with stack.http() as http:
        dep_id = http.post("/v1/deployments", json=deploy_body("rr-after-garbage")).json()["id"]
    dep = wait_until(
        lambda: (r := statuses(stack, [dep_id])[dep_id]).status in ("succeeded", "failed") and r,
        30,
        what="a deploy after the garbage message",
        interval=0.1,
    )
    assert dep.status == "succeeded", stack.worker_logs()
    assert stack.workers[0].poll() is None
    assert "skipped an undecodable message" in stack.worker_logs()
