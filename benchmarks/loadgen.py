"""A small closed-loop HTTP/1.1 load generator: N keep-alive connections, each sends the next request
as soon as the previous answer is read. Raw asyncio streams, so the client costs far less CPU than the
server it measures. Run as a process of its own:

    python -m benchmarks.loadgen --port P --path /v1/deployments/ID [--path ...] \
        --header "Authorization: Bearer K" --connections 64 --duration 5 --warmup 1

prints one JSON object: {"requests", "errors", "rps", "p50_ms", "p99_ms", "statuses"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter


async def _connection(
    port: int, request: bytes, start: float, end: float, lat: list[float], statuses: Counter[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            sent = time.monotonic()
            if sent >= end:
                return
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            chunked = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip())
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if chunked:
                while True:
                    size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            elif length:
                await reader.readexactly(length)
            done = time.monotonic()
            if sent >= start:
                lat.append(done - sent)
                statuses[status] += 1
    finally:
        writer.close()


async def run(
    port: int, paths: list[str], headers: list[str], connections: int, duration: float, warmup: float
) -> dict[str, object]:
    def request(path: str) -> bytes:
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: application/json", *headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    now = time.monotonic()
    start, end = now + warmup, now + warmup + duration
    lat: list[float] = []
    statuses: Counter[int] = Counter()
    await asyncio.wait_for(
        asyncio.gather(
            *(
                _connection(port, request(paths[i % len(paths)]), start, end, lat, statuses)
                for i in range(connections)
            )
        ),
        timeout=warmup + duration + 60,
    )
    ok = statuses.get(200, 0)
    lat.sort()
    return {
        "requests": sum(statuses.values()),
        "errors": sum(statuses.values()) - ok,
        "rps": ok / duration,
        "p50_ms": 1000 * statistics.median(lat) if lat else None,
        "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))] if lat else None,
        "statuses": {str(k): v for k, v in statuses.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", action="append", required=True, help="repeat: connection i uses path i % n")
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    a = p.parse_args()
    print(json.dumps(asyncio.run(run(a.port, a.path, a.header, a.connections, a.duration, a.warmup))))


if __name__ == "__main__":
    main()
