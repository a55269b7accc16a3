"""The fault suite's harness, on top of tests/integration's whole-stack harness (imported, not copied).

- `private_redis`: a redis-server of our own on a free port, so a test can restart it (and lose its data,
  as a Redis without persistence does) without touching the machine's Redis. Each stack gets its own pair
  of database numbers on it.
- `pg_database()`: a fresh PostgreSQL database per stack, dropped at the end of the module.
- `reliable_stack()`: a stack (real uvicorn API, real `celery -A tasks worker` processes, the FC emulator)
  on Redis + PostgreSQL, the MCP probe off (it would start a real mcp-proxy per function: 200 do not fit
  on a CI machine), short leases and a fast recovery loop, no API rate limit. Its workers stop at the
  end of the test, so one test's recovery loop never sweeps another test's rows.
- `Tally`: the numbers every fault run prints and asserts: submitted / succeeded / failed (with reasons) /
  lost / duplicated / stuck. They are collected and printed again in pytest's terminal summary.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from deployer.store.db import engine_for, session_scope
from deployer.store.tables import DeploymentRow
from schemas import TERMINAL, Status
from tests.conftest import FAULT_RUN, TIMEOUT_SCALE, in_ci, wait_until
from tests.integration.conftest import (  # noqa: F401 - fixtures re-exported for this directory
    REPO,
    Stack,
    free_port,
    rabbitmq_url,
    require_service,
    service_up,
    stack_factory,
)

IMAGE = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/mcp-server-time:1.0"

# Worker settings for fault runs: a dead run lets go of its lease within 3 s, a sweep every second, and
# a deployment with no live run and no progress for 4 s counts as stalled. The FC retry backoff is capped
# at 1 s so that throttling storms cost seconds, not minutes.
# On a starved host (TIMEOUT_SCALE > 1) a step can outlast a 3 s lease and a healthy run would lose it,
# so the lease and the stall window stretch with the other deadlines.
FAST_RECOVERY = {
    "MCPFC_LEASE_S": str(3 * TIMEOUT_SCALE),
    "MCPFC_RECOVERY_INTERVAL_S": "1",
    "MCPFC_RECOVERY_STALL_S": str(4 * TIMEOUT_SCALE),
    "MCPFC_RECOVERY_MAX_REQUEUES": "5",
    "MCPFC_FC_BACKOFF_MAX_S": "1",
}
# What the API reads when a stack starts (deadline_at is set by the API).
API_ENV = {"MCPFC_POST_RATE_LIMIT_PER_MIN": "0", "MCPFC_DEPLOY_DEADLINE_S": "240"}

# Fault runs of this process; each test's go into its report's user_properties under FAULT_RUN.
RESULTS: list[dict[str, Any]] = []


def deploy_body(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": IMAGE,
        "command": ["mcp-server-time"],
        "auth": {"type": "anonymous"},
        **extra,
    }


# -- a private Redis --------------------------------------------------------------------------------


class RedisServer:
    """redis-server without persistence on a free loopback port; restart() loses everything it held."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._dbs = itertools.count(1)

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def new_dbs(self) -> tuple[str, str]:
        """(broker url, result backend url) on two databases no other stack uses."""
        return self.url(next(self._dbs)), self.url(next(self._dbs))

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.workdir / "redis.log"),
                "--databases",
                "64",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: service_up(self.port) and self.ping(), 20, what="private redis-server up")

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        import redis

        try:
            redis.Redis(port=self.port, socket_timeout=2).shutdown(nosave=True)
        except redis.RedisError:
            pass  # the shutdown command closes the connection under us
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        self.start()


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (.ci/run's machine has it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


# -- a PostgreSQL outage we can cause ---------------------------------------------------------------


class TcpProxy:
    """A loopback TCP relay in front of the shared PostgreSQL, so a test can take "the database" away
    (cut every connection and refuse new ones, as a stopped server does) without stopping the server
    other engineers and test runs share."""

    def __init__(self, target_port: int) -> None:
        import socket
        import threading

        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = threading.Event()
        self._conns: set[Any] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="pg-proxy", daemon=True).start()

    def url(self, database_url: str) -> str:
        return database_url.replace(":5432/", f":{self.port}/")

    def _accept(self) -> None:
        import socket
        import threading

        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down.is_set():
                client.close()  # connection refused, near enough: the client sees EOF at once
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: Any, dst: Any) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            self._drop(src, dst)

    def _drop(self, *socks: Any) -> None:
        import socket

        for sock in socks:
            with self._lock:
                self._conns.discard(sock)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def cut(self) -> None:
        """The database goes away: every open connection breaks, new ones are closed at once."""
        self.down.set()
        with self._lock:
            conns = list(self._conns)
        self._drop(*conns)

    def restore(self) -> None:
        self.down.clear()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()


# -- fresh PostgreSQL databases ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_database() -> Iterator[Callable[[], str]]:
    """Call it for a new, empty database; all are dropped when the module ends."""
    require_service("PostgreSQL", 5432)
    import psycopg

    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    made: list[str] = []

    def new() -> str:
        name = f"mcpfc_rel_{secrets.token_hex(4)}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return f"postgresql://postgres@127.0.0.1:5432/{name}"

    yield new
    for name in made:
        for url in (
            f"postgresql://postgres@127.0.0.1:5432/{name}",
            f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
        ):
            engine_for(url).dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- stacks -------------------------------------------------------------------------------------------


def build_reliable_stack(
    stack_factory: Callable[..., Stack],  # noqa: F811 (the fixture re-exported above)
    private_redis: RedisServer,
    pg_database: Callable[[], str],
    *,
    workers: int = 2,
    concurrency: int = 4,
    extra_env: dict[str, str] | None = None,
    broker_url: str | None = None,
    database_url: str | None = None,
) -> Stack:
    broker, results = private_redis.new_dbs()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in API_ENV.items():
            mp.setenv(key, value)
        stack = stack_factory(
            broker_url=broker_url or broker,
            result_backend=results,
            database_url=database_url or pg_database(),
            workers=workers,
            concurrency=concurrency,
            probe=False,
            extra_env={**FAST_RECOVERY, **(extra_env or {})},
        )
    wait_workers_ready(stack)
    return stack


@pytest.fixture
def reliable_stack(stack_factory, private_redis, pg_database) -> Iterator[Callable[..., Stack]]:  # noqa: F811
    """Build a Redis + PostgreSQL stack for this test (workers are stopped when the test ends)."""
    require_service("PostgreSQL", 5432)
    built: list[Stack] = []

    def build(**kw: Any) -> Stack:
        stack = build_reliable_stack(stack_factory, private_redis, pg_database, **kw)
        built.append(stack)
        return stack

    yield build
    for stack in built:
        stack.stop_workers()


@pytest.fixture
def embedded_stack(stack_factory) -> Iterator[Callable[..., Stack]]:  # noqa: F811
    """The embedded default (file broker + SQLite), probe off, fast recovery; workers stop with the test."""
    built: list[Stack] = []

    def build(
        *,
        workers: int = 1,
        pool: str = "prefork",
        concurrency: int = 2,
        extra_env: dict[str, str] | None = None,
    ) -> Stack:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in API_ENV.items():
                mp.setenv(key, value)
            stack = stack_factory(
                workers=workers,
                pool=pool,
                concurrency=concurrency,
                probe=False,
                extra_env={**FAST_RECOVERY, **(extra_env or {})},
            )
        built.append(stack)
        if workers:
            wait_workers_ready(stack)
        return stack

    yield build
    for stack in built:
        stack.stop_workers()


def worker_log_text(stack: Stack) -> str:
    return "\n".join(
        p.read_text(errors="replace") for p in sorted(stack.settings.data_dir.glob("worker-*.log"))
    )


def wait_workers_ready(stack: Stack, timeout: float = 60) -> None:
    """Until every worker logged 'ready' (so a test's clock does not include Celery's start-up)."""

    def ready() -> bool:
        for proc in stack.workers:
            assert proc.poll() is None, f"a worker exited with {proc.returncode}:\n{stack.worker_logs()}"
        return worker_log_text(stack).count(" ready.") >= len(stack.workers)

    wait_until(ready, timeout, what="workers ready")


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc), children first."""
    out: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        out += process_tree(int(child))
    return out + [pid]


def kill_worker(stack: Stack, proc: subprocess.Popen[bytes]) -> int:
    """SIGKILL a whole worker (main process and pool children at once), as an OOM kill or a lost node does."""
    pids = process_tree(proc.pid)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(10)
    stack.workers.remove(proc)
    return len(pids)


# -- submitting and counting -----------------------------------------------------------------------


def submit_many(
    stack: Stack,
    names: list[str],
    *,
    threads: int = 16,
    body: Callable[[str], dict[str, Any]] = deploy_body,
    retry_until: float = 60,
) -> tuple[dict[str, str], Counter[str]]:
    """POST a deploy per name from `threads` clients, each with its own Idempotency-Key. A connection error
    or a 5xx is retried with the same key (the API may be down for a moment) until `retry_until` s.
    Returns ({name: deployment id} for every 202, Counter of the other answers and of replays)."""
    from concurrent.futures import ThreadPoolExecutor

    accepted: dict[str, str] = {}
    refused: Counter[str] = Counter()

    def one(name: str) -> None:
        key = f"rel-{name}-{secrets.token_hex(4)}"
        deadline = time.monotonic() + retry_until
        while True:
            try:
                with httpx.Client(
                    base_url=stack.api_url,
                    timeout=30,
                    headers={"Authorization": f"Bearer {stack.api_key}", "Idempotency-Key": key},
                ) as http:
                    resp = http.post("/v1/deployments", json=body(name))
            except httpx.TransportError as exc:
                outcome = type(exc).__name__
            else:
                if resp.status_code == 202:
                    accepted[name] = resp.json()["id"]
                    if resp.headers.get("Idempotent-Replayed") == "true":
                        refused["replayed (202, first answer)"] += 1
                    return
                outcome = f"{resp.status_code} {resp.json().get('type', '')}"
                if resp.status_code < 500:
                    refused[outcome] += 1
                    return
            if time.monotonic() > deadline:
                refused[outcome] += 1
                return
            refused[f"retried after {outcome}"] += 1
            time.sleep(0.2)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, names))
    return accepted, refused


def statuses(stack: Stack, ids: list[str]) -> dict[str, DeploymentRow]:
    with session_scope(stack.settings) as session:
        rows = session.scalars(select(DeploymentRow).where(DeploymentRow.id.in_(ids))).all()
        for row in rows:
            session.expunge(row)
    return {row.id: row for row in rows}


def wait_terminal(stack: Stack, ids: list[str], timeout: float) -> float:
    """Poll the store until every deployment is terminal or the deadline passes; returns the seconds taken."""
    start = time.monotonic()
    terminal = [s.value for s in TERMINAL]
    timeout *= TIMEOUT_SCALE
    while time.monotonic() - start < timeout:
        with session_scope(stack.settings) as session:
            done = session.scalar(
                select(func.count())
                .select_from(DeploymentRow)
                .where(DeploymentRow.id.in_(ids), DeploymentRow.status.in_(terminal))
            )
        if done == len(ids):
            break
        time.sleep(0.5)
    return time.monotonic() - start


@dataclass
class Tally:
    run: str
    submitted: int = 0
    accepted: int = 0
    succeeded: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        failed = sum(self.failed.values())
        reasons = ", ".join(f"{k}: {v}" for k, v in self.failed.most_common()) or "-"
        refused = f" answers={dict(self.refused)}" if self.refused else ""
        extra = " ".join(f"{k}={v}" for k, v in self.extra.items())
        return (
            f"[{self.run}] submitted={self.submitted} accepted={self.accepted} succeeded={self.succeeded} "
            f"failed={failed} ({reasons}) lost={len(self.lost)} duplicated={len(self.duplicated)} "
            f"stuck={len(self.stuck)} orphans={len(self.orphans)} missing={len(self.missing)}{refused} "
            f"in {self.seconds:.1f} s {extra}".rstrip()
        )

    def check(self) -> None:
        """lost = duplicated = stuck = 0, every failure has a reason, and the emulator agrees with the store."""
        print(self.line())
        RESULTS.append({"line": self.line(), **self.numbers()})
        assert not self.lost, f"lost: {self.lost[:10]}"
        assert not self.duplicated, f"duplicated: {self.duplicated[:10]}"
        assert not self.stuck, f"stuck: {self.stuck[:10]}"
        assert not self.orphans, f"functions no deployment accounts for: {self.orphans[:10]}"
        assert not self.missing, f"succeeded but missing in FC: {self.missing[:10]}"

    def numbers(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "submitted": self.submitted,
            "accepted": self.accepted,
            "succeeded": self.succeeded,
            "failed": dict(self.failed),
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "stuck": len(self.stuck),
            "seconds": round(self.seconds, 1),
            **self.extra,
        }


def tally(
    stack: Stack,
    run: str,
    names: list[str],
    accepted: dict[str, str],
    refused: Counter[str],
    *,
    prefix: str,
    timeout: float,
    gone: frozenset[str] = frozenset(),
) -> Tally:
    """Wait (bounded) for every accepted deployment, then count, from the store and from FC itself.
    Names in `gone` were deleted: `deleted` is their success, and a function left in FC an orphan."""
    t = Tally(run=run, submitted=len(names), accepted=len(accepted), refused=refused)
    ids = list(accepted.values())
    t.seconds = wait_terminal(stack, ids, timeout)
    rows = statuses(stack, ids)
    for name, dep_id in accepted.items():
        row = rows.get(dep_id)
        if row is None or (row.status == Status.pending.value and row.attempts == 0):
            t.lost.append(name)  # 202, then no row, or never run by any worker
        elif row.status not in {s.value for s in TERMINAL}:
            t.stuck.append(f"{name}:{row.status}/{row.stage}")
        elif row.status == Status.succeeded.value or (name in gone and row.status == Status.deleted.value):
            t.succeeded += 1
        else:
            error = row.error or {}
            assert error.get("code") and error.get("message"), (
                f"{name} {row.status} without a reason: {error}"
            )
            t.failed[f"{error.get('step')}/{error['code']}"] += 1
    state = stack.fc.backend.snapshot()
    functions = {n: f for n, f in state["functions"].items() if n.startswith(prefix)}
    for fn_name in functions:
        triggers = state["triggers"].get(fn_name, {})
        if len(triggers) > 1:
            t.duplicated.append(f"{fn_name}: {len(triggers)} triggers")
        if fn_name not in accepted or fn_name in gone:
            t.orphans.append(fn_name)
    for name, dep_id in accepted.items():
        row = rows.get(dep_id)
        if row is not None and row.status == Status.succeeded.value:
            trig = state["triggers"].get(name, {})
            url = ((row.result or {}).get("trigger_result") or {}).get("body", {}).get("httpTrigger", {})
            if name not in functions or len(trig) != 1:
                t.missing.append(name)
            elif next(iter(trig.values())).get("httpTrigger", {}).get("urlInternet") != url.get(
                "urlInternet"
            ):
                t.missing.append(f"{name}: stored URL differs from FC's")
    return t


@dataclass
class Call:
    op: str
    function: str
    start: float
    end: float


class CallLog:
    """Records every FC control-plane call the emulator serves as (operation, function, start, end), by
    wrapping its backend's methods in this (the test) process. `hold` adds a delay inside the recorded
    window for the given functions, so calls that could overlap really would."""

    OPS = (
        "create_function",
        "update_function",
        "get_function",
        "delete_function",
        "create_trigger",
        "update_trigger",
        "get_trigger",
        "delete_trigger",
        "list_triggers",
    )

    def __init__(self, backend: Any, hold: dict[str, float] | None = None) -> None:
        import threading

        self.calls: list[Call] = []
        self.hold = hold or {}
        self._lock = threading.Lock()
        for op in self.OPS:
            setattr(backend, op, self._wrap(op, getattr(backend, op)))

    def _wrap(self, op: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kw: Any) -> Any:
            first = args[0] if args else None
            name = str(first.get("functionName")) if isinstance(first, dict) else str(first)
            start = time.monotonic()
            try:
                if name in self.hold:
                    time.sleep(self.hold[name])
                return method(*args, **kw)
            finally:
                with self._lock:
                    self.calls.append(Call(op, name, start, time.monotonic()))

        return recorded

    def of(self, name: str) -> list[Call]:
        with self._lock:
            return sorted((c for c in self.calls if c.function == name), key=lambda c: c.start)

    def count(self, name: str, op: str) -> int:
        return sum(c.op == op for c in self.of(name))

    @staticmethod
    def overlaps(calls: list[Call]) -> list[tuple[Call, Call]]:
        """Pairs of calls whose windows intersect (one run's calls never do: they are sequential)."""
        ordered = sorted(calls, key=lambda c: c.start)
        return [(a, b) for a, b in zip(ordered, ordered[1:], strict=False) if b.start < a.end]


def emulator_stats(stack: Stack) -> dict[str, Any]:
    return stack.fc.faults.stats()


def recovery_events(stack: Stack, ids: list[str]) -> int:
    """How many re-queues the recovery loop made for these deployments."""
    from deployer.store.tables import DeploymentEvent

    with session_scope(stack.settings) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(DeploymentEvent)
                .where(
                    DeploymentEvent.deployment_id.in_(ids),
                    DeploymentEvent.message.like("recovery: re-queued%"),
                )
            )
            or 0
        )


@pytest.fixture(autouse=True)
def report_fault_runs(request: pytest.FixtureRequest) -> Iterator[None]:
    """Hand this test's fault-run numbers to its report: under xdist the summary is printed by the
    controller (tests/conftest.py), which sees reports, not this worker's RESULTS."""
    first = len(RESULTS)
    yield
    request.node.user_properties.extend((FAULT_RUN, result) for result in RESULTS[first:])
