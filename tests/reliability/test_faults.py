"""Fault runs on the real stack (uvicorn API, `celery -A tasks worker` processes, Redis, PostgreSQL, the FC
emulator's fault injection). Each run prints submitted / succeeded / failed (with reasons) / lost /
duplicated / stuck and asserts lost = duplicated = stuck = 0.

The faults that leave the stack working (FC faults, a killed worker replaced by a new one, a killed API
process of the test's own, a Redis restart) share one stack with two workers (`shared_stack`); each test
counts only its own deployments (its own name prefix and ids). The others build a fresh one and say why.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from tests.reliability.conftest import (
    API_ENV,
    REPO,
    TcpProxy,
    build_reliable_stack,
    emulator_stats,
    free_port,
    kill_worker,
    process_tree,
    recovery_events,
    statuses,
    submit_many,
    tally,
    wait_until,
    wait_workers_ready,
    worker_log_text,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BURST = int(os.environ.get("MCPFC_RELIABILITY_BURST", "200"))

# Every FC operation: 30 ms latency, 10% throttled (retry-after 200 ms), 8% answered 503, 5% committed but
# the response lost. Seeded, so a run's fault sequence is reproducible for one interleaving of calls.
FAULT_MIX = {
    "*": {
        "latency_ms": 30,
        "throttle_rate": 0.10,
        "retry_after": 200,
        "error_rate": 0.08,
        "error_status": 503,
        "error_code": "ServiceUnavailable",
        "lose_response_rate": 0.05,
        "seed": 20261121,
    }
}


@pytest.fixture(scope="module")
def shared(stack_factory, private_redis, pg_database):
    """Two workers (concurrency 4) on Redis + PostgreSQL, for every test of this module that needs no
    stack of its own."""
    return build_reliable_stack(stack_factory, private_redis, pg_database, workers=2, concurrency=4)


@pytest.fixture
def shared_stack(shared):
    """The shared stack, as the previous test left it but with no FC fault rule, its own API and two
    workers again.

    The workers are checked when a test is about to use them, not after one: the Redis restart (the last
    user) can take a worker down with kombu's reconnect (`conninfo` None at shutdown), which its own
    assertions tolerate as long as every deploy converges, and no test uses the stack after it."""
    assert len(shared.workers) == 2 and all(w.poll() is None for w in shared.workers), shared.worker_logs()
    api_url = shared.api_url
    yield shared
    shared.fc.faults.reset()
    shared.api_url = api_url


def test_burst_under_fault_mix(shared_stack):
    """>= 200 deploys at once under throttling, 5xx, latency and lost responses: all converge."""
    stack = shared_stack
    stack.fc.faults.configure(FAULT_MIX)
    names = [f"rb-burst-{i:03d}" for i in range(BURST)]

    accepted, refused = submit_many(stack, names, threads=16)
    result = tally(stack, "burst", names, accepted, refused, prefix="rb-burst-", timeout=240)

    stats = emulator_stats(stack)
    result.extra.update(
        fc_calls=stats["total_calls"],
        fc_faults=stats["total_faults"],
        faults_by_kind=_by_kind(stats),
        recovery_requeues=recovery_events(stack, list(accepted.values())),
    )
    result.check()
    assert result.accepted == BURST, refused
    hard_faults = sum(n for kind, n in result.extra["faults_by_kind"].items() if kind != "latency")
    assert hard_faults >= BURST // 4, stats  # the mix really fired: throttles, 503s and lost responses
    # Transient faults are retried, never surfaced: every deploy ends succeeded.
    assert result.succeeded == BURST, result.failed

    # Second wave under the same faults: redeploy a quarter (UpdateFunction, trigger unchanged), delete a
    # quarter (DeleteTrigger, then DeleteFunction), all at once.
    quarter = BURST // 4
    redeploy, delete = names[:quarter], names[quarter : 2 * quarter]
    before = {n: statuses(stack, [accepted[n]])[accepted[n]].urls["internet"] for n in redeploy}
    stack.fc.faults.reset_stats()
    with stack.http() as http:
        answers = Counter(
            http.post(f"/v1/deployments/{accepted[n]}/redeploy", json={"env": {"WAVE": "2"}}).status_code
            for n in redeploy
        )
        answers.update(http.delete(f"/v1/deployments/{accepted[n]}").status_code for n in delete)
    assert answers == {202: 2 * quarter}, answers
    wave = {n: accepted[n] for n in redeploy + delete}
    second = tally(
        stack,
        "burst: redeploy + delete wave",
        redeploy + delete,
        wave,
        Counter(),
        prefix="rb-burst-",
        timeout=180,
        gone=frozenset(delete),
    )
    stats = emulator_stats(stack)
    second.extra.update(fc_calls=stats["total_calls"], faults_by_kind=_by_kind(stats))
    second.orphans = [o for o in second.orphans if o in delete]  # the other functions belong to wave one
    second.check()
    assert second.succeeded == 2 * quarter, second.failed
    state = stack.fc.backend.snapshot()
    for n in redeploy:
        assert state["functions"][n]["environmentVariables"].get("WAVE") == "2", n
        assert statuses(stack, [accepted[n]])[accepted[n]].urls["internet"] == before[n]  # the URL stays


def _by_kind(stats: dict) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for per_op in stats["faults"].values():
        for kind, n in per_op.items():
            kinds[kind] = kinds.get(kind, 0) + n
    return kinds


def test_worker_sigkill_mid_deploy_then_restart(shared_stack):
    """SIGKILL a whole worker (main process and pool children) while it runs deploys; start a new one.

    Redis keeps the killed worker's unacknowledged messages for the visibility timeout (an hour), so what
    brings those deployments home is the stuck-deploy recovery: the dead run's lease expires, the row is
    re-queued with the same task id, and the checkpointed steps resume. (On the shared stack, whose
    workers run 4 deploys at once where this test's own stack ran 2: the restarted worker takes the
    victim's place, so the stack has two workers again.)
    """
    stack = shared_stack
    stack.fc.faults.configure({"*": {"latency_ms": 300}})
    names = [f"rb-kill-{i:02d}" for i in range(40)]
    accepted, refused = submit_many(stack, names)
    ids = list(accepted.values())
    victim = stack.workers[0]

    def victim_busy() -> list[str]:
        # rows whose lease is held by one of the victim's processes (lease owner: task:token:pid@host)
        pids = {str(p) for p in process_tree(victim.pid)}
        return [
            r.id
            for r in statuses(stack, ids).values()
            if r.lease_owner and r.lease_owner.rsplit(":", 1)[-1].split("@")[0] in pids
        ]

    in_flight = wait_until(victim_busy, 30, what="the victim worker running a deploy", interval=0.05)
    killed = kill_worker(stack, victim)
    stack.start_worker("restarted", concurrency=4)
    wait_workers_ready(stack)

    result = tally(stack, "worker SIGKILL", names, accepted, refused, prefix="rb-kill-", timeout=120)
    result.extra.update(
        killed_processes=killed,
        in_flight_at_kill=len(in_flight),
        recovery_requeues=recovery_events(stack, ids),
    )
    result.check()
    assert result.succeeded == len(names), result.failed
    assert result.extra["recovery_requeues"] >= 1, (
        "the kill left nothing for recovery: the test proved nothing"
    )


def test_api_restart_during_run(shared_stack):
    """SIGKILL the API process while clients are POSTing, start it again on the same port. Clients retry
    with the same Idempotency-Key; a row committed just before the kill but never queued is recovered.
    (The API process is this test's own, on the shared stack's database and broker.)"""
    stack = shared_stack
    stack.fc.faults.configure({"*": {"latency_ms": 50}})
    port = free_port()
    api = _start_api(stack, port)
    stack.api_url = f"http://127.0.0.1:{port}"
    names = [f"rb-api-{i:03d}" for i in range(80)]

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        submitting = pool.submit(submit_many, stack, names, threads=8, retry_until=90)
        wait_until(lambda: _count_rows(stack, "rb-api-") >= 20, 60, what="20 deploys accepted", interval=0.02)
        api.send_signal(signal.SIGKILL)
        api.wait(10)
        api = _start_api(stack, port)
        accepted, refused = submitting.result(timeout=180)
    try:
        result = tally(stack, "API restart", names, accepted, refused, prefix="rb-api-", timeout=120)
        result.extra.update(recovery_requeues=recovery_events(stack, list(accepted.values())))
        result.check()
        assert result.accepted == len(names), refused
        assert result.succeeded == len(names), result.failed
        assert _count_rows(stack, "rb-api-") == len(names)  # retries made no second deployment
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(20)


def test_rabbitmq_worker_sigkill_mid_burst(reliable_stack, rabbitmq_url):
    """RabbitMQ as the broker: SIGKILL a whole worker mid-burst. RabbitMQ hands the dead connection's
    unacknowledged messages to the other worker at once (no visibility timeout), and the checkpointed steps
    resume where the killed run stopped; the recovery sweep only covers what the broker could not.
    Its own stack: the broker is RabbitMQ."""
    stack = reliable_stack(workers=2, concurrency=2, broker_url=rabbitmq_url)
    stack.fc.faults.configure({"*": {"latency_ms": 200}})
    names = [f"rb-amqp-{i:02d}" for i in range(40)]
    accepted, refused = submit_many(stack, names)
    ids = list(accepted.values())
    victim = stack.workers[0]

    def victim_busy() -> list[str]:
        pids = {str(p) for p in process_tree(victim.pid)}
        return [
            r.id
            for r in statuses(stack, ids).values()
            if r.lease_owner and r.lease_owner.rsplit(":", 1)[-1].split("@")[0] in pids
        ]

    in_flight = wait_until(victim_busy, 30, what="the victim worker running a deploy", interval=0.05)
    killed = kill_worker(stack, victim)
    stack.start_worker("amqp-restarted", concurrency=2)
    wait_workers_ready(stack)

    result = tally(stack, "RabbitMQ worker SIGKILL", names, accepted, refused, prefix="rb-amqp-", timeout=120)
    result.extra.update(
        killed_processes=killed,
        in_flight_at_kill=len(in_flight),
        recovery_requeues=recovery_events(stack, ids),
    )
    result.check()
    assert result.accepted == len(names), refused
    assert result.succeeded == len(names), result.failed


def test_postgres_outage_mid_burst_without_recovery(reliable_stack, pg_database):
    """PostgreSQL goes away (every connection cut, new ones refused) while deploys are queued and running,
    then comes back. The recovery sweep is OFF: every deploy must end by itself, because a run that meets
    a database error re-schedules its own message instead of acknowledging it as a failure. Its own stack:
    the database is reached through a proxy the test cuts, and the recovery sweep is off."""
    proxy = TcpProxy(5432)
    try:
        stack = reliable_stack(
            workers=2,
            concurrency=2,
            database_url=proxy.url(pg_database()),
            extra_env={"MCPFC_RECOVERY_ENABLED": "false"},
        )
        stack.fc.faults.configure({"*": {"latency_ms": 150}})
        names = [f"rb-pg-{i:02d}" for i in range(40)]
        accepted, refused = submit_many(stack, names)
        ids = list(accepted.values())

        def mid_run() -> Counter[str] | None:
            seen = Counter(r.status for r in statuses(stack, ids).values())
            return seen if seen["succeeded"] >= 3 and seen["pending"] + seen["running"] >= 10 else None

        wait_until(mid_run, 60, what="some deploys done and many still queued", interval=0.05)
        unfinished = sum(r.status in ("pending", "running") for r in statuses(stack, ids).values())
        proxy.cut()
        # The outage lasts until runs have met it (each re-schedules itself), then PostgreSQL is back.
        wait_until(
            lambda: _database_errors(stack) >= 4,
            60,
            interval=0.1,
            what="runs meeting the outage",
        )
        errors_seen = _database_errors(stack)
        proxy.restore()

        result = tally(
            stack,
            "PostgreSQL outage, no recovery sweep",
            names,
            accepted,
            refused,
            prefix="rb-pg-",
            timeout=150,
        )
        result.extra.update(
            unfinished_at_outage=unfinished,
            database_errors=errors_seen,
            recovery_requeues=recovery_events(stack, ids),
        )
        result.check()
        assert result.accepted == len(names), refused
        assert result.succeeded == len(names), result.failed
        assert result.extra["recovery_requeues"] == 0
        assert "raised unexpected" not in worker_log_text(stack)  # no run ended as a failed task
    finally:
        proxy.close()


def _database_errors(stack) -> int:
    """Runs that met the outage: each logs deploy.database_error (or, unfixed, a failed OperationalError)."""
    text = worker_log_text(stack)
    return text.count("deploy.database_error") + text.count("raised unexpected: OperationalError")


def test_redis_restart_during_run(shared_stack, private_redis):
    """Restart the broker's Redis (no persistence: every queued and unacknowledged message and every
    Celery result is gone) while deploys are queued and running; then submit more. (On the shared stack,
    whose workers run 4 deploys at once where this test's own stack ran 2; it comes last of its users,
    and its workers reconnect as the test requires.)"""
    stack = shared_stack
    stack.fc.faults.configure({"*": {"latency_ms": 150}})
    names = [f"rb-redis-{i:02d}" for i in range(40)]
    accepted, refused = submit_many(stack, names)
    ids = list(accepted.values())

    def mid_run() -> bool:
        rows = statuses(stack, ids).values()
        done = sum(r.status == "succeeded" for r in rows)
        waiting = sum(r.status in ("pending", "running") for r in rows)
        return done >= 3 and waiting >= 10

    wait_until(mid_run, 60, what="some deploys done and many still queued", interval=0.05)
    unfinished = sum(r.status in ("pending", "running") for r in statuses(stack, ids).values())
    private_redis.restart()
    more = [f"rb-redis-{i:02d}" for i in range(40, 50)]
    accepted_more, refused_more = submit_many(stack, more)  # the API's producer reconnects
    accepted.update(accepted_more)
    refused.update(refused_more)

    result = tally(stack, "Redis restart", names + more, accepted, refused, prefix="rb-redis-", timeout=120)
    result.extra.update(
        unfinished_at_restart=unfinished, recovery_requeues=recovery_events(stack, list(accepted.values()))
    )
    result.check()
    assert result.accepted == len(names) + len(more), refused
    assert result.succeeded == result.accepted, result.failed
    assert result.extra["recovery_requeues"] >= 1, "the restart lost nothing: the test proved nothing"


def _start_api(stack, port: int) -> subprocess.Popen[bytes]:
    env = {**stack.env, **API_ENV}
    log = open(stack.settings.data_dir / "api.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "deployer.api:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def healthy() -> bool:
        assert proc.poll() is None, (stack.settings.data_dir / "api.log").read_text()[-3000:]
        try:
            import httpx

            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, 30, what="the API process up")
    return proc


def _count_rows(stack, prefix: str) -> int:
    from sqlalchemy import func, select

    from deployer.store.db import session_scope
    from deployer.store.tables import DeploymentRow

    with session_scope(stack.settings) as session:
        return int(
            session.scalar(
                select(func.count()).select_from(DeploymentRow).where(DeploymentRow.name.like(f"{prefix}%"))
            )
            or 0
        )
