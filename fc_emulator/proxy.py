"""The streaming reverse proxy from an HTTP trigger request to a function instance on loopback.

The request goes out as it came in: the method, the RAW request-target (path and query, still
percent-encoded; the trigger URL is the root of its own origin, so absolute paths such as mcp-proxy's
``/messages/?session_id=...`` work unchanged), the headers minus hop-by-hop ones (and minus a credential that
trigger authentication consumed), ``Host`` as the client sent it, plus ``X-Forwarded-For``/``-Proto``/
``-Host`` and ``x-fc-request-id``; the body is read whole (at most the handler's ``max_body_bytes``) and
sent with a ``Content-Length``.

The response is streamed: each piece the function writes is relayed and flushed at once (``read1`` on the
upstream, one ``send`` per piece, ``TCP_NODELAY`` both ways), so Server-Sent Events flow. A response with a
``Content-Length`` keeps it; one without (chunked or close-delimited, e.g. ``GET /sse``) goes to the client
chunked (HTTP/1.1) or close-delimited (HTTP/1.0). Long-lived streams and concurrent requests are fine: each
trigger connection has its own thread, and each request its own upstream connection.

The function's ``timeout`` bounds the whole exchange, as on FC: no answer within it → ``504 FunctionTimeout``;
a stream still open at that point is cut. A connection the instance refuses or drops before answering →
``502 FunctionInstanceError`` (with the process's exit status and last output when it died).
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import socket
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .exceptions import FCError
from .instance import Instance, describe_exit

if TYPE_CHECKING:
    from .http import JSONRequestHandler
    from .trigger_auth import AuthResult

logger = logging.getLogger("fc_emulator")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
#: Request headers never forwarded as sent (re-computed or answered by the emulator itself).
REQUEST_DROP = frozenset({"content-length", "expect", "x-fc-request-id"})
CONNECT_TIMEOUT_S = 5.0
CHUNK_BYTES = 64 * 1024


class FunctionInstanceError(FCError):
    """The running instance refused or dropped the request before answering."""

    status = 502
    code = "FunctionInstanceError"


class FunctionTimeout(FCError):
    status = 504
    code = "FunctionTimeout"


def origin_form(target: str) -> str:
    """The request-target in origin form (``/path?query``), raw; absolute-form targets are reduced."""
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if target == "*":
        return target
    return target if target.startswith("/") else "/" + target


def _with_query(target: str, extra: tuple[tuple[str, str], ...]) -> str:
    if not extra:
        return target
    path, sep, query = target.partition("?")
    names = {name for name, _ in extra}
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in names] if sep else []
    return f"{path}?{urlencode(kept + list(extra))}"


def _connection_tokens(headers: Any) -> set[str]:
    tokens = set()
    for value in headers.get_all("Connection") or []:
        tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def upstream_headers(
    request: JSONRequestHandler, instance: Instance, auth: AuthResult | None, body: bytes
) -> list[tuple[str, str]]:
    """The headers sent to the instance (see the module docstring)."""
    added = {name.lower() for name, _ in (auth.add_headers if auth else ())}
    drop = (
        HOP_BY_HOP
        | REQUEST_DROP
        | _connection_tokens(request.headers)
        | added
        | {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
        | (set(auth.drop_headers) if auth else set())
    )
    out = [(k, v) for k, v in request.headers.items() if k.lower() not in drop]
    host = request.headers.get("Host")
    if not host:
        out.append(("Host", f"127.0.0.1:{instance.port}"))
    prior = request.headers.get("X-Forwarded-For")
    client_ip = str(request.client_address[0]) if request.client_address else "127.0.0.1"
    out.append(("X-Forwarded-For", f"{prior}, {client_ip}" if prior else client_ip))
    out.append(("X-Forwarded-Proto", request.headers.get("X-Forwarded-Proto") or "http"))
    if host:
        out.append(("X-Forwarded-Host", request.headers.get("X-Forwarded-Host") or host))
    out.append(("x-fc-request-id", request.request_id))
    if auth:
        out.extend(auth.add_headers)
    if body or request.command.upper() in ("POST", "PUT", "PATCH"):
        out.append(("Content-Length", str(len(body))))
    return out


def _instance_error(instance: Instance, what: str) -> FunctionInstanceError:
    returncode = instance.process.poll()
    message = f"function '{instance.function_name}' instance (pid {instance.pid}) {what}"
    if returncode is not None:
        message += f"; the process {describe_exit(returncode)}"
        output = instance.output_tail()
        if output:
            message += f"; last output:\n{output}"
    return FunctionInstanceError(message)


def forward(
    request: JSONRequestHandler,
    instance: Instance,
    *,
    auth: AuthResult | None = None,
    timeout_s: float = 3.0,
) -> None:
    """Proxy ``request`` to ``instance`` and stream the answer back. Raises :class:`FCError` only before
    anything has been written to the client."""
    body = request.read_body()
    method = request.command.upper()
    target = _with_query(origin_form(request.path), auth.add_query if auth else ())
    headers = upstream_headers(request, instance, auth, body)
    deadline = time.monotonic() + max(0.001, float(timeout_s))
    conn = http.client.HTTPConnection("127.0.0.1", instance.port, timeout=CONNECT_TIMEOUT_S)
    sock: socket.socket | None = None
    try:
        try:
            conn.connect()
        except OSError as exc:
            raise _instance_error(
                instance, f"refused the connection on 127.0.0.1:{instance.port} ({exc})"
            ) from None
        sock = conn.sock
        assert sock is not None
        instance.track(sock)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            conn.endheaders(body or None)
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            response = conn.getresponse()
        except TimeoutError:
            raise FunctionTimeout(
                f"function '{instance.function_name}' did not answer within its timeout of {timeout_s:g} s"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            if instance.stopping:
                raise FunctionInstanceError(
                    f"function '{instance.function_name}' instance was stopped while serving the request"
                ) from None
            raise _instance_error(instance, f"closed the connection without an answer ({exc!r})") from None
        _relay(request, response, sock, deadline, method, instance)
    finally:
        if sock is not None:
            instance.untrack(sock)
        conn.close()


def _relay(
    request: JSONRequestHandler,
    response: http.client.HTTPResponse,
    sock: socket.socket,
    deadline: float,
    method: str,
    instance: Instance,
) -> None:
    """Send the instance's answer to the client: its status and headers at once, then its body streamed."""
    headers, no_body, length, chunked = _response_framing(request, response, method)
    request.send_response_only(response.status, response.reason or None)
    request.headers_sent = True
    for name, value in headers:
        request.send_header(name, value)
    request.end_headers()
    if not no_body:
        _stream_body(request, response, sock, deadline, method, instance, length=length, chunked=chunked)


def _response_framing(
    request: JSONRequestHandler, response: http.client.HTTPResponse, method: str
) -> tuple[list[tuple[str, str]], bool, int | None, bool]:
    """``(headers to send, no body, announced length, chunked)``: the instance's headers minus hop-by-hop
    ones, and how the body reaches the client (its ``Content-Length``, else chunked or close-delimited)."""
    status = response.status
    tokens = {t.strip().lower() for v in response.headers.get_all("Connection") or [] for t in v.split(",")}
    headers = [
        (k, v)
        for k, v in response.getheaders()
        if k.lower() not in HOP_BY_HOP and k.lower() not in tokens and k.lower() != "x-fc-request-id"
    ]
    no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
    length: int | None = None
    if not response.chunked:
        raw = response.getheader("Content-Length")
        if raw is not None and raw.strip().isdigit():
            length = int(raw.strip())
    chunked = False
    if not no_body and length is None:
        if request.request_version == "HTTP/1.1":
            chunked = True
            headers.append(("Transfer-Encoding", "chunked"))
        else:
            request.close_connection = True
    if not any(k.lower() == "date" for k, _ in headers):
        headers.append(("Date", email.utils.formatdate(usegmt=True)))
    headers.append(("x-fc-request-id", request.request_id))
    if request.close_connection:
        headers.append(("Connection", "close"))
    return headers, no_body, length, chunked


def _stream_body(
    request: JSONRequestHandler,
    response: http.client.HTTPResponse,
    sock: socket.socket,
    deadline: float,
    method: str,
    instance: Instance,
    *,
    length: int | None,
    chunked: bool,
) -> None:
    """Relay each piece as it arrives until the end, the deadline, or either side going away."""
    sent = 0
    wfile = request.wfile
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            logger.info("cutting %s %s after the function timeout", method, request.path)
            request.close_connection = True
            return
        try:
            sock.settimeout(remaining)
            data = response.read1(CHUNK_BYTES)
        except TimeoutError:
            logger.info("cutting %s %s after the function timeout", method, request.path)
            request.close_connection = True
            return
        except (OSError, http.client.HTTPException, ValueError):
            logger.debug("upstream of %s broke mid-response", instance.function_name, exc_info=True)
            request.close_connection = True
            return
        if not data:
            break
        try:
            if chunked:
                wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                wfile.write(data)
        except OSError:
            request.close_connection = True  # the client went away
            return
        sent += len(data)
    if length is not None and sent < length:
        request.close_connection = True  # the instance sent less than it announced
        return
    if chunked:
        try:
            wfile.write(b"0\r\n\r\n")
        except OSError:
            request.close_connection = True


__all__ = ["FunctionInstanceError", "FunctionTimeout", "forward", "origin_form", "upstream_headers"]
