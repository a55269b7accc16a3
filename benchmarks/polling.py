"""Polling: `GET /v1/deployments/{id}` requests/s at 64 concurrent clients against a bare FastAPI
endpoint that returns a constant, served the same way (uvicorn, same flags, one process each, one at a
time). Each of the 64 clients polls a deployment of its own (real ones, deployed first); the constant
is the JSON document the service returns for one of them, so both send the same bytes. The load comes
from `benchmarks.loadgen` in a process of its own (raw asyncio keep-alive connections, far cheaper
than the server). The two servers alternate; the best of the rounds counts. On PostgreSQL the service
answers from its read cache once a deployment has been read (deployer/api/hot_cache.py); the note
reports the cache's hits and misses over the measured rounds, read from the service's /metrics.
"""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from benchmarks.common import (
    REPO,
    Row,
    Stack,
    deploy_body,
    free_port,
    log,
    stop_process,
    unique_name,
    uvicorn_argv,
    wait_http,
)

CONNECTIONS = 64


def load(port: int, paths: list[str], headers: list[str], duration: float) -> dict[str, float]:
    argv = [
        sys.executable,
        "-m",
        "benchmarks.loadgen",
        "--port",
        str(port),
        "--connections",
        str(CONNECTIONS),
        "--duration",
        str(duration),
        "--warmup",
        "1",
    ]
    for path in paths:
        argv += ["--path", path]
    for h in headers:
        argv += ["--header", h]
    out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=duration + 90, check=True)
    return json.loads(out.stdout)


def read_cache_counts(port: int) -> dict[str, int] | None:
    """The service's read-cache counters from /metrics (deployer/api/hot_cache.py): {"hit", "miss"}, or
    None while the cache is off (no change feed: SQLite, or the listener is down)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    counts = {"hit": 0, "miss": 0, "listening": 0}
    for line in text.splitlines():
        if line.startswith("mcpfc_read_cache_lookups_total{"):
            counts[line.split('"')[1]] = int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("mcpfc_read_cache_listening "):
            counts["listening"] = int(float(line.rsplit(" ", 1)[1]))
    return counts if counts["listening"] else None


def cache_note(before: dict[str, int] | None, after: dict[str, int] | None) -> str:
    """Hits and misses between two readings, e.g. "41,203 hits, 64 misses (99.8 % hits)"."""
    if before is None or after is None:
        return "off"
    hits, misses = after["hit"] - before["hit"], after["miss"] - before["miss"]
    share = 100 * hits / (hits + misses) if hits + misses else 0.0
    return f"{hits:,} hits, {misses:,} misses ({share:.1f} % hits)"


def run(*, quick: bool, kind: str, pool: str, concurrency: int) -> list[Row]:
    duration, rounds = (4.0, 2) if quick else (10.0, 3)
    with Stack(kind, pending_seconds=0.2) as stack:
        stack.start_worker(pool, min(concurrency, 4))
        stack.wait_workers_ready()
        with stack.http() as http:  # one deployment per client, as 64 users polling their own deploys
            prefix = unique_name("poll")
            ids = [
                http.post("/v1/deployments", json=deploy_body(f"{prefix}-{i}")).json()["id"]
                for i in range(CONNECTIONS)
            ]
            docs = [stack.wait_terminal(http, dep_id)[0] for dep_id in ids]
        stack.stop_workers()  # nothing else runs while we measure
        assert stack.data_dir is not None
        constant = stack.data_dir / "constant.json"
        constant.write_text(json.dumps(docs[0]))
        paths = [f"/v1/deployments/{dep_id}" for dep_id in ids]
        headers = [f"Authorization: Bearer {stack.api_key}"]
        service_port = int(stack.api_url.rsplit(":", 1)[1])
        service, bare = [], []
        first = read_cache_counts(service_port)
        for i in range(rounds):
            before = read_cache_counts(service_port)
            service.append(load(service_port, paths, headers, duration))
            after = read_cache_counts(service_port)
            port = free_port()
            env = {**stack.env, "BENCH_CONSTANT_FILE": str(constant)}
            proc = subprocess.Popen(
                uvicorn_argv("benchmarks.apps:bare_app", port),
                env=env,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
                bare.append(load(port, paths, headers, duration))
            finally:
                stop_process(proc)
            s, b = service[-1], bare[-1]
            log(
                f"polling round {i + 1}: service {s['rps']:.0f} req/s (p50 {s['p50_ms']:.1f} ms, "
                f"errors {s['errors']}), bare {b['rps']:.0f} req/s (p50 {b['p50_ms']:.1f} ms); "
                f"read cache this round: {cache_note(before, after)}"
            )
    best_s = max(service, key=lambda r: r["rps"])
    best_b = max(bare, key=lambda r: r["rps"])
    return [
        Row(
            f"polling: GET /v1/deployments/{{id}} req/s at {CONNECTIONS} clients vs bare FastAPI",
            best_s["rps"],
            best_b["rps"],
            ">= 0.8",
            "req/s",
            f"best of {rounds} x {duration:g} s; p50 {best_s['p50_ms']:.1f} ms vs {best_b['p50_ms']:.1f} ms; "
            f"non-200 answers: {sum(r['errors'] for r in service)}; {kind} store; "
            f"read cache over the {rounds} service rounds: {cache_note(first, after)}",
        )
    ]
