"""GET latency with many /events streams open (issue 16 defect 9d): `python -m benchmarks.event_streams`.

One API process (uvicorn, as `mcp-fc api` runs it) on a fresh PostgreSQL database, one pending deployment
(no worker, so its streams stay open), then sequential GETs of it: first with no stream open, then with
`--streams` streams open on it. Each stream used to read the database five times a second; now it waits on
the change feed. Prints p50/p95/max of the GETs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import httpx
import psycopg

from benchmarks.common import deploy_body, services, stop_process, wait_http


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _gets(http: httpx.AsyncClient, url: str, headers: dict[str, str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        r = await http.get(url, headers=headers)
        out.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200, r.text
    return out


def _summary(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=20)
    return f"p50 {statistics.median(ms):.1f} ms, p95 {q[18]:.1f} ms, max {max(ms):.1f} ms"


async def _run(base: str, headers: dict[str, str], streams: int, gets: int) -> None:
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        r = await http.post("/v1/deployments", json=deploy_body("mcp-streams"), headers=headers)
        assert r.status_code == 202, r.text
        url = f"/v1/deployments/{r.json()['id']}"
        await _gets(http, url, headers, 20)  # warm the cache and the pool
        print(f"no stream open:     {_summary(await _gets(http, url, headers, gets))}")

        opened = 0
        stop = asyncio.Event()

        async def stream() -> None:
            nonlocal opened
            async with http.stream("GET", url + "/events", headers=headers) as s:
                assert s.status_code == 200, await s.aread()
                opened += 1
                async for _ in s.aiter_lines():
                    if stop.is_set():
                        return

        tasks = [asyncio.create_task(stream()) for _ in range(streams)]
        while opened < streams:
            await asyncio.sleep(0.05)
        await asyncio.sleep(2)  # let the streams settle into their steady state
        ms = await _gets(http, url, headers, gets)
        print(f"{streams} streams open: {_summary(ms)}")
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.event_streams", description=__doc__)
    p.add_argument("--streams", type=int, default=150)
    p.add_argument("--gets", type=int, default=200)
    args = p.parse_args(argv)

    where = services()  # MCPFC_BENCH_PG_* (benchmarks/common.py Services)
    admin = where.pg_url(where.pg_admin_db)
    name = where.new_database_name()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db_url = where.pg_url(name)
    port = _free_port()
    proc = None
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("MCPFC_")},
                "MCPFC_DATA_DIR": data_dir,
                "MCPFC_DATABASE_URL": db_url,
                "MCPFC_API_PORT": str(port),
                "MCPFC_EVENTS_STREAMS_PER_KEY": "0",
                "MCPFC_POST_RATE_LIMIT_PER_MIN": "0",
            }
            proc = subprocess.Popen(
                [sys.executable, "-c", "from deployer.api import serve; serve()"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/healthz", proc=proc)
            wait_http(base + "/readyz", proc=proc)

            os.environ["MCPFC_DATABASE_URL"] = db_url
            from deployer.settings import Settings
            from deployer.store import keys
            from deployer.store.db import session_scope

            settings = Settings(_env_file=None, data_dir=data_dir, database_url=db_url)  # type: ignore[call-arg]
            with session_scope(settings) as session:
                _, key = keys.create_api_key(session, name="bench")
            asyncio.run(_run(base, {"Authorization": f"Bearer {key}"}, args.streams, args.gets))
    finally:
        stop_process(proc)
        from deployer.store.db import engine_for, normalise_url

        engine_for(normalise_url(db_url)).dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
