"""The data plane: one loopback HTTP listener per HTTP trigger, and what serves the requests on it.

Each HTTP trigger gets its own port, so its URL (``http://127.0.0.1:<port>``) is the ROOT of its own origin,
like FC's ``https://<id>.<region>.fcapp.run``. This matters for MCP over SSE: the proxy in the function emits
absolute paths such as ``/messages/?session_id=...`` that path-prefix routing would break. ``urlIntranet``
is the same URL as ``urlInternet`` (there is no VPC on a laptop).

All trigger listeners share one selector thread (:class:`ListenerHub`); each accepted connection is served
in its own daemon thread by :class:`TriggerRequestHandler`, which looks the function and trigger up at
request time and hands the request to :meth:`DataPlane.handle`.

Requests are served by :class:`DataPlane`: the trigger's ``methods`` and ``authType`` are enforced first
(:mod:`~fc_emulator.trigger_auth`), then the function's container command runs as a local process
(:mod:`~fc_emulator.runtime`, started on the first request) and the request is reverse-proxied to it,
the response streamed back (:mod:`~fc_emulator.proxy`). Instances stop on UpdateFunction (the next
request starts the new revision), DeleteFunction, DeleteTrigger, idle timeout, reset and emulator stop.
A custom :class:`DataPlane` (subclass, override :meth:`DataPlane.serve`) can be passed as
``EmulatorServer(dataplane=...)``.

The HTTP plumbing these listeners share with the FC API server is :mod:`~fc_emulator.http`.
"""

from __future__ import annotations

import logging
import math
import os
import selectors
import socket
import threading
from collections.abc import Callable
from typing import Any

from .exceptions import (
    FCError,
    FunctionNotReady,
    InternalServerError,
    InvalidArgument,
    MethodNotAllowed,
    new_request_id,
)
from .http import JSONRequestHandler, LoopbackHTTPServer
from .proxy import forward
from .resources import Function, Trigger
from .runtime import DEFAULT_IDLE_TIMEOUT_S, DEFAULT_START_TIMEOUT_S, DEFAULT_STOP_GRACE_S, InstanceManager
from .signing import Credentials
from .trigger_auth import AuthResult, authenticate

logger = logging.getLogger("fc_emulator")


# data plane ---------------------------------------------------------------------------------------------


class DataPlane:
    """Serves requests that arrive on an HTTP trigger's URL, as FC's gateway does.

    :meth:`handle`: the trigger's ``methods`` (405 JSON otherwise) → its ``authType``
    (:mod:`~fc_emulator.trigger_auth`; 401/403 JSON, before anything is started) → :meth:`serve`, which
    answers ``503 FunctionNotReady`` unless the function is ``Active`` (and the runtime enabled), gets an
    instance from :class:`~fc_emulator.runtime.InstanceManager` (cold start: the container command as
    a local process; ``502 FunctionNotStarted`` when it cannot start) and streams the request through
    :func:`~fc_emulator.proxy.forward`.

    Runtime settings (also ``GET``/``PUT /_emulator/config``): ``runtime`` (run functions at all; when off,
    trigger URLs answer 503 as before this existed), ``start_timeout_s`` (default 60) and ``idle_timeout_s``
    (default 600, ``MCPFC_EMULATOR_IDLE_S``). ``stop_grace_s`` is how long a stopping instance gets between SIGTERM and SIGKILL.

    ``request`` is the :class:`TriggerRequestHandler` (a ``BaseHTTPRequestHandler``): ``request.command``,
    ``request.path`` (raw), ``request.headers``, ``request.read_body()``, ``request.wfile``,
    ``request.send_json(...)``. Raising an :class:`FCError` before anything is written answers it as JSON.
    ``function`` and ``trigger`` are settled copies taken at request time (``function.state``,
    ``function.spec``, ``function.revision``, ``trigger.config``). Subclasses may override :meth:`serve`.
    """

    def __init__(
        self,
        *,
        runtime: bool = True,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        stop_grace_s: float = DEFAULT_STOP_GRACE_S,
        runtime_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        _check_config(start_timeout_s=start_timeout_s, idle_timeout_s=idle_timeout_s)
        self.runtime = bool(runtime)
        self.instances = InstanceManager(
            start_timeout_s=start_timeout_s,
            idle_timeout_s=idle_timeout_s,
            stop_grace_s=stop_grace_s,
            runtime_dir=runtime_dir,
        )
        #: The emulator's key pair(s), for ``function`` trigger auth (set by :meth:`attach`).
        self.credentials: Credentials = {}
        self._initial_config = self.get_config()

    # wiring and configuration --------------------------------------------------------------------------
    def attach(
        self,
        *,
        credentials: Credentials,
        account_id: str,
        region: str,
        runtime_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """Called by :class:`~fc_emulator.server.EmulatorServer` with its key pair and identity."""
        self.credentials = credentials
        self.instances.account_id = account_id
        self.instances.region = region
        if runtime_dir is not None:
            self.instances.set_runtime_dir(runtime_dir)

    def get_config(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "start_timeout_s": self.instances.start_timeout_s,
            "idle_timeout_s": self.instances.idle_timeout_s,
        }

    def configure(
        self,
        *,
        runtime: bool | None = None,
        start_timeout_s: float | None = None,
        idle_timeout_s: float | None = None,
        initial: bool = False,
    ) -> dict[str, Any]:
        """Change some settings (``initial=True``: also make them what :meth:`reset` restores); all are
        validated before any changes."""
        if runtime is not None and not isinstance(runtime, bool):
            raise InvalidArgument("runtime must be a boolean")
        _check_config(start_timeout_s=start_timeout_s, idle_timeout_s=idle_timeout_s)
        if runtime is not None:
            self.runtime = runtime
        self.instances.configure(start_timeout_s=start_timeout_s, idle_timeout_s=idle_timeout_s)
        if initial:
            self._initial_config = self.get_config()
        if runtime is False:
            self.instances.stop_all()
        return self.get_config()

    def reset(self) -> None:
        """Stop every instance and restore the initial settings (``POST /_emulator/reset``)."""
        self.instances.stop_all()
        initial = self._initial_config
        self.runtime = initial["runtime"]
        self.instances.configure(
            start_timeout_s=initial["start_timeout_s"], idle_timeout_s=initial["idle_timeout_s"]
        )

    def list_instances(self) -> list[dict[str, Any]]:
        return self.instances.list()

    # requests ----------------------------------------------------------------------------------------------
    def handle(self, request: TriggerRequestHandler, function: Function, trigger: Trigger) -> None:
        self.check_method(request, trigger)
        request.auth = self.check_auth(request, trigger)
        self.serve(request, function, trigger)

    def check_method(self, request: TriggerRequestHandler, trigger: Trigger) -> None:
        methods = [m.upper() for m in trigger.config.get("methods") or []]
        if request.command.upper() not in methods:
            raise MethodNotAllowed(
                f"method {request.command} is not allowed by trigger '{trigger.name}' "
                f"(allowed: {', '.join(methods)})",
                headers={"Allow": ", ".join(methods)},
            )

    def check_auth(self, request: TriggerRequestHandler, trigger: Trigger) -> AuthResult:
        raw_path, _, raw_query = request.path.partition("?")
        return authenticate(
            method=request.command,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=request.headers,
            read_body=request.read_body,
            config=trigger.config,
            credentials=self.credentials,
        )

    def serve(self, request: TriggerRequestHandler, function: Function, trigger: Trigger) -> None:
        if function.state != "Active":
            raise FunctionNotReady(
                f"function '{function.name}' is {function.state}: {function.state_reason or 'not ready'}"
            )
        if not self.runtime:
            raise FunctionNotReady(
                f"function '{function.name}' has no running instance: the emulator's "
                'local runtime is disabled (PUT /_emulator/config {"runtime": true})'
            )
        instance = self.instances.acquire(function)
        try:
            forward(request, instance, auth=request.auth, timeout_s=float(function.spec.get("timeout") or 3))
        finally:
            self.instances.release(instance)

    # lifecycle hooks (called outside the backend lock) ---------------------------------------------------
    def function_updated(self, function_name: str) -> None:
        """After UpdateFunction: stop the instance; the next request starts the new revision."""
        self.instances.stop_function(function_name)

    def function_deleted(self, function_name: str) -> None:
        """After DeleteFunction."""
        self.instances.stop_function(function_name, wait=True, versions=True)

    def trigger_deleted(
        self, function_name: str, trigger_name: str, *, orphaned: tuple[str, ...] = ()
    ) -> None:
        """After DeleteTrigger of an HTTP trigger: nothing can reach the instance any more (nor those of the
        versions in ``orphaned``)."""
        self.instances.stop_function(function_name)
        self.instances.stop_keys(orphaned)

    def close(self) -> None:
        """Called on emulator stop: stop every instance and wait until they are gone."""
        self.instances.close()


def _check_config(*, start_timeout_s: Any = None, idle_timeout_s: Any = None) -> None:
    for name, value in (("start_timeout_s", start_timeout_s), ("idle_timeout_s", idle_timeout_s)):
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value <= 0
        ):
            raise InvalidArgument(f"{name} must be a number > 0, got {value!r}")


class TriggerRequestHandler(JSONRequestHandler):
    server: TriggerHTTPServer
    #: What trigger authentication left for the proxy (set per request by :meth:`DataPlane.handle`).
    auth: AuthResult | None = None

    def _dispatch(self) -> None:
        self.request_id = new_request_id()
        self.auth = None
        hub = self.server.hub
        try:
            function, trigger = hub.resolve(self.server.function_name, self.server.trigger_name)
            hub.dataplane.handle(self, function, trigger)
        except FCError as exc:
            self._fail(exc)
        except Exception:  # noqa: BLE001 - answer 500 rather than drop the connection
            logger.exception("data plane error on %s/%s", self.server.function_name, self.server.trigger_name)
            self._fail(InternalServerError("internal error in the emulator's data plane"))
        finally:
            has_body = (
                self.headers.get("Content-Length", "0") not in ("", "0")
                or "chunked" in self.headers.get("Transfer-Encoding", "").lower()
            )
            if has_body and not self.body_consumed:
                self.close_connection = True  # an unread body would desynchronise keep-alive

    def _fail(self, exc: FCError) -> None:
        if self.headers_sent:
            self.close_connection = True
            return
        self.send_fc_error(exc)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_TRACE = _dispatch


class TriggerHTTPServer(LoopbackHTTPServer):
    def __init__(
        self, address: tuple[str, int], hub: ListenerHub, function_name: str, trigger_name: str
    ) -> None:
        self.hub = hub
        self.function_name = function_name
        self.trigger_name = trigger_name
        super().__init__(address, TriggerRequestHandler)


# the listener hub ----------------------------------------------------------------------------------------


class ListenerHub:
    """Owns the HTTP trigger listeners (implements :class:`~fc_emulator.listeners.TriggerListeners`).

    One selector thread accepts connections on every listener; handling runs in per-connection threads.
    ``open``/``close`` are cheap (bind/close a socket) and may be called under the backend lock.
    """

    def __init__(
        self, host: str = "127.0.0.1", dataplane: DataPlane | None = None, url_host: str | None = None
    ) -> None:
        self.host = host
        self.url_host = url_host or (host if host not in ("", "0.0.0.0") else "127.0.0.1")
        self.dataplane = dataplane or DataPlane()
        self.resolver: Callable[[str, str], tuple[Function, Trigger]] | None = None
        self._lock = threading.Lock()
        self._servers: dict[tuple[str, str], TriggerHTTPServer] = {}
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stopping.clear()
            self._selector = selectors.DefaultSelector()
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._selector.register(self._wake_r, selectors.EVENT_READ, None)
            for server in self._servers.values():
                self._selector.register(server.socket, selectors.EVENT_READ, server)
            self._thread = threading.Thread(target=self._run, name="fc-emulator-triggers", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self.close_all()
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping.set()
            if self._wake_w is not None:
                try:
                    self._wake_w.send(b"x")
                except OSError:
                    pass
        if thread is not None:
            thread.join(timeout=5)
        with self._lock:
            for sock in (self._wake_r, self._wake_w):
                if sock is not None:
                    sock.close()
            self._wake_r = self._wake_w = None
            if self._selector is not None:
                self._selector.close()
                self._selector = None
        self.dataplane.close()

    def _run(self) -> None:
        selector = self._selector
        assert selector is not None
        while not self._stopping.is_set():
            try:
                events = selector.select(timeout=1.0)
            except (OSError, ValueError):
                if self._stopping.is_set():
                    return
                continue
            for key, _ in events:
                if key.data is None:
                    try:
                        key.fileobj.recv(512)  # type: ignore[union-attr]
                    except OSError:
                        pass
                    continue
                try:
                    key.data._handle_request_noblock()
                except Exception:  # noqa: BLE001 - keep accepting on the other listeners
                    logger.debug("accept failed on trigger listener", exc_info=True)

    # TriggerListeners protocol -----------------------------------------------------------------------------
    def resolve(self, function_name: str, trigger_name: str) -> tuple[Function, Trigger]:
        if self.resolver is None:
            raise FunctionNotReady("the emulator backend is not attached")
        return self.resolver(function_name, trigger_name)

    def _bind(self, function_name: str, trigger_name: str, port: int | None) -> TriggerHTTPServer:
        if port:
            try:
                return TriggerHTTPServer((self.host, port), self, function_name, trigger_name)
            except OSError:
                logger.info(
                    "port %s is not free for trigger %s/%s; picking another",
                    port,
                    function_name,
                    trigger_name,
                )
        return TriggerHTTPServer((self.host, 0), self, function_name, trigger_name)

    def open(self, function_name: str, trigger_name: str, port: int | None = None) -> int:
        server = self._bind(function_name, trigger_name, port)
        server.socket.setblocking(False)
        with self._lock:
            old = self._servers.pop((function_name, trigger_name), None)
            self._servers[(function_name, trigger_name)] = server
            if self._selector is not None:
                self._selector.register(server.socket, selectors.EVENT_READ, server)
        if old is not None:
            self._shutdown_server(old)
        bound = server.server_address[1]
        logger.debug("trigger %s/%s listening on %s:%s", function_name, trigger_name, self.host, bound)
        return bound

    def _shutdown_server(self, server: TriggerHTTPServer) -> None:
        with self._lock:
            if self._selector is not None:
                try:
                    self._selector.unregister(server.socket)
                except (KeyError, ValueError):
                    pass
        server.server_close()
        server.close_connections()

    def close(self, function_name: str, trigger_name: str) -> None:
        with self._lock:
            server = self._servers.pop((function_name, trigger_name), None)
        if server is not None:
            self._shutdown_server(server)

    def close_all(self) -> None:
        with self._lock:
            servers = list(self._servers.values())
            self._servers.clear()
        for server in servers:
            self._shutdown_server(server)

    def function_deleted(self, function_name: str) -> None:
        self.dataplane.function_deleted(function_name)

    def function_updated(self, function_name: str) -> None:
        self.dataplane.function_updated(function_name)

    def trigger_deleted(
        self, function_name: str, trigger_name: str, *, orphaned: tuple[str, ...] = ()
    ) -> None:
        self.dataplane.trigger_deleted(function_name, trigger_name, orphaned=orphaned)

    def get_runtime_config(self) -> dict[str, Any]:
        return self.dataplane.get_config()

    def configure_runtime(self, **settings: Any) -> dict[str, Any]:
        return self.dataplane.configure(**settings)

    def ports(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return {key: server.server_address[1] for key, server in self._servers.items()}
