"""`mcp-fc dev`'s terminal is for the URLs: asyncio's warnings about writes to a client that already left
(53 `socket.send() raised exception.` lines, issue 26 #13) are dropped; its other records are not."""

from __future__ import annotations

import logging

from deployer.cli.devstack import ClosedPeerWrites


def test_only_the_closed_peer_warning_is_dropped():
    keep = ClosedPeerWrites()

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.WARNING, __file__, 1, message, None, None)

    assert not keep.filter(record("socket.send() raised exception."))
    assert keep.filter(record("Task was destroyed but it is pending!"))
