"""Scale: list-page latency with 100,000 deployments against 100, through the real API.

Rows are inserted straight into the store with SQLAlchemy core, in bulk, for one owner (the one that
lists: the worst case), shaped like real deployments (valid spec, SDK-shaped result, urls), one per
second: in the big store 97% succeeded, 1% failed, 1% running, 1% deleted; in the small one every other
row failed, so the `?status=failed` page is a full page in both (the same answer size; only the store's
size differs). Both stores are served at once, each by its own API process (uvicorn), and each query is
timed on both with their requests interleaved (p50 of R requests each): the first page, a page deep in the
list (keyset cursor), a status-filtered page, and GET by function name. SQLite by default; PostgreSQL too
in the full run when it answers (where: benchmarks/common.py `Services`).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import (
    COMMAND,
    IMAGE,
    REPO,
    Row,
    free_port,
    log,
    median,
    postgres_available,
    postgres_database,
    stop_process,
    uvicorn_argv,
    wait_http,
)
from deployer.settings import Settings
from deployer.store import keys
from deployer.store.db import engine_for, session_scope
from deployer.store.migrate import upgrade
from deployer.store.tables import DeploymentRow
from schemas import DeployRequest

LIMIT = 50


def _result(name: str) -> dict[str, Any]:
    fn = {
        "functionName": name,
        "runtime": "custom-container",
        "handler": "index.handler",
        "timeout": 600,
        "memorySize": 512,
        "cpu": 0.5,
        "diskSize": 512,
        "instanceConcurrency": 10,
        "state": "Active",
        "customContainerConfig": {
            "image": IMAGE,
            "port": 8080,
            "command": ["mcp-proxy", "--port", "8080", "--host", "0.0.0.0", "--", *COMMAND],
        },
        "environmentVariables": {},
        "internetAccess": True,
    }
    url = f"https://{name}-abcdefghij.cn-hangzhou.fcapp.run"
    trig = {
        "triggerName": "http",
        "triggerType": "http",
        "qualifier": "LATEST",
        "triggerConfig": json.dumps({"authType": "jwt", "methods": ["GET", "POST"]}),
        "httpTrigger": {"urlInternet": url, "urlIntranet": url.replace("fcapp.run", "vpc.fcapp.run")},
    }
    headers = {"x-fc-request-id": "1-abc", "content-type": "application/json"}
    return {
        "function_result": {"headers": headers, "statusCode": 200, "body": fn},
        "trigger_result": {"headers": headers, "statusCode": 200, "body": trig},
    }


def populate(url: str, owner_id: str, n: int, statuses: list[str]) -> dict[str, Any]:
    """Insert n deployments for owner_id; returns probes for the queries (a deep cursor, a name)."""
    spec = DeployRequest(name="x", image=IMAGE, command=COMMAND).model_dump(mode="json")
    base = datetime(2026, 1, 1, tzinfo=UTC)
    table = DeploymentRow.__table__
    engine = engine_for(url)
    batch: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for i in range(n):
            name = f"fn-{i:07d}"
            created = base + timedelta(seconds=i)
            result = _result(name)
            url_ = result["trigger_result"]["body"]["httpTrigger"]["urlInternet"]
            status = statuses[i % len(statuses)]
            batch.append(
                {
                    "id": f"{int(created.timestamp() * 1000):012x}{i:012x}",
                    "owner_id": owner_id,
                    "name": name,
                    "region": "cn-hangzhou",
                    "status": status,
                    "stage": "done",
                    "progress": 100,
                    "operation": "deploy",
                    "task_id": f"t{i:012x}",
                    "attempts": 1,
                    "error": {"code": "FunctionFailed", "message": "boom", "retryable": False}
                    if status == "failed"
                    else None,
                    "spec": {**spec, "name": name, "region": "cn-hangzhou"},
                    "result": result,
                    "urls": {"internet": url_, "intranet": url_, "sse": url_ + "/sse", "mcp": url_ + "/mcp"},
                    "tools": ["get_current_time", "convert_time"],
                    "checkpoint": {"function": True, "trigger": True},
                    "function_created": True,
                    "cancel_requested": False,
                    "created_at": created,
                    "updated_at": created,
                }
            )
            if len(batch) >= 5000:
                conn.execute(table.insert(), batch)
                batch = []
        if batch:
            conn.execute(table.insert(), batch)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE deployments")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    mid = n // 2
    created = base + timedelta(seconds=mid)
    dep_id = f"{int(created.timestamp() * 1000):012x}{mid:012x}"
    raw = json.dumps([created.isoformat(), dep_id]).encode()  # store's keyset cursor: [created_at, id]
    return {"cursor": base64.urlsafe_b64encode(raw).decode().rstrip("="), "name": f"fn-{mid:07d}"}


@contextmanager
def served_store(url: str, n: int) -> Iterator[tuple[httpx.Client, dict[str, tuple[str, dict[str, Any]]]]]:
    """A store of n deployments at `url` behind its own API process: a client with the owner's key, and
    the queries to time (label: path, params)."""
    with tempfile.TemporaryDirectory(prefix="mcpfc-scale-") as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp), database_url=url)
        upgrade(settings.effective_database_url)
        with session_scope(settings) as session:
            key_row, key = keys.create_api_key(session, name="scale")
        t0 = time.monotonic()
        # Rare failures in the big store; in the small one half fail, so both answer a full filtered page.
        statuses = (
            (["succeeded"] * 97 + ["failed", "running", "deleted"]) if n > 1000 else ["succeeded", "failed"]
        )
        probes = populate(settings.effective_database_url, key_row.owner_id, n, statuses)
        engine_name = settings.effective_database_url.split(":")[0]
        log(f"scale: {n:,} rows in {engine_name} in {time.monotonic() - t0:.1f} s")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCPFC_")}
        env.update(
            MCPFC_DATA_DIR=tmp, MCPFC_DATABASE_URL=url, MCPFC_BROKER_URL="memory://", PYTHONPATH=str(REPO)
        )
        proc = subprocess.Popen(
            uvicorn_argv("benchmarks.apps:service_app", port),
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        queries = {
            "first page": ("/v1/deployments", {"limit": LIMIT}),
            "deep page (keyset cursor)": ("/v1/deployments", {"limit": LIMIT, "cursor": probes["cursor"]}),
            "?status=failed page": ("/v1/deployments", {"limit": LIMIT, "status": "failed"}),
            "GET by function name": (f"/v1/deployments/{probes['name']}", {}),
        }
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=60
            ) as http:
                yield http, queries
        finally:
            stop_process(proc)
            engine_for(settings.effective_database_url).dispose()


def timed_get(http: httpx.Client, label: str, path: str, params: dict[str, Any]) -> float:
    started = time.perf_counter()
    resp = http.get(path, params=params)
    elapsed = time.perf_counter() - started
    if resp.status_code != 200:
        raise RuntimeError(f"{label}: {resp.status_code} {resp.text[:200]}")
    return elapsed


def measure_interleaved(urls: dict[int, str], requests: int) -> dict[int, dict[str, float]]:
    """p50 of each query on each store, the stores' requests interleaved (small, big, big, small, ...),
    so whatever else the machine does in those seconds weighs on both alike (measured minutes apart, one
    query's ratio ranged 0.50-2.19 over three runs: issue 26 #15)."""
    sizes = list(urls)
    with ExitStack() as stack:
        served = {n: stack.enter_context(served_store(urls[n], n)) for n in sizes}
        out: dict[int, dict[str, float]] = {n: {} for n in sizes}
        for label in served[sizes[0]][1]:
            times: dict[int, list[float]] = {n: [] for n in sizes}
            for i in range(requests + 3):
                order = sizes if i % 2 == 0 else sizes[::-1]
                for n in order:
                    http, queries = served[n]
                    elapsed = timed_get(http, label, *queries[label])
                    if i >= 3:  # the first few warm caches
                        times[n].append(elapsed)
            for n in sizes:
                out[n][label] = median(times[n])
    return out


def run(*, quick: bool, kind: str, pool: str, concurrency: int) -> list[Row]:
    big, small = 100_000, 100
    requests = 30 if quick else 100
    rows: list[Row] = []
    dbs = ["sqlite"] + (["postgresql"] if not quick and postgres_available() else [])
    for db in dbs:
        with ExitStack() as stores:
            if db == "sqlite":
                urls = {
                    n: f"sqlite:///{stores.enter_context(tempfile.TemporaryDirectory())}/scale.db"
                    for n in (small, big)
                }
            else:
                urls = {n: stores.enter_context(postgres_database()) for n in (small, big)}
            results = measure_interleaved(urls, requests)
        for label in results[small]:
            rows.append(
                Row(
                    f"scale ({db}): {label}, {big:,} vs {small} deployments",
                    results[big][label] * 1000,
                    results[small][label] * 1000,
                    "<= 1.5",
                    "ms",
                    f"p50 of {requests} sequential requests per store, the two stores' requests "
                    f"interleaved; limit={LIMIT}",
                )
            )
    return rows


if __name__ == "__main__":  # pragma: no cover - handy for one-off runs
    print(run(quick="--quick" in sys.argv, kind="", pool="", concurrency=0))
