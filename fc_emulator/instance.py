"""One running function instance (:class:`Instance`) and what an error message tells about it: the tail of
its output and, behind the mcp-fc bridge, how its stdio server ended (recorded by
:mod:`~fc_emulator.serverwatch`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

#: How many lines of the process output an error message carries (a bridge's traceback alone is longer
#: than 20; the server's own lines come separately, see :func:`watch_server`).
LOG_TAIL_LINES = 40
#: How many lines of a bridge's output come before them (the end of its traceback).
BRIDGE_TAIL_LINES = 15
#: How many lines of the stdio server's own stderr an error message ends with.
SERVER_TAIL_LINES = 20


def tail(path: str, lines: int = LOG_TAIL_LINES, max_bytes: int = 64 * 1024) -> str:
    """The last ``lines`` lines of a (log) file, decoded leniently; "" when unreadable."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace").rstrip()
    return "\n".join(text.splitlines()[-lines:])


def read_server_exit(directory: str) -> dict[str, Any] | None:
    """The last stdio server exit :mod:`~fc_emulator.serverwatch` recorded in ``directory``."""
    last = tail(os.path.join(directory, "server-exit"), 1)
    try:
        found = json.loads(last) if last else None
    except ValueError:
        return None
    return found if isinstance(found, dict) and isinstance(found.get("code"), int) else None


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


# instances ---------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Instance:
    """One running function process."""

    function_name: str
    revision: int
    instance_id: str
    argv: list[str]
    #: The init in front of ``argv`` (``["tini", "--"]``), and whether the emulator ran ``argv`` directly
    #: because that init is not installed here.
    init: list[str]
    init_stand_in: bool
    port: int
    container_port: int
    port_mapped: bool
    process: subprocess.Popen[bytes]
    directory: str
    log_path: str
    started_at: float
    start_timeout_s: float
    #: Whether the stdio server after ``--`` runs under :func:`watch_server` (its exit code and stderr known).
    watched: bool = False
    #: The threads copying stdout and stderr to the log store and ``output.log``.
    pumps: list[threading.Thread] = field(default_factory=list, repr=False)
    ready_at: float | None = None
    cold_start_ms: float | None = None
    #: The liveness check once ready (``healthCheckConfig`` with FC's defaults filled in), if it has a URL.
    health: dict[str, Any] | None = None
    health_failures: int = 0
    health_checks: int = 0
    next_health_at: float = 0.0
    last_used: float = field(default_factory=time.monotonic)
    active: int = 0
    stopping: bool = False
    #: Set by a stop that came while the instance was still starting (its start then fails as retryable).
    stopped_while_starting: bool = False
    _connections: set[socket.socket] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def drain(self, timeout: float = 1.0) -> None:
        """Wait (bounded) until the output pumps have copied what an exited process wrote."""
        deadline = time.monotonic() + timeout
        for thread in self.pumps:
            thread.join(max(0.0, deadline - time.monotonic()))

    def output_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The instance's last output for an error message. Behind a bridge it ends with the stdio server's
        exit code and its own last stderr lines, which a bridge's traceback would push out of a plain tail."""
        if not self.alive:
            self.drain()
        if not self.watched:
            return tail(self.log_path, lines)
        output = tail(self.log_path, min(lines, BRIDGE_TAIL_LINES))
        ended = self.server_exit()
        server = tail(os.path.join(self.directory, "server.log"), SERVER_TAIL_LINES)
        if ended is None and not server:
            return output
        parts = [output] if output else []
        if ended is not None:
            parts.append(f"the MCP server ({ended.get('command')}) {describe_exit(int(ended['code']))}")
        if server:
            parts.append(f"the MCP server's last stderr lines:\n{server}")
        else:
            parts.append("the MCP server wrote nothing to stderr")
        return "\n".join(parts)

    def server_exit(self) -> dict[str, Any] | None:
        """How the stdio server behind the bridge last ended (``{"pid", "code", "command"}``), if it did."""
        return read_server_exit(self.directory) if self.watched else None

    def track(self, sock: socket.socket) -> None:
        """Register a proxied upstream connection, cut by :meth:`cut_connections`."""
        with self._lock:
            self._connections.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.discard(sock)

    def cut_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def to_dict(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "functionName": self.function_name,
            "instanceId": self.instance_id,
            "revision": self.revision,
            "pid": self.pid,
            "port": self.port,
            "containerPort": self.container_port,
            "portMapped": self.port_mapped,
            "url": f"http://127.0.0.1:{self.port}",
            "command": list(self.argv),
            "init": list(self.init),
            "initStandIn": self.init_stand_in,
            "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at)),
            "coldStartMs": self.cold_start_ms,
            "idleSeconds": round(now - self.last_used, 3) if not self.active else 0.0,
            "activeRequests": self.active,
            "alive": self.alive,
            "healthChecks": self.health_checks,
            "healthFailures": self.health_failures,
            "serverExitCode": (self.server_exit() or {}).get("code"),
            "logFile": self.log_path,
        }


__all__ = ["Instance", "describe_exit", "read_server_exit", "tail"]
