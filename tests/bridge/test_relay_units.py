"""The relay's pure parts, in process: line reassembly and its limit, the era rules on the wire, Origin."""

from __future__ import annotations

import logging

from mcp_fc_bridge import wire
from mcp_fc_bridge.app import OriginPolicy
from mcp_fc_bridge.upstream import EDGE_BYTES, LineSplitter, NoiseLimiter

MODERN_META = {wire.PROTOCOL_VERSION_KEY: wire.MODERN, wire.CLIENT_CAPABILITIES_KEY: {"sampling": {}}}


def test_a_long_line_in_many_chunks_is_joined_once_and_keeps_what_follows():
    splitter = LineSplitter(max_bytes=10_000_000)
    chunk = b"x" * 65536
    for _ in range(100):  # 6.5 MB without a newline: kept as pieces, never re-joined per chunk
        assert splitter.feed(chunk) == []
    assert len(splitter.pieces) == 100
    lines = splitter.feed(b'y\n{"a":1}\n{"b"')
    assert lines == [(chunk * 100 + b"y", 0), (b'{"a":1}', 0)]
    assert splitter.feed(b":2}\n") == [(b'{"b":2}', 0)]


def test_an_oversized_line_keeps_only_its_ends_and_its_length():
    splitter = LineSplitter(max_bytes=1000)
    splitter.feed(b'{"jsonrpc":"2.0","id":42,"result":"' + b"z" * 5000)
    assert splitter.pieces == [] and splitter.head is not None  # nothing more is held
    for _ in range(1000):
        splitter.feed(b"z" * 1000)
    ((edges, size),) = splitter.feed(b'"}\n')
    assert size == 35 + 5000 + 1_000_000 + 2
    assert edges.startswith(b'{"jsonrpc":"2.0","id":42') and edges.endswith(b'"}')
    assert len(edges) <= 2 * EDGE_BYTES + 1
    assert splitter.feed(b"{}\n") == [(b"{}", 0)]  # the next line is whole again


def test_complaints_about_stdout_noise_are_rate_limited(caplog):
    noise = NoiseLimiter()
    with caplog.at_level(logging.WARNING, logger="mcp_fc_bridge"):
        for i in range(10_000):
            noise.complain(f"print {i}".encode())
    assert len(caplog.records) == 3 and noise.count == 10_000


def test_forwarded_params_lose_the_envelope_and_keep_everything_else():
    params = {
        "name": "t",
        "x-unknown": [1],
        "requestState": "s",
        "inputResponses": {},
        "_meta": {**MODERN_META, wire.LOG_LEVEL_KEY: "info", "progressToken": "p", "com.example/k": 1},
    }
    assert wire.forward_params(params, 7) == {
        "name": "t",
        "x-unknown": [1],
        "_meta": {"progressToken": 7, "com.example/k": 1},
    }
    assert wire.forward_params({"_meta": MODERN_META}) == {}
    untouched = {"name": "t", "_meta": {"progressToken": 1}}
    assert wire.forward_params(untouched) is untouched  # nothing to change: not even copied


def test_modern_results_get_only_what_is_missing():
    info = {"name": "s", "version": "1"}
    listed = wire.modern_result("tools/list", {"tools": [], "ttlMs": 5, "x": 1}, info)
    assert listed == {
        "tools": [],
        "ttlMs": 5,
        "x": 1,
        "resultType": "complete",
        "cacheScope": "private",
        "_meta": {wire.SERVER_INFO_KEY: info},
    }
    called = wire.modern_result("tools/call", {"content": [], "_meta": {"k": 1}}, info)
    assert "ttlMs" not in called and called["_meta"] == {"k": 1, wire.SERVER_INFO_KEY: info}


def test_the_envelope_and_routing_headers_are_checked_in_order():
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t", "_meta": MODERN_META}}
    good = {"mcp-protocol-version": wire.MODERN, "mcp-method": "tools/call", "mcp-name": "t"}
    assert wire.envelope_problem(body, good) is None
    assert wire.envelope_problem(body, {**good, "mcp-name": "=?base64?dA==?="}) is None
    assert wire.envelope_problem(body, {**good, "mcp-name": "u"})[0] == wire.HEADER_MISMATCH
    assert wire.envelope_problem(body, {**good, "mcp-method": "tools/list"})[0] == wire.HEADER_MISMATCH
    bare = {**body, "params": {"name": "t"}}
    assert wire.envelope_problem(bare, good)[0] == wire.INVALID_PARAMS
    future = {
        **body,
        "params": {"name": "t", "_meta": {**MODERN_META, wire.PROTOCOL_VERSION_KEY: "2099-01-01"}},
    }
    code, _, data = wire.envelope_problem(future, {**good, "mcp-protocol-version": "2099-01-01"})
    assert code == wire.UNSUPPORTED_PROTOCOL_VERSION and data["supported"] == [wire.MODERN]


def test_origins_default_to_loopback_and_an_explicit_list_is_exact():
    default = OriginPolicy(None)
    assert default.permits("http://localhost:5173") and default.permits("http://127.0.0.1")
    assert not default.permits("http://evil.example") and not default.permits("null")
    listed = OriginPolicy(["https://app.example"])
    assert listed.permits("https://app.example") and not listed.permits("http://localhost:5173")
    assert OriginPolicy(["*"]).permits("http://anything.example")
