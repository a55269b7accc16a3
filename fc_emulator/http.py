r"""HTTP plumbing both planes share: a loopback threaded server and a JSON request handler.

The FC API server (:mod:`~fc_emulator.server`) and every HTTP trigger listener
(:mod:`~fc_emulator.dataplane`) are :class:`LoopbackHTTPServer`\ s serving :class:`JSONRequestHandler`
subclasses: HTTP/1.1 keep-alive, bodies read whole (Content-Length or chunked, at most ``max_body_bytes``),
JSON answers with FC's ``x-fc-request-id``, http.server's own errors as FC JSON errors, and a quiet log.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .exceptions import FCError, InvalidArgument, new_request_id

logger = logging.getLogger("fc_emulator")

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
ERROR_CONTENT_TYPE = "application/json"
EXPOSE_HEADERS = (
    "Date,x-fc-request-id,x-fc-error-type,x-fc-code-checksum,x-fc-invocation-duration,"
    "x-fc-max-memory-usage,x-fc-log-result,x-fc-invocation-code-version,x-fc-instance-id"
)


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server that binds fast (no reverse DNS) and can cut all its open connections."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = self.socket.accept()
        conn.setblocking(True)  # the listener may be non-blocking (ListenerHub); connections are not
        # headers and body go out in separate writes: without this, Nagle + delayed ACK cost ~40 ms a response
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open client connection (idle keep-alive ones and streams alike)."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("error while serving %s", client_address, exc_info=True)


class JSONRequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler with JSON responses, FC request ids and a quiet log."""

    protocol_version = "HTTP/1.1"
    server_version = "fc-emulator"
    sys_version = ""
    #: Largest request body read into memory.
    max_body_bytes = 16 * 1024 * 1024

    request_id: str = ""
    headers_sent = False
    body_consumed = False
    _body: bytes | None = None

    def parse_request(self) -> bool:
        # One handler instance serves every request of a keep-alive connection: reset per request.
        self.request_id = ""
        self.headers_sent = False
        self.body_consumed = False
        self._body = None
        return super().parse_request()

    def version_string(self) -> str:
        return self.server_version

    def send_response(self, code: int, message: str | None = None) -> None:
        self.headers_sent = True
        super().send_response(code, message)

    def read_body(self) -> bytes:
        """Read the whole request body (Content-Length or chunked); cached."""
        if self._body is not None:
            return self._body
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._body = self._read_chunked()
        else:
            raw = self.headers.get("Content-Length")
            try:
                length = int(raw) if raw else 0
            except ValueError:
                self.close_connection = True
                raise InvalidArgument(f"invalid Content-Length {raw!r}") from None
            if length < 0:
                self.close_connection = True
                raise InvalidArgument(f"invalid Content-Length {raw!r}")
            if length > self.max_body_bytes:
                self.close_connection = True
                raise FCError(
                    f"the request body exceeds {self.max_body_bytes} bytes", status=400, code="EntityTooLarge"
                )
            self._body = self.rfile.read(length) if length else b""
        self.body_consumed = True
        return self._body

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(65537)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise InvalidArgument("malformed chunked request body") from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > self.max_body_bytes:
                self.close_connection = True
                raise FCError(
                    f"the request body exceeds {self.max_body_bytes} bytes", status=400, code="EntityTooLarge"
                )
            chunks.append(self.rfile.read(size))
            self.rfile.readline(3)

    def send_json(
        self,
        status: int,
        payload: Any,
        *,
        headers: dict[str, str] | None = None,
        content_type: str = JSON_CONTENT_TYPE,
    ) -> None:
        """Send a JSON response (``payload is None`` -> no body, e.g. 204)."""
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", content_type)
        if status != 204:
            self.send_header("Content-Length", str(len(body)))
        if self.request_id:
            self.send_header("x-fc-request-id", self.request_id)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def send_fc_error(self, exc: FCError) -> None:
        if not self.request_id:
            self.request_id = new_request_id()
        if not self.body_consumed:
            self.close_connection = True  # the unread body would desynchronise keep-alive
        self.send_json(
            exc.status, exc.to_dict(self.request_id), headers=exc.headers, content_type=ERROR_CONTENT_TYPE
        )

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, unsupported method ...) as FC JSON errors."""
        self.close_connection = True
        codes = {
            400: "InvalidArgument",
            404: "PathNotSupported",
            405: "MethodNotAllowed",
            414: "InvalidArgument",
            431: "InvalidArgument",
            501: "PathNotSupported",
        }
        status = 404 if code == 501 else code
        try:
            self.send_fc_error(
                FCError(
                    message or explain or "bad request",
                    status=status,
                    code=codes.get(code, "InternalServerError"),
                )
            )
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s", self.address_string(), format % args)


__all__ = [
    "ERROR_CONTENT_TYPE",
    "EXPOSE_HEADERS",
    "JSON_CONTENT_TYPE",
    "JSONRequestHandler",
    "LoopbackHTTPServer",
]
