"""Burst: N deploys POSTed at once (by 8 clients); deploys/s against the ideal for the worker concurrency
used.

Functions are Active at once (pending 0) and the probe is off, so a deploy is a release of exactly 5 FC
calls of 100 ms each (CreateFunction, GetFunction, PublishFunctionVersion, CreateAlias `live`,
CreateTrigger on `live`; the note shows the calls the emulator counted per deploy): C worker slots can do at
most C / 0.5 deploys/s, and with a configured FC API rate R at most R / 5 (the rate-limited rows set R to
75 % of what the slots could ask for, 7.5 x C calls/s, so that the limiter binds). The target rows run the
goal's pool, threads x8 (TARGET_POOL). Throughput is N over the time from the first POST to the last
deployment's `succeeded` write. The FC side records the arrival time of every call, which gives the
busiest 1-second window to hold against R.

The measured deploys have anonymous endpoints: the target is about slots and FC calls. A `jwt` endpoint
(the default) also needs a new RSA-2048 key, which OpenSSL 3 makes in 0.05-0.5 s of CPU, so a burst of new
jwt deployments is bound by key generation (cores / mean key time), not by the pool; an info row measures
it beside the others, with the mean key time measured in the same run.

With --sweep (the default in the full run) it also compares worker pools and concurrencies.
"""

from __future__ import annotations

import importlib.util
import os
import time

from sqlalchemy import func, select

from benchmarks.common import CallClock, Row, Stack, deploy_body, log, run_pool, unique_name
from deployer.fc.ratelimit import max_calls_in_window
from deployer.store.tables import DeploymentRow

CALLS_PER_DEPLOY = 5  # a release: function, wait, publish, alias, trigger (3 before releases)
FC_CALL_S = 0.1
#: The pool the burst targets are set for (issue 26 #15: >= 0.8 of the ideal at threads x8).
TARGET_POOL, TARGET_CONCURRENCY = "threads", 8
CLIENTS = 8  # POSTing clients; more only adds API sessions competing for PostgreSQL connections


ANONYMOUS = {"type": "anonymous"}


def key_seconds(samples: int = 8) -> float:
    """Mean CPU seconds of one endpoint signing key (what a new jwt deployment costs on top)."""
    from deployer.fc.endpoint_auth import new_signing_key

    started = time.process_time()
    for _ in range(samples):
        new_signing_key()
    return (time.process_time() - started) / samples


def burst(
    *,
    kind: str,
    pool: str,
    concurrency: int,
    n: int,
    rate: float = 0.0,
    auth: dict[str, str] | None = ANONYMOUS,
) -> dict[str, float]:
    env = {"MCPFC_FC_RATE_LIMIT_PER_S": str(rate)} if rate else {}
    with Stack(kind, pending_seconds=0.0, env_extra=env) as stack:
        calls = CallClock(stack.fc)  # type: ignore[arg-type]
        stack.start_worker(pool, concurrency)
        stack.wait_workers_ready()
        before = stack.db_counts().get("succeeded", 0)
        prefix = unique_name("burst")
        http_clients = [stack.http() for _ in range(CLIENTS)]
        started_wall, started = time.time(), time.monotonic()

        def post(i: int) -> None:
            extra = {"auth": auth} if auth else {}
            resp = http_clients[i % CLIENTS].post(
                "/v1/deployments", json=deploy_body(f"{prefix}-{i}", **extra)
            )
            if resp.status_code != 202:
                raise RuntimeError(f"POST answered {resp.status_code}: {resp.text[:200]}")

        run_pool(n, CLIENTS, post, timeout=300)
        posted = time.monotonic() - started
        deadline = started + 120 + n * 0.5
        while True:
            counts = stack.db_counts()
            done = counts.get("succeeded", 0) - before
            if done >= n:
                break
            if counts.get("failed"):
                errors = stack.db_scalar(
                    select(DeploymentRow.error).where(DeploymentRow.status == "failed").limit(1)
                )
                raise RuntimeError(f"{counts['failed']} deploys failed, e.g. {errors}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"burst: {done}/{n} done at the deadline ({counts})")
            stack.check_alive()
            time.sleep(0.1)
        last = stack.db_scalar(
            select(func.max(DeploymentRow.updated_at)).where(DeploymentRow.name.like(f"{prefix}-%"))
        )
        for c in http_clients:
            c.close()
        elapsed = last.timestamp() - started_wall
        window = calls.between(started, started + elapsed + 1)
        ideal = concurrency / (CALLS_PER_DEPLOY * FC_CALL_S)
        if rate:
            ideal = min(ideal, rate / CALLS_PER_DEPLOY)
        result = {
            "n": n,
            "elapsed": elapsed,
            "posted": posted,
            "rate": n / elapsed,
            "ideal": ideal,
            "fc_calls": len(window),
            "calls_per_deploy": len(window) / n,
            "peak_1s": max_calls_in_window(window, 1.0),
        }
        log(
            f"burst {pool} x{concurrency} rate={rate or 'unlimited'} auth={(auth or {}).get('type', 'jwt')}: {n} deploys in {elapsed:.1f} s "
            f"(POSTs done at {posted:.1f} s) = {result['rate']:.1f}/s, ideal {ideal:.1f}/s "
            f"({result['rate'] / ideal:.2f}); {len(window)} FC calls, peak {result['peak_1s']} in 1 s"
        )
        return result


def configs() -> list[tuple[str, int]]:
    out = [("prefork", 4), ("prefork", 8), ("threads", 4), ("threads", 8), ("threads", 16), ("threads", 32)]
    if importlib.util.find_spec("gevent") is not None:
        out += [("gevent", 32), ("gevent", 64)]
    return out


def run(*, quick: bool, kind: str, pool: str, concurrency: int, sweep: bool = False) -> list[Row]:
    rows: list[Row] = []
    if sweep:
        for p, c in configs():
            try:
                r = burst(kind=kind, pool=p, concurrency=c, n=150 if quick else 300)
            except Exception as exc:  # noqa: BLE001 - a pool that cannot run is a result too
                log(f"burst sweep {p} x{c}: {type(exc).__name__}: {exc}")
                rows.append(
                    Row(
                        f"burst sweep: {p} x{c}",
                        None,
                        None,
                        None,
                        "deploys/s",
                        f"did not run: {type(exc).__name__}: {str(exc)[:200]}",
                    )
                )
                continue
            rows.append(
                Row(
                    f"burst sweep: {p} x{c}, deploys/s vs ideal",
                    r["rate"],
                    r["ideal"],
                    None,
                    "deploys/s",
                    f"{r['n']} deploys in {r['elapsed']:.1f} s",
                )
            )

    n = 150 if quick else 500
    pool, concurrency = TARGET_POOL, TARGET_CONCURRENCY
    r = burst(kind=kind, pool=pool, concurrency=concurrency, n=n)
    rows.append(
        Row(
            f"burst: {n} deploys, {pool} x{concurrency}, deploys/s vs ideal",
            r["rate"],
            r["ideal"],
            ">= 0.8",
            "deploys/s",
            f"ideal = {concurrency} slots / ({CALLS_PER_DEPLOY} FC calls x 0.1 s); {r['calls_per_deploy']:.2f} "
            f"FC calls per deploy counted; {r['elapsed']:.1f} s from the first POST to the last success; "
            f"no FC rate limit; peak {r['peak_1s']} FC calls in 1 s; anonymous endpoints",
        )
    )
    n_jwt = 40 if quick else 150
    r = burst(kind=kind, pool=pool, concurrency=concurrency, n=n_jwt, auth=None)
    per_key = key_seconds()
    cores = os.cpu_count() or 1
    rows.append(
        Row(
            f"burst: {n_jwt} deploys with jwt endpoints (the default), deploys/s vs key-generation bound",
            r["rate"],
            min(r["ideal"], cores / per_key),
            None,
            "deploys/s",
            f"one RSA-2048 key per new deployment, {per_key * 1000:.0f} ms CPU each (mean of 8, this run); "
            f"bound = min({concurrency}/0.5, {cores} cores / key time); redeploys reuse the key",
        )
    )

    # A limit below what the slots could ask for (one call per 0.1 s each), so that it binds: 75 % of it.
    rate = 7.5 * concurrency
    n = 100 if quick else 300
    r = burst(kind=kind, pool=pool, concurrency=concurrency, n=n, rate=rate)
    rows.append(
        Row(
            f"burst: {n} deploys at FC rate limit {rate:g}/s, deploys/s vs ideal",
            r["rate"],
            r["ideal"],
            ">= 0.8",
            "deploys/s",
            f"ideal = min({concurrency}/0.5, {rate:g}/{CALLS_PER_DEPLOY}) = {r['ideal']:.1f}/s; "
            "MCPFC_FC_RATE_LIMIT_PER_S shared bucket",
        )
    )
    rows.append(
        Row(
            f"burst: peak FC calls in any 1 s at limit {rate:g}/s",
            float(r["peak_1s"]),
            rate,
            "<= 1.0",
            "calls/s",
            f"{r['fc_calls']} FC calls seen by the emulator",
        )
    )
    return rows
