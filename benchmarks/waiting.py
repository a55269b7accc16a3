"""Waiting: W deploys waiting on `Pending` functions hold no worker slot.

1. idle: K deploys one after another (functions Pending PENDING_S), POST → succeeded each;
2. the emulator's `pending_seconds` goes to an hour and W deploys are POSTed; they create their
   functions and wait with the service's default readiness schedule (`tasks.deploy.ready_poll_delay`:
   the countdown grows ×1.5 and with the time already waited, up to `ready_poll_max_s`, 30 s): a waiting
   deploy sleeps in the broker, not in a worker slot;
3. once every one of them is waiting and their poll interval has reached its cap, `pending_seconds`
   goes back to PENDING_S (it applies to functions created from then on) and K deploys run again.

The row holds p50 of (3) against p50 of (1). The W waiting deploys still poll FC (W / 30 calls/s at the
cap), so this measures both the slot usage and the cost of their polling on the same 2 cores.

The stack runs the production topology: the deploy worker (the pool and concurrency under test) consumes
high, default and low; a second worker, threads x WAITING_SLOTS, consumes `waiting`, where a deploy's
re-polls go once it has waited `wait_queue_after_s` (30 s). Each re-poll holds a slot for one FC call
(100 ms here): 1,000 waiters at the cap need ~3.5 slots, all of a 2-per-core deploy worker.
"""

from __future__ import annotations

import time

from sqlalchemy import func, select

from benchmarks.common import Row, Stack, deploy_body, log, median, run_pool
from benchmarks.overhead import service_deploy
from deployer.celery_app import WAITING_QUEUE
from deployer.settings import Settings
from deployer.store.tables import DeploymentRow
from tasks.deploy import ready_poll_delay

PENDING_S = 1.0
WAITING_SLOTS = 32
DEFAULTS = Settings.model_construct()  # the defaults the stack runs with (it drops MCPFC_* from the env)


def settle_time() -> float:
    """How long until a new waiter polls at its cap: the sum of the growing countdowns, and one more."""
    waited, polls = 0.0, 1
    while (delay := ready_poll_delay(DEFAULTS, polls, waited)) < DEFAULTS.ready_poll_max_s:
        waited += delay
        polls += 1
    return waited + DEFAULTS.ready_poll_max_s


def run(*, quick: bool, kind: str, pool: str, concurrency: int) -> list[Row]:
    waiters = 200 if quick else 1000
    k = 5 if quick else 12
    with Stack(kind, pending_seconds=PENDING_S) as stack:
        assert stack.fc is not None
        stack.start_worker(pool, concurrency, queues="high,default,low")
        stack.start_worker("threads", WAITING_SLOTS, queues=WAITING_QUEUE)
        stack.wait_workers_ready()
        idle: list[float] = []
        loaded: list[float] = []
        with stack.http() as http:
            for i in range(k):
                idle.append(
                    service_deploy(stack, http, f"idle-{i}-{time.time_ns() % 10**8}", long_poll=True)[0]
                )

            stack.fc.backend.configure(pending_seconds=3600)
            prefix = f"wait{time.time_ns() % 10**8}"
            clients = [stack.http() for _ in range(8)]

            def post(i: int) -> None:
                resp = clients[i % 8].post("/v1/deployments", json=deploy_body(f"{prefix}-{i}"))
                if resp.status_code != 202:
                    raise RuntimeError(f"POST answered {resp.status_code}: {resp.text[:200]}")

            t0 = time.monotonic()
            run_pool(waiters, 8, post, timeout=300)
            for c in clients:
                c.close()
            waiting_q = select(func.count()).where(
                DeploymentRow.name.like(f"{prefix}-%"), DeploymentRow.stage == "waiting_function"
            )
            deadline = time.monotonic() + 120 + waiters * 0.2
            while (n := stack.db_scalar(waiting_q)) < waiters:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {n}/{waiters} deploys reached waiting_function")
                stack.check_alive()
                time.sleep(0.5)
            all_waiting = time.monotonic() - t0
            time.sleep(settle_time())  # let the waiters' poll interval reach its cap
            stack.fc.backend.configure(pending_seconds=PENDING_S)
            calls_before = stack.fc.faults.stats()["calls"].get("GetFunction", 0)
            t1 = time.monotonic()
            for i in range(k):
                loaded.append(
                    service_deploy(stack, http, f"loaded-{i}-{time.time_ns() % 10**8}", long_poll=True)[0]
                )
            polls = (stack.fc.faults.stats()["calls"].get("GetFunction", 0) - calls_before) / (
                time.monotonic() - t1
            )
            still = stack.db_scalar(waiting_q)
        log(
            f"waiting: idle {idle}, loaded {loaded}; {waiters} waiters all waiting after "
            f"{all_waiting:.1f} s, "
            f"{still} still waiting at the end; {polls:.0f} GetFunction/s meanwhile"
        )
    return [
        Row(
            f"waiting: new deploy with {waiters} deploys waiting on Pending vs idle system",
            median(loaded),
            median(idle),
            "<= 1.2",
            "s",
            f"p50 of {k} deploys each; the {waiters} waiters re-poll every {DEFAULTS.ready_poll_max_s:g} s "
            f"({polls:.0f} GetFunction/s during the measurement); deploy worker {pool} x{concurrency}, "
            f"`waiting` queue on threads x{WAITING_SLOTS}",
        )
    ]
