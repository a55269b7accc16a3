"""Relay: what the bridge itself costs per call, with a raw JSON-RPC client on both sides (issue 24).

Raw clients (the standard library's HTTP/1.1 connection, the stdio pipes themselves) keep the client's own cost small and the same on
both sides, so the ratios are the bridge's. The stdio server is this environment's mcp-server-time.

- tool call p50 through the bridge alone vs the same server over stdio, handshake era (a session) and
  2026-07-28 (the per-request envelope), alternating rounds;
- 16 concurrent callers: calls/s through the bridge (2026-07-28) vs over one stdio pipe (requests
  multiplexed by id, as the bridge does);
- through the emulator's trigger (jwt auth): the bridge vs a minimal pass-through (benchmarks/passthrough.py)
  behind the same trigger, alternating;
- the requests the stdio server saw (a tap on its stdin) against the requests the client sent.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from benchmarks.common import Row, free_port, log, median, start_emulator, stop_process
from benchmarks.endpoint import bridge_argv, server_argv

MODERN = "2026-07-28"
LEGACY = "2025-11-25"
TOOL, ARGS = "get_current_time", {"timezone": "UTC"}
ACCEPT = "application/json, text/event-stream"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
}
TAP = Path(__file__).with_name("stdio_tap.py")


class Stdio:
    """The server over its pipes: requests written under a lock, answers matched by id by a reader thread."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.waiting: dict[int, list[Any]] = {}
        threading.Thread(target=self._read, daemon=True).start()
        init = {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        }
        self.call("initialize", init)
        self._write({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _write(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        with self.lock:
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")
            self.proc.stdin.flush()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            slot = self.waiting.pop(message.get("id"), None)
            if slot is not None:
                slot[1] = message
                slot[0].set()

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        uid = next(self.ids)
        slot: list[Any] = [threading.Event(), None]
        self.waiting[uid] = slot
        self._write({"jsonrpc": "2.0", "id": uid, "method": method, "params": params})
        if not slot[0].wait(30):
            raise RuntimeError(f"stdio {method} unanswered")
        return slot[1]

    def close(self) -> None:
        stop_process(self.proc, timeout=10)  # type: ignore[arg-type]


class Http:
    """One raw HTTP/1.1 client of the MCP endpoint in one era (a session in the handshake era, if asked):
    the standard library's keep-alive connection, so the client's own cost per call stays near a pipe's."""

    def __init__(
        self, url: str, era: str, headers: dict[str, str] | None = None, session: bool = True
    ) -> None:
        parts = urlsplit(url)
        self.path, self.era = parts.path, era
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        self.headers = {"accept": ACCEPT, "content-type": "application/json", **(headers or {})}
        self.ids = itertools.count(1)
        if era == LEGACY and session:
            init = {
                "protocolVersion": LEGACY,
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "1"},
            }
            status, answer_headers, _ = self.post(
                {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init}
            )
            self.headers["mcp-session-id"] = answer_headers["mcp-session-id"]
            self.headers["mcp-protocol-version"] = LEGACY
            self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def post(self, body: dict[str, Any], extra: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
        self.conn.request("POST", self.path, json.dumps(body).encode(), {**self.headers, **(extra or {})})
        answer = self.conn.getresponse()
        return answer.status, answer.headers, answer.read()

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        extra = {}
        if self.era == MODERN:
            params = {**params, "_meta": ENVELOPE}
            extra = {"mcp-protocol-version": MODERN, "mcp-method": method}
            if "name" in params:
                extra["mcp-name"] = params["name"]
        body = {"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": params}
        status, _, data = self.post(body, extra)
        if status != 200:
            raise RuntimeError(f"{method}: HTTP {status} {data[:200]!r}")
        return json.loads(data)

    def close(self) -> None:
        self.conn.close()


def timed(peer: Stdio | Http, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        answer = peer.call("tools/call", {"name": TOOL, "arguments": ARGS})
        out.append(time.perf_counter() - t0)
        if "result" not in answer or answer["result"].get("isError"):
            raise RuntimeError(f"{TOOL} failed: {answer}")
    return out


def throughput(make: Any, callers: int, per_caller: int) -> float:
    """Calls per second of ``callers`` threads, each making ``per_caller`` calls through ``make()``'s peer."""
    peers = [make() for _ in range(callers)]
    timed(peers[0], 5)
    start = threading.Barrier(callers + 1)

    def work(peer: Any) -> None:
        start.wait()
        timed(peer, per_caller)

    threads = [threading.Thread(target=work, args=(p,)) for p in peers]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return callers * per_caller / (time.perf_counter() - t0)


def started(argv: list[str], port: int, what: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start `argv` and wait until its `/status` answers; (the process, its /mcp URL)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/status", timeout=2).status_code == 200:
                return proc, url + "/mcp"
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.02)  # start-up polling, not part of any figure


def start_bridge(server: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = bridge_argv("bridge", port, None)
    argv = argv[: argv.index("--") + 1] + server
    return started(argv, port, "the bridge")


def start_passthrough(server: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [
        sys.executable,
        str(Path(__file__).with_name("passthrough.py")),
        "--port",
        str(port),
        "--",
        *server,
    ]
    return started(argv, port, "the pass-through")


def bridge_rows(quick: bool) -> list[Row]:
    rounds, per_round = (5, 40) if quick else (10, 100)
    proc, url = start_bridge(server_argv())
    pt_proc, pt_url = start_passthrough(server_argv())
    stdio = Stdio(server_argv())
    try:
        peers = {
            "stdio": stdio,
            "legacy": Http(url, LEGACY),
            "modern": Http(url, MODERN),
            "passthrough": Http(pt_url, LEGACY, session=False),
        }
        times: dict[str, list[float]] = {key: [] for key in peers}
        for peer in peers.values():
            timed(peer, 10)
        for _ in range(rounds):
            for key, peer in peers.items():
                times[key] += timed(peer, per_round)
        per_caller = 30 if quick else 100
        over_stdio = throughput(lambda: stdio, 16, per_caller)
        over_bridge = throughput(lambda: Http(url, MODERN), 16, per_caller)
    finally:
        stdio.close()
        stop_process(proc, timeout=10)
        stop_process(pt_proc, timeout=10)
    n = rounds * per_round
    note = f"raw JSON-RPC client (http.client keep-alive / the pipes); n={n} each, alternating rounds of {per_round}; mcp-server-time"
    p50 = {key: median(values) * 1000 for key, values in times.items()}
    return [
        Row(
            "relay: tool call p50, bridge (handshake, session) vs stdio",
            p50["legacy"],
            p50["stdio"],
            "<= 1.5",
            "ms",
            note,
        ),
        Row(
            "relay: tool call p50, bridge (2026-07-28) vs stdio",
            p50["modern"],
            p50["stdio"],
            "<= 1.5",
            "ms",
            note,
        ),
        Row(
            "relay: tool call p50, minimal pass-through (the HTTP hop alone) vs stdio",
            p50["passthrough"],
            p50["stdio"],
            None,
            "ms",
            "benchmarks/passthrough.py on the same uvicorn; " + note,
        ),
        Row(
            "relay: 16 concurrent callers, bridge (2026-07-28) vs stdio",
            over_bridge,
            over_stdio,
            ">= 0.7",
            "calls/s",
            f"16 threads x {per_caller} calls; stdio: one pipe, requests multiplexed by id",
        ),
    ]


def deploy(fc: Any, name: str, command: list[str], proxy: str) -> tuple[str, dict[str, str]]:
    from benchmarks.common import IMAGE
    from benchmarks.endpoint import deploy_on_emulator
    from schemas import DeployRequest

    return deploy_on_emulator(fc, DeployRequest(name=name, image=IMAGE, command=command, proxy=proxy))


def trigger_rows(quick: bool) -> list[Row]:
    rounds, per_round = (5, 20) if quick else (10, 50)
    fc = start_emulator(pending_seconds=0.0, latency_ms=0)
    try:
        passthrough = [
            sys.executable,
            str(Path(__file__).with_name("passthrough.py")),
            "--port",
            "8080",
            "--host",
            "0.0.0.0",
            "--",
            *server_argv(),
        ]
        bridge_url, bridge_auth = deploy(fc, f"bench-relay-{os.getpid()}", server_argv(), "mcp-proxy")
        pt_url, pt_auth = deploy(fc, f"bench-pt-{os.getpid()}", passthrough, "none")
        # the same raw handshake-era request on both (the pass-through has no sessions)
        peers = {
            "bridge": Http(bridge_url, LEGACY, bridge_auth, session=False),
            "passthrough": Http(pt_url, LEGACY, pt_auth, session=False),
        }
        times: dict[str, list[float]] = {"bridge": [], "passthrough": []}
        for peer in peers.values():
            timed(peer, 5)
        for _ in range(rounds):
            for key, peer in peers.items():
                times[key] += timed(peer, per_round)
    finally:
        fc.stop()
    note = f"raw JSON-RPC over the emulator's trigger (jwt auth); n={rounds * per_round} each, alternating"
    return [
        Row(
            "relay: tool call p50 via the emulator trigger, bridge vs minimal pass-through",
            median(times["bridge"]) * 1000,
            median(times["passthrough"]) * 1000,
            "<= 1.2",
            "ms",
            note,
        )
    ]


def fidelity_row() -> Row:
    """The stdio server sees exactly what the client sent: a tap logs every line on its stdin."""
    tap_log = Path(f"/tmp/mcp-fc-bench-tap-{os.getpid()}.log")
    tap_log.unlink(missing_ok=True)
    proc, url = start_bridge([sys.executable, str(TAP), str(tap_log), *server_argv()])
    sent: list[str] = []
    try:
        for era in (LEGACY, MODERN):
            peer = Http(url, era)
            for method, params in (("tools/list", {}), ("tools/call", {"name": TOOL, "arguments": ARGS})) * 3:
                peer.call(method, params)
                sent.append(method)
    finally:
        stop_process(proc, timeout=10)
    lines = [json.loads(line) for line in tap_log.read_text().splitlines() if line.strip()]
    tap_log.unlink(missing_ok=True)
    # the bridge's own: its initialize handshake and the health check's pings
    saw = [m["method"] for m in lines if "id" in m and m.get("method") not in ("initialize", "ping")]
    note = "exact match" if saw == sent else f"sent {sent}, the server saw {saw}"
    return Row(
        "relay: requests the stdio server saw vs the client sent", len(saw), len(sent), "<= 1.0", "", note
    )


def run(*, quick: bool, **_: Any) -> list[Row]:
    rows = bridge_rows(quick)
    log("relay: through the emulator trigger")
    rows += trigger_rows(quick)
    rows.append(fidelity_row())
    return rows
