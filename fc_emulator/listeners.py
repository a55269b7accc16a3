"""The hook between the backend and the data plane: what ``FCBackend`` asks of whoever serves the triggers.

The backend opens one loopback listener per HTTP trigger (under its lock) and tells the listeners after a
function is updated or deleted or an HTTP trigger deleted (outside it), so running instances can stop.
:class:`~fc_emulator.dataplane.ListenerHub` is the real implementation; :class:`NullListeners` serves a bare
backend without a server.
"""

from __future__ import annotations

import socket
from typing import Protocol


class TriggerListeners(Protocol):
    """What the backend needs from the data plane: one loopback listener per HTTP trigger."""

    url_host: str

    def open(self, function_name: str, trigger_name: str, port: int | None = None) -> int:
        """Start listening for a trigger (on ``port`` if given and free); return the bound port."""

    def close(self, function_name: str, trigger_name: str) -> None: ...

    def close_all(self) -> None: ...

    def function_deleted(self, function_name: str) -> None:
        """After DeleteFunction (outside the backend lock)."""

    def function_updated(self, function_name: str) -> None:
        """After UpdateFunction (outside the backend lock)."""

    def trigger_deleted(
        self, function_name: str, trigger_name: str, *, orphaned: tuple[str, ...] = ()
    ) -> None:
        """After DeleteTrigger of an HTTP trigger (outside the backend lock; ``close`` ran under it).
        ``orphaned``: instance keys (``name@version``) that no HTTP trigger reaches any more."""


class NullListeners:
    """Listeners for a bare backend (no server): reserves nothing, hands out free port numbers."""

    url_host = "127.0.0.1"

    def open(self, function_name: str, trigger_name: str, port: int | None = None) -> int:
        if port:
            return port
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def close(self, function_name: str, trigger_name: str) -> None:
        return None

    def close_all(self) -> None:
        return None

    def function_deleted(self, function_name: str) -> None:
        return None

    def function_updated(self, function_name: str) -> None:
        return None

    def trigger_deleted(
        self, function_name: str, trigger_name: str, *, orphaned: tuple[str, ...] = ()
    ) -> None:
        return None


__all__ = ["NullListeners", "TriggerListeners"]
