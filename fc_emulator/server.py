"""The FC 3.0 emulator's HTTP server (moto's server mode / ``ThreadedMotoServer``).

Point the official SDK at it with
``Config(access_key_id=..., access_key_secret=..., endpoint=server.endpoint, protocol="http")``.

Per FC API request (``/2023-03-30/...``): route on the raw path (404 ``PathNotSupported``) → count the call →
verify the ACS3-HMAC-SHA256 signature (403) → check ``x-acs-version``/``x-acs-action`` (400) → fault plan:
sleep the injected latency in this request's thread (never under the backend lock), answer an injected
throttle/error → run the action → if the response is to be "lost", close the connection unanswered (the
change is committed) → otherwise answer JSON with ``x-fc-request-id``, ``etag`` and ``date`` headers.

``/_emulator/...`` is the unsigned control API (see :mod:`fc_emulator.control`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from typing import IO, Any

from . import control, routes, sls
from .codepackage import MAX_ZIP_BASE64
from .dataplane import DataPlane, ListenerHub
from .exceptions import FCError, InternalServerError, new_request_id
from .faults import FaultInjector
from .http import EXPOSE_HEADERS, JSONRequestHandler, LoopbackHTTPServer
from .logstore import LogStore
from .models import REQUEST_REGION, FCBackend
from .signing import verify_request

logger = logging.getLogger("fc_emulator")

DEFAULT_ACCESS_KEY_ID = "mcpfc-local"
DEFAULT_ACCESS_KEY_SECRET = "mcpfc-local-secret"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8931
DEFAULT_ACCOUNT_ID = "1234567890123456"
DEFAULT_REGION = "cn-hangzhou"
ENV_ACCESS_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_ACCESS_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"


def resolve_credentials(
    access_key_id: str | None = None, access_key_secret: str | None = None
) -> tuple[str, str, str]:
    """``(access_key_id, secret, source)``: explicit pair, else ``ALIBABA_CLOUD_ACCESS_KEY_ID``/``_SECRET``,
    else the documented defaults."""
    if access_key_id or access_key_secret:
        if not (access_key_id and access_key_secret):
            raise ValueError("give both access_key_id and access_key_secret, or neither")
        return access_key_id, access_key_secret, "argument"
    env_id, env_secret = os.environ.get(ENV_ACCESS_KEY_ID), os.environ.get(ENV_ACCESS_KEY_SECRET)
    if env_id and env_secret:
        return env_id, env_secret, "environment"
    if env_id or env_secret:
        logger.warning(
            "only one of %s / %s is set; using the emulator's default key pair",
            ENV_ACCESS_KEY_ID,
            ENV_ACCESS_KEY_SECRET,
        )
    return DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, "default"


_REGION = re.compile(r"[a-z]{2,}(?:-[a-z0-9]+)+")
_REGIONAL_HOST = re.compile(r"(?:[0-9]+\.)?([a-z]{2,}(?:-[a-z0-9]+)+)\.fc\.aliyuncs\.com(?::[0-9]+)?")


def request_region(headers: Any) -> str | None:
    """The region an FC API request was for: FC's regional endpoint host (``<account>.<region>.fc.
    aliyuncs.com``), else the ``x-acs-region-id`` header (what mcp-fc's gateway adds, so one emulator on
    one loopback port serves every region), else None (the emulator's default region)."""
    host = (headers.get("host") or "").strip().lower()
    if match := _REGIONAL_HOST.fullmatch(host):
        return match.group(1)
    region = (headers.get("x-acs-region-id") or "").strip().lower()
    return region if _REGION.fullmatch(region) else None


class _FCRequestHandler(JSONRequestHandler):
    server: _ControlHTTPServer
    #: A CreateFunction may carry FC's largest code package (100 MB of base64 in code.zipFile, which
    #: codepackage.py refuses past that with FC's own rule) plus the rest of the function's JSON.
    max_body_bytes = MAX_ZIP_BASE64 + 1024 * 1024

    def _dispatch(self) -> None:
        emulator = self.server.emulator
        self.request_id = new_request_id()
        raw_path, raw_query, _ = sls.split_target(self.path)
        try:
            body = self.read_body()
            if sls.is_sls_request(raw_path):
                self._serve_sls(emulator, body)
            elif control.is_control_path(raw_path):
                status, payload = control.handle(emulator, self.command, raw_path, body)
                self.send_json(status, payload)
            else:
                self._serve_fc(emulator, raw_path, raw_query, body)
        except FCError as exc:
            self._fail(exc)
        except Exception:  # noqa: BLE001 - always answer FC-shaped JSON
            logger.exception("emulator error on %s %s", self.command, self.path)
            self._fail(InternalServerError("internal error in the FC emulator"))

    def _serve_sls(self, emulator: EmulatorServer, body: bytes) -> None:
        status, payload, headers = sls.handle(
            method=self.command,
            target=self.path,
            headers=self.headers,
            body=body,
            credentials=emulator.credentials,
            store=emulator.logs,
            endpoint_hosts={emulator.endpoint, f"localhost:{emulator.port}"},
            known=emulator.log_destinations(),
        )
        self.send_json(status, payload, headers=headers)

    def _fail(self, exc: FCError) -> None:
        if self.headers_sent:
            self.close_connection = True
        else:
            self.send_fc_error(exc)

    def _serve_fc(self, emulator: EmulatorServer, raw_path: str, raw_query: str, body: bytes) -> None:
        route, params = routes.match(self.command, raw_path)
        faults = emulator.faults
        faults.record_call(route.action)
        verify_request(self.command, raw_path, raw_query, self.headers, body, emulator.credentials)
        routes.check_headers(route, self.headers)

        plan = faults.plan(route.action)
        if plan.latency_s:
            time.sleep(plan.latency_s)  # this request's thread only; no lock is held here
        if plan.error is not None:
            raise plan.error

        request = routes.FCRequest(self.command, raw_path, raw_query, body, params)
        error: FCError | None = None
        status, payload = 500, None
        token = REQUEST_REGION.set(request_region(self.headers))
        try:
            status, payload = routes.dispatch(emulator.backend, route, request)
        except FCError as exc:
            error = exc
        finally:
            REQUEST_REGION.reset(token)
        if plan.lose_response:
            logger.debug("%s committed; dropping the response (injected fault)", route.action)
            self.close_connection = True
            return
        if error is not None:
            raise error
        self._send_success(status, payload)

    def _send_success(self, status: int, payload: dict[str, Any] | None) -> None:
        if payload is None:
            self.send_json(204 if status == 200 else status, None)
            return
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_json(
            status,
            payload,
            headers={
                "etag": hashlib.md5(body).hexdigest(),  # noqa: S324 - an ETag, not security
                "access-control-expose-headers": EXPOSE_HEADERS,
            },
        )

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch


class _ControlHTTPServer(LoopbackHTTPServer):
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], emulator: EmulatorServer) -> None:
        self.emulator = emulator
        super().__init__(address, _FCRequestHandler)


class EmulatorServer:
    """A local Function Compute 3.0 (API 2023-03-30) endpoint on loopback.

    >>> with EmulatorServer(port=0, pending_seconds=0.2) as fc:       # doctest: +SKIP
    ...     client = Client(Config(access_key_id=fc.access_key_id, access_key_secret=fc.access_key_secret,
    ...                            endpoint=fc.endpoint, protocol="http"))

    ``access_key_id``/``access_key_secret`` default to ``ALIBABA_CLOUD_ACCESS_KEY_ID``/``_SECRET`` from the
    environment, else :data:`DEFAULT_ACCESS_KEY_ID`/:data:`DEFAULT_ACCESS_KEY_SECRET`. With ``state_file`` the
    functions and triggers are saved as JSON after every change and loaded by :meth:`start` (trigger ports
    are re-bound when free). ``dataplane`` replaces the :class:`~fc_emulator.dataplane.DataPlane` that
    answers requests on HTTP trigger URLs.

    HTTP trigger URLs are live: the first request starts the function's container command as a local process
    (see :mod:`fc_emulator.runtime`) and the request is streamed through to it. ``runtime=False``
    turns that off (trigger URLs then answer ``503 FunctionNotReady``); ``start_timeout_s`` (default 60)
    bounds a cold start and ``idle_timeout_s`` (default 600, `MCPFC_EMULATOR_IDLE_S`) stops an unused instance. :meth:`stop` and
    :meth:`reset` stop every instance; no function process outlives :meth:`stop`.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        account_id: str = DEFAULT_ACCOUNT_ID,
        region: str = DEFAULT_REGION,
        pending_seconds: float = 1.0,
        state_file: str | os.PathLike[str] | None = None,
        *,
        fail_images: list[str] | None = None,
        dataplane: DataPlane | None = None,
        runtime: bool | None = None,
        start_timeout_s: float | None = None,
        idle_timeout_s: float | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.access_key_id, self.access_key_secret, self.credentials_source = resolve_credentials(
            access_key_id, access_key_secret
        )
        self.credentials: dict[str, str] = {self.access_key_id: self.access_key_secret}
        self.account_id = account_id
        self.region = region
        self.faults = FaultInjector(routes.OPERATIONS)
        self.hub = ListenerHub(host, dataplane)
        self.backend = FCBackend(
            region,
            account_id,
            pending_seconds,
            fail_images=fail_images,
            listeners=self.hub,
            state_file=state_file,
        )
        runtime_dir = None
        if state_file is not None:
            runtime_dir = os.path.join(os.path.dirname(os.path.abspath(state_file)), "fc-instances")
        self.hub.dataplane.attach(
            credentials=self.credentials, account_id=account_id, region=region, runtime_dir=runtime_dir
        )
        self.hub.dataplane.configure(
            runtime=runtime, start_timeout_s=start_timeout_s, idle_timeout_s=idle_timeout_s, initial=True
        )
        self.hub.resolver = self.backend.resolve
        self._httpd: _ControlHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # addresses ---------------------------------------------------------------------------------------------
    @property
    def connect_host(self) -> str:
        return self.hub.url_host

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not started")
        return self._port

    @property
    def endpoint(self) -> str:
        """``"127.0.0.1:PORT"``: the SDK's ``Config.endpoint`` (use with ``protocol="http"``)."""
        return f"{self.connect_host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def dataplane(self) -> DataPlane:
        return self.hub.dataplane

    @property
    def logs(self) -> LogStore:
        """The instances' kept output (what SLS ``GetLogs`` at this endpoint answers from)."""
        return self.dataplane.instances.logs

    def log_destinations(self) -> set[tuple[str, str]]:
        """The ``(project, logstore)`` pairs that exist: every function's ``logConfig`` and the kept lines'."""
        found = set(self.logs.destinations())
        for function in list(self.backend.functions.values()):
            config = function.spec.get("logConfig") or {}
            if config.get("project") and config.get("logstore"):
                found.add((str(config["project"]), str(config["logstore"])))
        return found

    def info(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "url": self.url,
            "accessKeyId": self.access_key_id,
            "region": self.region,
            "accountId": self.account_id,
        }

    # lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> EmulatorServer:
        """Load ``state_file`` (if any), start listening in background threads; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("the emulator is already started")
        self.hub.start()
        try:
            if self.backend.state_file is not None:
                self.backend.load_state()
            else:
                self.backend.reopen_listeners()  # a restart of this object: bring its triggers back
            httpd = _ControlHTTPServer((self.host, self._requested_port), self)
        except BaseException:
            self.hub.stop()
            raise
        self._httpd = httpd
        self._port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"fc-emulator-{self._port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("FC emulator listening on %s (access key id %s)", self.url, self.access_key_id)
        return self

    def stop(self) -> None:
        """Stop answering, cut open connections, close every trigger listener."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.hub.stop()

    def reset(self) -> None:
        """Wipe functions, triggers (and their listeners), running instances, fault rules, counters and
        runtime config."""
        self.backend.reset()
        self.faults.reset()
        self.dataplane.reset()
        self.logs.clear()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._httpd is not None else "stopped"
        return f"<EmulatorServer {where} access_key_id={self.access_key_id!r}>"


def run(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    access_key_id: str | None = None,
    access_key_secret: str | None = None,
    account_id: str = DEFAULT_ACCOUNT_ID,
    region: str = DEFAULT_REGION,
    pending_seconds: float = 1.0,
    state_file: str | os.PathLike[str] | None = None,
    out: IO[str] | None = None,
    stop_event: threading.Event | None = None,
    start_timeout_s: float | None = None,
    idle_timeout_s: float | None = None,
) -> int:
    """Serve until Ctrl-C / SIGTERM (or ``stop_event``); for ``mcp-fc emulator``. Returns the exit code 0.

    Prints one line: the endpoint and the access key id it accepts (never the secret).
    """
    server = EmulatorServer(
        host,
        port,
        access_key_id,
        access_key_secret,
        account_id=account_id,
        region=region,
        pending_seconds=pending_seconds,
        state_file=state_file,
        start_timeout_s=start_timeout_s,
        idle_timeout_s=idle_timeout_s,
    ).start()
    stop = stop_event or threading.Event()
    source = {"environment": f" (from {ENV_ACCESS_KEY_ID})", "default": " (default)"}.get(
        server.credentials_source, ""
    )
    print(
        f"FC 3.0 emulator listening on {server.url} (SDK endpoint {server.endpoint!r}, protocol 'http'); "
        f"accepting access key id {server.access_key_id!r}{source}",
        file=out or sys.stdout,
        flush=True,
    )
    previous = None
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if in_main and previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0
