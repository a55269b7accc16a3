"""`python -m benchmarks [--quick] [--json FILE] [--only overhead,burst,...]`: run, print the table.

See docs/performance.md for what each row measures and the last results.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

from benchmarks import common
from benchmarks.common import BENCH_AK, BENCH_SK, Row, dump, log, table

ALL = ("overhead", "burst", "polling", "scale", "waiting", "endpoint")
# Chosen by measurement (docs/performance.md, "Worker pool"): a threads pool, 2 slots per core. A deploy
# costs the worker ~35 ms of CPU against 300 ms waiting on FC here, and the API, PostgreSQL and the
# emulator share the same cores: beyond 2 per core the slots wait for CPU, not for FC (x8 on 2 cores:
# 0.68-0.75 of ideal; x4: 0.80-0.83).
DEFAULT_POOL, DEFAULT_CONCURRENCY = "threads", 2 * (os.cpu_count() or 1)


#: Where the production stack's services are (benchmarks/common.py `Services`): flag, variable, metavar.
SERVICE_FLAGS = (
    ("--redis-host", "MCPFC_BENCH_REDIS_HOST", "HOST"),
    ("--redis-port", "MCPFC_BENCH_REDIS_PORT", "PORT"),
    ("--redis-dbs", "MCPFC_BENCH_REDIS_DBS", "FIRST-LAST"),
    ("--pg-host", "MCPFC_BENCH_PG_HOST", "HOST"),
    ("--pg-port", "MCPFC_BENCH_PG_PORT", "PORT"),
    ("--pg-user", "MCPFC_BENCH_PG_USER", "ROLE"),
    ("--db-prefix", "MCPFC_BENCH_DB_PREFIX", "PREFIX"),
)


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller N, same ratios (under 10 minutes)")
    p.add_argument("--json", type=Path, help="write the rows as a JSON list to this file")
    p.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    p.add_argument(
        "--stack",
        choices=("auto", "production", "embedded"),
        default="auto",
        help="production = Redis broker/results + PostgreSQL; embedded = file broker + SQLite; "
        "auto = production when Redis and PostgreSQL answer on 127.0.0.1",
    )
    p.add_argument("--pool", default=DEFAULT_POOL, help="Celery worker pool (prefork, threads, gevent)")
    p.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    p.add_argument(
        "--sweep",
        action="store_true",
        help="burst: also sweep pools and concurrencies (default in the full run)",
    )
    services = p.add_argument_group(
        "services (production stack; default: the MCPFC_BENCH_* variables, else 127.0.0.1's defaults)"
    )
    for flag, var, what in SERVICE_FLAGS:
        services.add_argument(flag, dest=var, metavar=what, help=f"sets {var}")
    args = p.parse_args(argv)
    for _, var, _ in SERVICE_FLAGS:
        if getattr(args, var) is not None:
            os.environ[var] = str(getattr(args, var))

    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = sorted(set(only) - set(ALL))
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; choose from {ALL}")
    kind = args.stack
    if kind == "auto":
        kind = "production" if common.production_available() else "embedded"
    os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"] = BENCH_AK  # the bare SDK client's credential chain
    os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = BENCH_SK
    log(
        f"machine: {machine()}; stack: {kind}; pool {args.pool} x{args.concurrency}; "
        f"{'quick' if args.quick else 'full'} run"
    )

    rows: list[Row] = []
    started = time.monotonic()
    for name in only:
        t0 = time.monotonic()
        log(f"{name}: start")
        module = __import__(f"benchmarks.{name}", fromlist=["run"])
        kwargs = {"quick": args.quick, "kind": kind, "pool": args.pool, "concurrency": args.concurrency}
        if name == "burst":
            kwargs["sweep"] = args.sweep or not args.quick
        try:
            got = module.run(**kwargs)
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
            log(f"{name}: FAILED: {type(exc).__name__}: {exc}")
            note = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            got = [Row(f"{name}: failed to run", None, None, None, note=note)]
        rows += got
        log(f"{name}: done in {time.monotonic() - t0:.0f} s")
        if args.json:
            dump(args.json, rows)  # keep what we have if a later benchmark hangs

    print(
        f"\nmcp-fc benchmarks ({'quick' if args.quick else 'full'}; stack {kind}; worker pool "
        f"{args.pool} x{args.concurrency}; {machine()}; {time.monotonic() - started:.0f} s)\n"
    )
    print(table(rows))
    if args.json:
        dump(args.json, rows)
    missed = [r.name for r in rows if r.meets is False or r.name.endswith("failed to run")]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
