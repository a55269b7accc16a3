"""A small raw JSON-RPC stdio MCP server (no SDK) that exercises what a relay must carry.

Tools: ``echo`` (returns its arguments and the request's ``_meta`` as the server saw them, plus an unknown
result key), ``progress`` (three progress notifications on the request's token), ``log`` (log messages at
three levels), ``sample`` / ``elicit`` / ``roots`` (asks the client and returns its answer), ``slow``
(waits ``seconds`` unless cancelled), ``big`` (a ``size``-character text), ``noise``
(``lines`` non-JSON lines on stdout), ``changed`` (a tools list_changed notification), ``seen`` (every request this server
received, tool calls with their tool's name, and every cancellation, in order). Also ``logging/setLevel``, ``resources/*`` with
subscriptions, ``ping``. Requests are served concurrently, as a real server does.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
TOOLS = ["echo", "progress", "log", "sample", "elicit", "roots", "slow", "big", "noise", "changed", "seen"]


class Server:
    def __init__(self) -> None:
        self.out = sys.stdout.buffer
        self.next_id = 0
        self.waiting: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self.tasks: dict[Any, asyncio.Task[None]] = {}
        self.seen: list[str] = []
        self.level = "info"

    def write(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")
        self.out.flush()

    async def ask(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[self.next_id] = future
        self.write({"id": self.next_id, "method": method, "params": params})
        return await future

    def log(self, level: str, data: str) -> None:
        if LEVELS.index(level) >= LEVELS.index(self.level):
            self.write({"method": "notifications/message", "params": {"level": level, "data": data}})

    async def call_tool(self, params: dict[str, Any]) -> dict[str, Any]:
        name, args = params.get("name"), params.get("arguments") or {}
        token = (params.get("_meta") or {}).get("progressToken")
        if name == "echo":
            return {
                "content": [text(json.dumps({"arguments": args, "_meta": params.get("_meta")}))],
                "x-extra": 1,
            }
        if name == "progress":
            for step in (1, 2, 3):
                if token is not None:
                    p = {"progressToken": token, "progress": step, "total": 3}
                    self.write({"method": "notifications/progress", "params": p})
                await asyncio.sleep(0)
            return {"content": [text(f"token {token}")]}
        if name == "log":
            for level in ("debug", "info", "warning"):
                self.log(level, f"{level} message")
            return {"content": [text("logged")]}
        if name in ("sample", "elicit", "roots"):
            return {"content": [text(json.dumps(await self.ask(*ASKS[name])))]}
        if name == "slow":
            await asyncio.sleep(float(args.get("seconds", 30)))
            return {"content": [text("slept")]}
        if name == "big":
            return {"content": [text("x" * int(args.get("size", 1000)))]}
        if name == "changed":
            self.write({"method": "notifications/tools/list_changed"})
            return {"content": [text("changed")]}
        if name == "noise":
            for i in range(int(args.get("lines", 100))):
                self.out.write(f"not json {i}\n".encode())
            return {"content": [text("noisy")]}
        if name == "seen":
            return {"content": [text(json.dumps(self.seen))]}
        raise KeyError(name)

    async def handle(self, message: dict[str, Any]) -> None:
        method, params, rid = message["method"], message.get("params") or {}, message.get("id")
        try:
            value = await self.answer(method, params)
        except KeyError as exc:
            self.write({"id": rid, "error": {"code": -32602, "message": f"unknown: {exc}"}})
            return
        except asyncio.CancelledError:
            return
        finally:
            self.tasks.pop(rid, None)
        self.write({"id": rid, "result": value})

    async def answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "initialize":
            caps = {"tools": {"listChanged": True}, "logging": {}, "resources": {"subscribe": True}}
            client = params.get("capabilities") or {}
            return {
                "protocolVersion": params.get("protocolVersion"),
                "capabilities": caps,
                "serverInfo": {"name": "relay-test", "version": "1.0"},
                "instructions": f"client capabilities: {sorted(client)}",
            }
        if method == "tools/list":
            return {"tools": [{"name": t, "inputSchema": {"type": "object"}, "x-vendor": t} for t in TOOLS]}
        if method == "tools/call":
            return await self.call_tool(params)
        if method == "logging/setLevel":
            self.level = params["level"]
            return {}
        if method == "resources/read":
            return {"contents": [{"uri": params["uri"], "text": "r"}]}
        if method in ("resources/list", "ping", "resources/subscribe", "resources/unsubscribe"):
            return {"resources": []} if method == "resources/list" else {}
        raise KeyError(method)

    def receive(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        if method is None:
            future = self.waiting.pop(message.get("id"), None)
            if future is not None and not future.done():
                future.set_result(message.get("result") or {"error": message.get("error")})
            return
        if "id" not in message:
            if method == "notifications/cancelled":
                rid = (message.get("params") or {}).get("requestId")
                self.seen.append(f"cancelled:{rid}")
                task = self.tasks.pop(rid, None)
                if task is not None:
                    task.cancel()
            return
        name = (message.get("params") or {}).get("name")
        self.seen.append(f"{method}:{name}" if method == "tools/call" else method)
        self.tasks[message["id"]] = asyncio.ensure_future(self.handle(message))


ASKS = {
    "sample": (
        "sampling/createMessage",
        {"messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}], "maxTokens": 10},
    ),
    "elicit": (
        "elicitation/create",
        {"mode": "form", "message": "name?", "requestedSchema": {"type": "object", "properties": {}}},
    ),
    "roots": ("roots/list", {}),
}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


async def main() -> None:
    server = Server()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if line.strip():
            server.receive(json.loads(line))


if __name__ == "__main__":
    asyncio.run(main())
