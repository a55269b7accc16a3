"""What every benchmark shares: result rows, statistics, and a real mcp-fc stack on loopback.

A stack is the FC emulator (in this process, with latency injected per FC call), the API (uvicorn in a
subprocess, the way `mcp-fc api` runs it) and `celery -A tasks worker` subprocesses. "production" puts
the broker and Celery results in Redis (a database of its own, flushed) and the store in a fresh
PostgreSQL database (dropped afterwards); "embedded" uses the file broker and SQLite in a temp dir.
Traffic goes to 127.0.0.1 only; every wait is bounded in time.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx

from fc_emulator import EmulatorServer

REPO = Path(__file__).resolve().parents[1]
BENCH_AK, BENCH_SK = "bench-ak", "bench-secret-key"


@dataclass(frozen=True)
class Services:
    """Where the production stack's Redis and PostgreSQL listen, and what a run may name there. Each is
    settable (issue 26 #15) with an environment variable, or `python -m benchmarks --redis-port ...`:

        MCPFC_BENCH_REDIS_HOST / _PORT   Redis (default 127.0.0.1:6379)
        MCPFC_BENCH_REDIS_DBS            the databases a run may claim, "8-15" (the run claims one, in db 0,
                                         with the claim keys the integration tests use, so a benchmark and
                                         a test run on one Redis never flush each other's database)
        MCPFC_BENCH_PG_HOST / _PORT      PostgreSQL (default 127.0.0.1:5432)
        MCPFC_BENCH_PG_USER              its role (default postgres; trust or a ~/.pgpass entry)
        MCPFC_BENCH_PG_ADMIN_DB          the database CREATE/DROP DATABASE run from (default postgres)
        MCPFC_BENCH_DB_PREFIX            the prefix of the databases a run creates (and drops)

    The variables start MCPFC_BENCH_, which the stacks' processes never see (they get MCPFC_* of their own).
    """

    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_dbs: range = range(8, 16)
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_user: str = "postgres"
    pg_admin_db: str = "postgres"
    db_prefix: str = "mcpfc_bench_"

    @classmethod
    def from_env(cls) -> Services:
        env, default = os.environ, cls()
        first, _, last = env.get("MCPFC_BENCH_REDIS_DBS", "8-15").partition("-")
        return cls(
            redis_host=env.get("MCPFC_BENCH_REDIS_HOST", default.redis_host),
            redis_port=int(env.get("MCPFC_BENCH_REDIS_PORT", default.redis_port)),
            redis_dbs=range(int(first), int(last or first) + 1),
            pg_host=env.get("MCPFC_BENCH_PG_HOST", default.pg_host),
            pg_port=int(env.get("MCPFC_BENCH_PG_PORT", default.pg_port)),
            pg_user=env.get("MCPFC_BENCH_PG_USER", default.pg_user),
            pg_admin_db=env.get("MCPFC_BENCH_PG_ADMIN_DB", default.pg_admin_db),
            db_prefix=env.get("MCPFC_BENCH_DB_PREFIX", default.db_prefix),
        )

    def pg_url(self, database: str) -> str:
        return f"postgresql://{self.pg_user}@{self.pg_host}:{self.pg_port}/{database}"

    def redis_url(self, db: int) -> str:
        return f"redis://{self.redis_host}:{self.redis_port}/{db}"

    def new_database_name(self) -> str:
        return f"{self.db_prefix}{secrets.token_hex(4)}"


def services() -> Services:
    """The services as the environment says now (main() sets it from its flags first)."""
    return Services.from_env()


FC_LATENCY_MS = 100
IMAGE = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/mcp-server-time:latest"
COMMAND = ["mcp-server-time", "--local-timezone", "UTC"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- results --------------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    value: float | None
    baseline: float | None
    target: str | None  # "<= 1.15" or ">= 0.5": a bound on value / baseline; None: for information
    unit: str = ""
    note: str = ""
    skipped: bool = False

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def meets(self) -> bool | None:
        ratio = self.ratio
        if self.skipped or ratio is None or not self.target:
            return None
        op, bound = self.target.split()
        return ratio <= float(bound) if op == "<=" else ratio >= float(bound)

    def to_json(self) -> dict[str, Any]:
        r = self.ratio
        return {
            "name": self.name,
            "value": _round(self.value),
            "baseline": _round(self.baseline),
            "ratio": None if r is None else round(r, 3),
            "target": self.target,
            "meets": self.meets,
        }


def _round(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.4g}")


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def table(rows: list[Row]) -> str:
    head = ["benchmark", "value", "baseline", "unit", "ratio", "target", "meets"]
    body = []
    for r in rows:
        meets = "skipped" if r.skipped else {True: "yes", False: "NO", None: "-"}[r.meets]
        body.append(
            [
                r.name,
                fmt(r.value),
                fmt(r.baseline),
                r.unit,
                "-" if r.ratio is None else f"{r.ratio:.2f}",
                r.target or "info",
                meets,
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=False)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in body
    ]
    notes = [f"- {r.name}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + ([""] + notes if notes else []))


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) with linear interpolation."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q * 100) - 1))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- services -------------------------------------------------------------------------------------------


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def production_available() -> bool:
    found = services()
    return port_open(found.redis_port, found.redis_host) and port_open(found.pg_port, found.pg_host)


def postgres_available() -> bool:
    found = services()
    return port_open(found.pg_port, found.pg_host)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database of this run's own (dropped afterwards), as a URL."""
    import psycopg

    where = services()
    name = where.new_database_name()
    admin = where.pg_url(where.pg_admin_db)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = where.pg_url(name)
    try:
        yield url
    finally:
        from deployer.store.db import engine_for

        for u in (url, "postgresql+psycopg://" + url.split("://", 1)[1]):
            engine_for(u).dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def claim_redis_db() -> int:
    """A Redis database of this run's own, flushed (release it with `release_redis_db`)."""
    import redis

    where = services()
    claims = redis.Redis(host=where.redis_host, port=where.redis_port, db=0)
    try:
        for db in where.redis_dbs:
            if claims.set(f"mcpfc-test:claim:{db}", os.getpid(), nx=True, ex=3600):
                break
        else:
            raise RuntimeError(
                f"every Redis database {where.redis_dbs.start}-{where.redis_dbs.stop - 1} is claimed by another "
                "mcp-fc test or benchmark run (MCPFC_BENCH_REDIS_DBS chooses others)"
            )
    finally:
        claims.close()
    client = redis.Redis(host=where.redis_host, port=where.redis_port, db=db)
    client.flushdb()
    client.close()
    return db


def release_redis_db(db: int) -> None:
    import redis

    where = services()
    client = redis.Redis(host=where.redis_host, port=where.redis_port, db=db)
    client.flushdb()
    client.close()
    claims = redis.Redis(host=where.redis_host, port=where.redis_port, db=0)
    claims.delete(f"mcpfc-test:claim:{db}")
    claims.close()


def start_emulator(pending_seconds: float, latency_ms: float = FC_LATENCY_MS) -> EmulatorServer:
    fc = EmulatorServer(
        port=0, access_key_id=BENCH_AK, access_key_secret=BENCH_SK, pending_seconds=pending_seconds
    ).start()
    if latency_ms:
        fc.faults.configure({"*": {"latency_ms": latency_ms}})
    return fc


class CallClock:
    """Arrival times of FC API calls at the emulator (wraps its call counter, in this process)."""

    def __init__(self, fc: EmulatorServer) -> None:
        self.times: list[float] = []
        self._lock = threading.Lock()
        original = fc.faults.record_call

        def record(operation: str) -> None:
            with self._lock:
                self.times.append(time.monotonic())
            original(operation)

        fc.faults.record_call = record  # type: ignore[method-assign]

    def between(self, start: float, end: float) -> list[float]:
        with self._lock:
            return [t for t in self.times if start <= t <= end]


def uvicorn_argv(app: str, port: int) -> list[str]:
    """The same uvicorn settings for every app the benchmarks serve (one process, like `mcp-fc api`)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--timeout-keep-alive",
        "30",
    ]


def wait_http(url: str, timeout: float = 60, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with code {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def deploy_body(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, "command": COMMAND, **extra}


def unique_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


# -- the stack ------------------------------------------------------------------------------------------


@dataclass
class Stack:
    """Emulator + API subprocess + worker subprocesses, with their own data dir and databases."""

    kind: str  # production | embedded
    pending_seconds: float = 1.0
    latency_ms: float = FC_LATENCY_MS
    env_extra: dict[str, str] = field(default_factory=dict)
    fc: EmulatorServer | None = None
    data_dir: Path | None = None
    database_url: str | None = None
    api_url: str = ""
    api_key: str = ""
    env: dict[str, str] = field(default_factory=dict)
    api: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _cleanup: list[Callable[[], None]] = field(default_factory=list)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        tmp = tempfile.TemporaryDirectory(prefix="mcpfc-bench-")
        self._cleanup.append(tmp.cleanup)
        self.data_dir = Path(tmp.name)
        self.fc = start_emulator(self.pending_seconds, self.latency_ms)
        self._cleanup.append(self.fc.stop)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCPFC_")}
        env.update(
            MCPFC_DATA_DIR=str(self.data_dir),
            MCPFC_FC_ENDPOINT=self.fc.url,
            MCPFC_PROBE_ENABLED="false",
            MCPFC_POST_RATE_LIMIT_PER_MIN="0",  # the per-key POST limit would cap a burst client at 2/s
            MCPFC_METRICS_ENABLED="true",
            ALIBABA_CLOUD_ACCESS_KEY_ID=BENCH_AK,
            ALIBABA_CLOUD_ACCESS_KEY_SECRET=BENCH_SK,
            PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
        )
        if self.kind == "production":
            db = claim_redis_db()
            self._cleanup.append(lambda: release_redis_db(db))
            cm = postgres_database()
            self.database_url = cm.__enter__()
            self._cleanup.append(lambda: cm.__exit__(None, None, None))
            redis_url = services().redis_url(db)
            env.update(
                MCPFC_BROKER_URL=redis_url,
                MCPFC_RESULT_BACKEND=redis_url,
                MCPFC_DATABASE_URL=self.database_url,
            )
        env.update(self.env_extra)
        self.env = env
        settings = self.settings()
        self.database_url = settings.effective_database_url

        from deployer.store import keys
        from deployer.store.db import session_scope
        from deployer.store.migrate import upgrade

        upgrade(settings.effective_database_url)
        with session_scope(settings) as session:
            _, self.api_key = keys.create_api_key(session, name="bench")
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        self.api = self._spawn(uvicorn_argv("benchmarks.apps:service_app", port), "api")
        wait_http(self.api_url + "/healthz", proc=self.api)

    def settings(self) -> Any:
        from deployer.settings import Settings

        saved = {k: v for k, v in os.environ.items() if k.startswith("MCPFC_")}
        try:
            for k in saved:
                os.environ.pop(k)
            os.environ.update({k: v for k, v in self.env.items() if k.startswith("MCPFC_")})
            return Settings(_env_file=None)
        finally:
            for k in [k for k in os.environ if k.startswith("MCPFC_")]:
                os.environ.pop(k)
            os.environ.update(saved)

    def _spawn(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        assert self.data_dir is not None
        out = open(self.data_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self._cleanup.append(out.close)
        return subprocess.Popen(argv, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)

    def start_worker(self, pool: str, concurrency: int, queues: str | None = None) -> subprocess.Popen[bytes]:
        name = f"bench{len(self.workers)}-{secrets.token_hex(2)}"
        argv = [
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
            "WARNING",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            *(["--queues", queues] if queues else []),
        ]
        proc = self._spawn(argv, f"worker-{name}")
        self.workers.append(proc)
        return proc

    def wait_workers_ready(self, timeout: float = 60) -> None:
        """Run one deploy end to end (the first also warms imports, connections and caches)."""
        name = unique_name("warmup")
        with self.http() as http:
            dep = http.post("/v1/deployments", json=deploy_body(name, auth={"type": "anonymous"})).json()
            self.wait_terminal(http, dep["id"], timeout=timeout)

    def http(self, timeout: float = 90) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=timeout
        )

    def wait_terminal(
        self, http: httpx.Client, dep_id: str, *, timeout: float = 120, wait_s: float = 20
    ) -> tuple[dict[str, Any], int]:
        """Long-poll until the deployment ends; returns it and the number of GETs it took."""
        deadline = time.monotonic() + timeout
        requests = 0
        while time.monotonic() < deadline:
            dep = http.get(f"/v1/deployments/{dep_id}", params={"wait": wait_s}).json()
            requests += 1
            if dep.get("status") in ("succeeded", "failed", "cancelled", "deleted"):
                if dep["status"] != "succeeded":
                    raise RuntimeError(f"deployment {dep_id} ended {dep['status']}: {dep.get('error')}")
                return dep, requests
            self.check_alive()
        raise RuntimeError(f"deployment {dep_id} did not end within {timeout:.0f} s ({self.logs_tail()})")

    def check_alive(self) -> None:
        for proc in [*self.workers, self.api]:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"a stack process exited with code {proc.returncode}: {self.logs_tail()}")

    def logs_tail(self) -> str:
        if self.data_dir is None:
            return ""
        return " | ".join(p.read_text(errors="replace")[-600:] for p in self.data_dir.glob("*.log"))

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.workers.clear()

    def stop(self) -> None:
        # A benchmark's leftovers (countdown tasks, waiters) are not worth a graceful shutdown: cold
        # shutdown (SIGQUIT), and SIGKILL for a worker still busy after a few seconds.
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT)
        for proc in self.workers:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.workers.clear()
        stop_process(self.api)
        self.api = None
        while self._cleanup:
            try:
                self._cleanup.pop()()
            except Exception as exc:  # noqa: BLE001 - best effort teardown
                log(f"cleanup: {type(exc).__name__}: {exc}")

    def db_counts(self) -> dict[str, int]:
        """Deployments per status, read straight from the store (cheap; no API traffic)."""
        from sqlalchemy import func, select

        from deployer.store.db import engine_for
        from deployer.store.tables import DeploymentRow

        assert self.database_url is not None
        with engine_for(self.database_url).connect() as conn:
            rows = conn.execute(select(DeploymentRow.status, func.count()).group_by(DeploymentRow.status))
            return {status: n for status, n in rows}

    def db_scalar(self, stmt: Any) -> Any:
        from deployer.store.db import engine_for

        assert self.database_url is not None
        with engine_for(self.database_url).connect() as conn:
            return conn.execute(stmt).scalar()


def run_pool(n: int, threads: int, fn: Callable[[int], Any], timeout: float) -> list[Any]:
    """fn(0..n-1) on `threads` threads; results in order. Raises the first error."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(fn, i) for i in range(n)]
        deadline = time.monotonic() + timeout
        return [f.result(timeout=max(0.1, deadline - time.monotonic())) for f in futures]


def dump(path: Path, rows: list[Row]) -> None:
    path.write_text(json.dumps([r.to_json() for r in rows], indent=2) + "\n")
