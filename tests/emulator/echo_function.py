"""A tiny HTTP server the runtime tests run as a function's container command (stdlib only).

    python echo_function.py [--port N] [--host H]     (default: $PORT, 127.0.0.1)

Routes: ``GET /env`` (the process environment as JSON), ``/pid``, ``/request`` (method, raw path, headers and
body it received, as JSON; any method), ``/stream`` (an event-stream: sends ``event: first`` at once, then
waits until ``POST /release`` before sending ``event: second`` and ending; chunked), ``/exit?code=N``
(answers, then exits with N), ``/sick`` (``GET /healthz`` answers 503 from then on). Anything else answers 404
(``GET /healthz`` answers 200).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

RELEASE = threading.Event()
SICK = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002
        sys.stderr.write("echo-function: " + (format % args) + "\n")

    def _json(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _route(self):
        parts = urlsplit(self.path)
        body = self._body()
        if parts.path == "/env":
            return self._json(200, dict(os.environ))
        if parts.path == "/pid":
            return self._json(200, {"pid": os.getpid()})
        if parts.path == "/healthz":
            return self._json(503, {"ok": False}) if SICK.is_set() else self._json(200, {"ok": True})
        if parts.path == "/sick":
            SICK.set()
            return self._json(200, {"sick": True})
        if parts.path == "/request":
            return self._json(
                200,
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": [[k, v] for k, v in self.headers.items()],
                    "body": body.decode("utf-8", "replace"),
                },
            )
        if parts.path == "/release":
            RELEASE.set()
            return self._json(200, {"released": True})
        if parts.path == "/stream":
            RELEASE.clear()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._chunk(b"event: first\ndata: 1\n\n")
            RELEASE.wait(60)
            self._chunk(b"event: second\ndata: 2\n\n")
            self.wfile.write(b"0\r\n\r\n")
            return None
        if parts.path == "/exit":
            code = int(parse_qs(parts.query).get("code", ["0"])[0])
            self._json(200, {"exiting": code})
            self.wfile.flush()
            os._exit(code)
        return self._json(404, {"path": self.path})

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "42")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _route


def main(argv):
    port = int(os.environ.get("PORT", "9000"))
    host = "127.0.0.1"
    if "--port" in argv:
        port = int(argv[argv.index("--port") + 1])
    if "--host" in argv:
        host = argv[argv.index("--host") + 1]
    print(f"echo-function listening on {host}:{port}", flush=True)
    ThreadingHTTPServer((host, port), Handler).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
