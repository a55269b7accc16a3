"""JSON-RPC and MCP wire facts the relay needs, as constants and pure functions (no I/O).

Messages are plain dicts from ``json.loads``: nothing is validated into models and back, so ``_meta``
and keys this bridge has never heard of pass through untouched.
"""

from __future__ import annotations

import json
from typing import Any

MODERN = "2026-07-28"
MODERN_VERSIONS = (MODERN,)
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_HANDSHAKE = HANDSHAKE_VERSIONS[-1]

# The 2026-07-28 per-request envelope (``params._meta``): it describes the HTTP client, not the bridge's
# handshake-era session with the stdio server, so it is taken off before forwarding.
META_PREFIX = "io.modelcontextprotocol/"
PROTOCOL_VERSION_KEY = META_PREFIX + "protocolVersion"
CLIENT_CAPABILITIES_KEY = META_PREFIX + "clientCapabilities"
CLIENT_INFO_KEY = META_PREFIX + "clientInfo"
LOG_LEVEL_KEY = META_PREFIX + "logLevel"
SERVER_INFO_KEY = META_PREFIX + "serverInfo"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
HEADER_MISMATCH = -32020
MISSING_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022
#: What a 2026-07-28 JSON answer's HTTP status is for an error (the SDK's and the spec's table).
ERROR_HTTP_STATUS = {
    PARSE_ERROR: 400,
    INVALID_REQUEST: 400,
    INVALID_PARAMS: 400,
    HEADER_MISMATCH: 400,
    MISSING_CLIENT_CAPABILITY: 400,
    UNSUPPORTED_PROTOCOL_VERSION: 400,
    METHOD_NOT_FOUND: 404,
}

#: Methods 2026-07-28 removed (its clients use ``subscriptions/listen`` and the ``logLevel`` opt-in).
MODERN_REMOVED = frozenset({"ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"})
#: 2026-07-28 results of these carry caching hints (``ttlMs``/``cacheScope``, SEP-2549).
CACHEABLE = frozenset(
    {"tools/list", "resources/list", "resources/read", "resources/templates/list", "prompts/list"}
)
#: The 2026-07-28 methods that may answer ``input_required`` (SEP-2322).
INPUT_REQUIRED_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
#: Which client capability a server -> client request needs.
REQUEST_CAPABILITY = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}
NAME_PARAM = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
#: What the bridge tells the stdio server it supports: everything it can relay. Each server request is
#: then checked against the capabilities of the client it is for.
RELAYED_CLIENT_CAPABILITIES: dict[str, Any] = {
    "sampling": {"context": {}, "tools": {}},
    "elicitation": {"form": {}, "url": {}},
    "roots": {"listChanged": True},
}
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


def level_rank(level: Any) -> int:
    """Severity of a syslog level name (unknown names rank as ``debug``, so nothing is lost)."""
    return LOG_LEVELS.index(level) if level in LOG_LEVELS else 0


def dumps(message: Any) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def error(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": body}


def result(request_id: Any, value: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": value}


def kind(message: Any) -> str:
    """``request``, ``notification``, ``response`` or ``invalid`` (a batch, a non-object, no method)."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return "invalid"
    if "method" in message:
        if not isinstance(message["method"], str):
            return "invalid"
        return "request" if "id" in message else "notification"
    if "id" in message and ("result" in message or "error" in message):
        return "response"
    return "invalid"


def forward_params(params: Any, progress_token: Any = None) -> Any:
    """The params sent to the stdio server: the 2026-07-28 envelope keys and the input-required retry
    fields (the bridge's, not the server's) removed, the progress token replaced by the bridge's own;
    everything else untouched. Copies only the two small dicts it changes."""
    if not isinstance(params, dict):
        return params
    meta = params.get("_meta")
    out = params
    if "inputResponses" in params or "requestState" in params:
        out = {k: v for k, v in params.items() if k not in ("inputResponses", "requestState")}
    if isinstance(meta, dict) and (
        progress_token is not None or any(k.startswith(META_PREFIX) for k in meta)
    ):
        kept = {k: v for k, v in meta.items() if not k.startswith(META_PREFIX)}
        if progress_token is not None:
            kept["progressToken"] = progress_token
        out = dict(out)
        if kept:
            out["_meta"] = kept
        else:
            out.pop("_meta", None)
    return out


def progress_token(params: Any) -> Any:
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta.get("progressToken") if isinstance(meta, dict) else None


def modern_result(method: str, value: Any, server_info: dict[str, Any]) -> Any:
    """A stdio server's (handshake-era) result as a 2026-07-28 one: ``resultType`` and, for cacheable
    methods, caching hints where absent (0 ms, private: the server said nothing about freshness), and the
    server's identity stamped in ``_meta``. Every other key stays as the server sent it."""
    if not isinstance(value, dict):
        return value
    out = dict(value)
    out.setdefault("resultType", "complete")
    if method in CACHEABLE:
        out.setdefault("ttlMs", 0)
        out.setdefault("cacheScope", "private")
    meta = out.get("_meta")
    if meta is None:
        out["_meta"] = {SERVER_INFO_KEY: server_info}
    elif isinstance(meta, dict) and SERVER_INFO_KEY not in meta:
        out["_meta"] = {**meta, SERVER_INFO_KEY: server_info}
    return out


def envelope_problem(body: dict[str, Any], headers: dict[str, str]) -> tuple[int, str, Any] | None:
    """The 2026-07-28 checks of a request (in the SDK's order): the ``_meta`` envelope, the routing headers
    against the body, the protocol version. ``(code, message, data)`` of the first that fails."""
    params = body.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict):
        return (
            INVALID_PARAMS,
            f"params._meta must carry {PROTOCOL_VERSION_KEY!r} and {CLIENT_CAPABILITIES_KEY!r}",
            None,
        )
    missing = [k for k in (PROTOCOL_VERSION_KEY, CLIENT_CAPABILITIES_KEY) if k not in meta]
    if missing:
        return INVALID_PARAMS, f"params._meta is missing the envelope key(s): {', '.join(missing)}", None
    version = meta[PROTOCOL_VERSION_KEY]
    if headers.get("mcp-protocol-version") != version:
        return (
            HEADER_MISMATCH,
            "MCP-Protocol-Version header does not match the request's protocol version",
            None,
        )
    method = body.get("method")
    if headers.get("mcp-method") != method:
        return HEADER_MISMATCH, "Mcp-Method header does not match the request body's method", None
    name_key = NAME_PARAM.get(method)  # type: ignore[arg-type]
    if name_key is not None:
        value = params.get(name_key)  # type: ignore[union-attr]
        if value is not None and decode_header(headers.get("mcp-name")) != value:
            return HEADER_MISMATCH, f"Mcp-Name header does not match the request's {name_key!r}", None
    if version not in MODERN_VERSIONS:
        data = {"supported": list(MODERN_VERSIONS), "requested": version}
        return UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version", data
    return None


def decode_header(value: str | None) -> str | None:
    """An ``Mcp-Name`` value: plain, or ``=?base64?...?=`` for what a header cannot carry (2026-07-28)."""
    if value is None or not (value.startswith("=?base64?") and value.endswith("?=")):
        return value
    import base64
    import binascii

    try:
        return base64.b64decode(value[9:-2], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return value


def client_capabilities(body: dict[str, Any]) -> dict[str, Any]:
    caps = body["params"]["_meta"].get(CLIENT_CAPABILITIES_KEY)
    return caps if isinstance(caps, dict) else {}


def modern_log_level(body: dict[str, Any]) -> int | None:
    """The 2026-07-28 per-request log opt-in as a rank; None means the request gets no log messages."""
    level = body["params"]["_meta"].get(LOG_LEVEL_KEY)
    return level_rank(level) if isinstance(level, str) else None
