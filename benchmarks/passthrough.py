"""The minimal HTTP -> stdio pass-through the relay benchmark compares the bridge with (not a product part).

    python -m benchmarks.passthrough --port P [--host H] -- SERVER_CMD ...

One POSTed JSON-RPC request -> one stdin line under a fresh id -> the matching stdout line back as JSON,
on the same ASGI server (uvicorn) as the bridge, after one initialize. Nothing else: no sessions, no
notifications, no checks. It shows what any HTTP hop costs, so the bridge's own cost is the difference.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from typing import Any

import uvicorn


class PassThrough:
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 30
        )
        asyncio.ensure_future(self.read())
        init = {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "pt", "version": "1"},
        }
        await self.call({"method": "initialize", "params": init})
        self.write({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def write(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")

    async def read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            message = json.loads(line)
            future = self.waiting.pop(message.get("id"), None)
            if future is not None:
                future.set_result(message)

    async def call(self, body: dict[str, Any]) -> dict[str, Any]:
        uid = next(self.ids)
        future = self.waiting[uid] = asyncio.get_running_loop().create_future()
        self.write({**body, "jsonrpc": "2.0", "id": uid})
        answer = await future
        return {**answer, "id": body.get("id")}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/status":
            await respond(send, {"status": "ok"})
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await respond(send, await self.call(json.loads(b"".join(chunks))))


async def respond(send: Any, value: dict[str, Any]) -> None:
    body = json.dumps(value).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def main(argv: list[str]) -> None:
    cut = argv.index("--")
    flags, command = argv[:cut], argv[cut + 1 :]
    port = int(flags[flags.index("--port") + 1])
    host = flags[flags.index("--host") + 1] if "--host" in flags else "127.0.0.1"
    app = PassThrough(command)
    await app.start()
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
    await uvicorn.Server(config).serve()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
