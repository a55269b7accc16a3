"""Loopback probes of a function instance: a free port to map to, whether a port accepts connections, and
the status of a health check's ``GET``."""

from __future__ import annotations

import http.client
import socket


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_status(port: int, path: str, timeout: float) -> int | None:
    """Status of ``GET path`` on the loopback port, or None when no answer came."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(
            "GET",
            path if path.startswith("/") else "/" + path,
            headers={"User-Agent": "fc-emulator-health-check"},
        )
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


__all__ = ["free_port", "http_status", "port_accepts"]
