"""Function instances as local processes: the emulator's ``docker run`` (without Docker).

On the first request to an HTTP trigger (a cold start) the data plane asks :class:`InstanceManager` for an
instance of the function. The manager runs the container's process as a local process and waits until it
listens. What that means, and where it differs from FC:

* **The process is what a container runtime would run** (:func:`container_argv`): the function's
  ``customContainerConfig.entrypoint`` followed by its ``command`` when it sets ``entrypoint``; otherwise the
  image's ENTRYPOINT followed by ``command`` (or, without one, the image's CMD). The emulator pulls no image,
  so an image's ENTRYPOINT and CMD are what the control API registered for it (``PUT /_emulator/images``),
  none otherwise. So an image whose ENTRYPOINT is ``catatonit -- mcp-proxy`` turns a bare ``command`` of
  ``mcp-proxy ...`` into ``catatonit -- mcp-proxy mcp-proxy ...``, as FC would.
* **Init processes** (``tini``, ``catatonit``, ``dumb-init``) in front of the program run for real when
  they are on ``PATH``; otherwise the emulator runs the program after them directly (an init's work,
  forwarding signals and reaping children, is done locally by the process-group handling below) and
  reports it as ``"initStandIn": true``. Port mapping and the ``PATH`` lookup apply to that program.

* **The image is not pulled.** The command is looked up on ``PATH``: the emulator's own ``PATH`` with the
  directory of ``sys.executable`` in front (so the console scripts of the emulator's virtualenv, such as
  ``mcp-proxy`` and ``mcp-server-time``, are found). A function without a command cannot run locally.
* **Port mapping, as ``docker run -p``.** The container port (``customContainerConfig.port``, default 9000)
  is mapped to a free loopback port. A local process cannot be remapped transparently, so the command is
  rewritten: the value of ``--port N`` / ``--port=N`` / ``-p N`` that equals the container port becomes the
  allocated port, and ``--host 0.0.0.0`` / ``--host=0.0.0.0`` (or ``::``) becomes ``127.0.0.1``: a local
  MCP server is never exposed beyond loopback. Only the part before the first ``--`` is rewritten (what
  follows belongs to the wrapped stdio server). ``PORT``, ``FC_SERVER_PORT`` and ``FC_CUSTOM_LISTEN_PORT``
  carry the allocated port too.
* **Limit: a command without such a port flag runs unchanged** and is expected to listen on the container
  port itself (on this machine). If that port is already taken, the start fails with a clear
  ``FunctionNotStarted`` error, and two such functions with the same port cannot run at once. The
  deprecated ``mcp-proxy --sse-port/--sse-host`` flags are deliberately not mapped: mcp-proxy ignores them,
  and the emulator then fails the same way FC does (nothing listens on the container port).
* **A minimal environment**, never the emulator's own (it may hold ``MCPFC_SECRET_KEY`` or real Alibaba
  keys): ``PATH``, ``HOME``, ``TMPDIR``, and when set the locale, certificate, proxy and uv/pip/npm
  cache and index variables a local ``uvx`` / ``npx`` needs (:data:`PASSED_HOST_VARS`, an allowlist);
  then the function's ``environmentVariables`` (which override them); then the ``FC_*`` variables FC injects; then, when the function has a ``role``
  and ``disableInjectCredentials`` is not ``Env`` or ``All``, fake STS credentials
  (``ALIBABA_CLOUD_ACCESS_KEY_ID=STS.emulated...``, ``..._SECRET``, ``ALIBABA_CLOUD_SECURITY_TOKEN``).
* **Readiness**: a TCP connect to the port and, when ``healthCheckConfig.httpGetUrl`` is set, an HTTP GET
  answering 2xx (first attempted once the port accepts and ``initialDelaySeconds`` have passed, then every
  ``periodSeconds``). The wait is bounded by ``min(initialDelaySeconds + periodSeconds * failureThreshold +
  timeoutSeconds, start_timeout_s)``. A process that exits first fails at once with its exit code and the
  last lines of its output; one that never gets ready fails at the deadline and is killed.
* **Liveness**: once ready, an instance whose ``healthCheckConfig`` has an ``httpGetUrl`` is checked again
  every ``periodSeconds`` (by the reaper thread); after ``failureThreshold`` failures in a row (no 2xx
  within ``timeoutSeconds``) it is stopped and the next request starts a fresh one, as FC replaces an
  unhealthy instance. The mcp-fc bridge's ``/status`` fails while its stdio server does not answer.
* **One instance per function** (no scale-out; ``instanceConcurrency`` is not enforced). Concurrent cold
  requests start one instance (a lock per function). An instance whose process died is replaced on the
  next request; one of an older revision (after UpdateFunction) is stopped.
* **Each instance is its own process group** (``start_new_session=True``). Stopping it cuts the proxied
  connections, sends SIGTERM to the group, waits up to ``stop_grace_s`` for the leader, then sends SIGKILL
  to the whole group and to every descendant that left it (on Linux, found through ``/proc`` before the
  SIGTERM: mcp's stdio client starts the wrapped server in a session of its own) and reaps the leader, so
  no process outlives :meth:`InstanceManager.close`.
* Output (stdout and stderr) is read line by line from two pipes: each line goes to the manager's
  :class:`~fc_emulator.logstore.LogStore` (what the SLS ``GetLogs`` route answers from, with its
  time, instance id and stream) and to ``<runtime dir>/<function>-<instance id>/output.log``; the runtime
  dir is a temporary directory (removed by :meth:`InstanceManager.close`) unless one is given (the server
  uses ``<state_file dir>/fc-instances``, where the latest 50 instance directories are kept). The process
  runs in its instance directory.
* Idle instances (no request in flight for ``idle_timeout_s``) are stopped by one reaper thread, which also
  reaps instances whose process has died.

One module (~1000 lines) on purpose: starting, readiness, reaping and stopping instances share one lock
and one instance table, and a change to one (e.g. the idle reaper) must be read with the others.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .exceptions import FCError, FunctionNotReady
from .logstore import LogStore, start_pumps

logger = logging.getLogger("fc_emulator")

DEFAULT_CONTAINER_PORT = 9000
# How long a cold start may take to listen (a health check's own budget can shorten it). mcp-proxy plus a
# Python MCP server take 1-2 s on a quiet laptop and 15-30 s on a loaded host; the variable stretches it.
DEFAULT_START_TIMEOUT_S = float(os.environ.get("MCPFC_EMULATOR_START_TIMEOUT_S") or 60.0)
# FC scales to zero: an instance with no request in flight this long is stopped (FC reclaims idle instances
# after a few minutes; 14 idle instances held 1.6 GB on a laptop). The variable sets it for `mcp-fc dev`.
DEFAULT_IDLE_TIMEOUT_S = float(os.environ.get("MCPFC_EMULATOR_IDLE_S") or 600.0)
DEFAULT_STOP_GRACE_S = 3.0
#: How many lines of the process output an error message carries (a bridge's traceback alone is longer
#: than 20; the server's own lines come separately, see :func:`watch_server`).
LOG_TAIL_LINES = 40
#: How many lines of a bridge's output come before them (the end of its traceback).
BRIDGE_TAIL_LINES = 15
#: How many lines of the stdio server's own stderr an error message ends with.
SERVER_TAIL_LINES = 20
#: The program put in front of a bridge's stdio server to record its exit code and stderr.
SERVER_WATCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serverwatch.py")
#: Instance directories (with their output.log) kept in the runtime dir; older ones are pruned.
KEEP_INSTANCE_DIRS = 50
#: FC's defaults for the fields of ``healthCheckConfig`` left out.
HEALTH_CHECK_DEFAULTS = {
    "initialDelaySeconds": 0,
    "periodSeconds": 3,
    "timeoutSeconds": 1,
    "failureThreshold": 3,
}
#: ``--host`` values rewritten to loopback.
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", "*"})
#: Variables passed from the emulator's environment when set (besides PATH, HOME and TMPDIR), so that a
#: command which fetches its server at start (`uvx`, `npx`) works here as in the user's shell: the locale,
#: the host's certificates (a TLS-intercepting proxy's CA, a system bundle uv or Node would not find), its
#: proxies (both spellings: curl and Python read the lowercase ones, others the uppercase), and where uv, pip
#: and npm keep their caches and find their index. An allowlist, not a denylist: the emulator's environment
#: holds the deployer's own settings (MCPFC_*), real Alibaba keys (ALIBABA_CLOUD_*) and whatever else the
#: user's shell has (tokens of other tools); none of it reaches a function, as on FC.
PASSED_LOCALE_VARS = ("LANG", "LC_ALL", "LC_CTYPE")
PASSED_CERT_VARS = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "NODE_USE_SYSTEM_CA",
    "PIP_CERT",
    "UV_NATIVE_TLS",
)
PASSED_PROXY_VARS = tuple(
    spelling
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
    for spelling in (name, name.lower())
)
PASSED_TOOL_VARS = (
    "UV_CACHE_DIR",
    "UV_TOOL_DIR",
    "UV_TOOL_BIN_DIR",
    "UV_PYTHON_INSTALL_DIR",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_OFFLINE",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "NPM_CONFIG_CACHE",
    "npm_config_cache",
    "NPM_CONFIG_REGISTRY",
    "npm_config_registry",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
)
PASSED_HOST_VARS = PASSED_LOCALE_VARS + PASSED_CERT_VARS + PASSED_PROXY_VARS + PASSED_TOOL_VARS
#: ``disableInjectCredentials`` values that keep the role's credentials out of the environment.
NO_ENV_CREDENTIALS = frozenset({"Env", "All"})


class FunctionNotStarted(FCError):
    """The function's instance could not be started (exited, never listened, not found, port taken)."""

    status = 502
    code = "FunctionNotStarted"


# command and environment -----------------------------------------------------------------------------


#: Init programs the emulator recognises in front of a container's program (see the module docstring).
INIT_PROGRAMS = frozenset({"tini", "catatonit", "dumb-init"})
#: Their options that take a value (tini ``-p SIG``/``-e CODE``, dumb-init ``-r s:r``).
INIT_VALUE_OPTIONS = frozenset({"-p", "-e", "-r", "--rewrite"})


def container_argv(container: Mapping[str, Any], image: Mapping[str, Any] | None = None) -> list[str]:
    """The container's process: ``entrypoint + command`` when the function sets an entrypoint (it replaces
    the image's ENTRYPOINT and CMD, as ``docker run --entrypoint`` does); otherwise the image's ENTRYPOINT
    followed by ``command``, or by the image's CMD when there is no command."""
    image = image or {}
    entrypoint = [str(a) for a in container.get("entrypoint") or []]
    command = [str(a) for a in container.get("command") or []]
    if entrypoint:
        return entrypoint + command
    return [str(a) for a in image.get("entrypoint") or []] + (
        command or [str(a) for a in image.get("cmd") or []]
    )


def split_init(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(init part, program part)``: a recognised init program and its options, then what it runs."""
    if not argv or os.path.basename(argv[0]) not in INIT_PROGRAMS:
        return [], list(argv)
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return list(argv[: i + 1]), list(argv[i + 1 :])
        if not arg.startswith("-"):
            break
        i += 2 if arg in INIT_VALUE_OPTIONS else 1
    return list(argv[:i]), list(argv[i:])


def map_command(argv: Sequence[str], container_port: int, host_port: int) -> tuple[list[str], bool]:
    """Rewrite ``argv`` for a loopback port: ``(new argv, whether a port flag was mapped)``.

    Before the first ``--``: ``--port``/``-p`` values equal to ``container_port`` become ``host_port`` and
    wildcard ``--host`` values become ``127.0.0.1``.
    """
    out = list(argv)
    end = out.index("--") if "--" in out else len(out)
    wanted = str(container_port)
    mapped = False
    i = 1  # out[0] is the program
    while i < end:
        arg = out[i]
        if arg in ("--port", "-p") and i + 1 < end:
            if out[i + 1] == wanted:
                out[i + 1] = str(host_port)
                mapped = True
            i += 2
            continue
        if arg == "--host" and i + 1 < end:
            if out[i + 1] in WILDCARD_HOSTS:
                out[i + 1] = "127.0.0.1"
            i += 2
            continue
        if arg.startswith("--port=") and arg.partition("=")[2] == wanted:
            out[i] = f"--port={host_port}"
            mapped = True
        elif arg.startswith("--host=") and arg.partition("=")[2] in WILDCARD_HOSTS:
            out[i] = "--host=127.0.0.1"
        i += 1
    return out, mapped


def watch_server(argv: Sequence[str], directory: str) -> tuple[list[str], bool]:
    """``argv`` with :mod:`~fc_emulator.serverwatch` in front of the stdio server after its first
    ``--`` (``(new argv, whether it was watched)``): a bridge reports its own exit code, not its server's."""
    out = list(argv)
    if "--" not in out[1:]:
        return out, False
    cut = out.index("--", 1) + 1
    if cut >= len(out):
        return out, False
    return out[:cut] + [sys.executable, "-I", SERVER_WATCH, directory, "--"] + out[cut:], True


def runtime_path() -> str:
    """The emulator's ``PATH`` with the directory of ``sys.executable`` (the venv's ``bin``) in front."""
    bindir = os.path.dirname(os.path.abspath(sys.executable))
    parts = [p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if p]
    if bindir not in parts:
        parts.insert(0, bindir)
    return os.pathsep.join(parts)


def injects_credentials(spec: Mapping[str, Any]) -> bool:
    """FC hands the role's STS credentials to the environment unless ``disableInjectCredentials`` says no."""
    return bool(spec.get("role")) and spec.get("disableInjectCredentials") not in NO_ENV_CREDENTIALS


def build_environment(
    spec: Mapping[str, Any],
    *,
    port: int,
    instance_id: str,
    account_id: str,
    region: str,
    qualifier: str = "LATEST",
) -> dict[str, str]:
    """The instance's whole environment (see the module docstring); nothing else of the emulator's."""
    env: dict[str, str] = {
        "PATH": runtime_path(),
        "HOME": os.environ.get("HOME") or tempfile.gettempdir(),
        "TMPDIR": os.environ.get("TMPDIR") or tempfile.gettempdir(),
    }
    for name in PASSED_HOST_VARS:
        if os.environ.get(name):
            env[name] = os.environ[name]
    env.update({str(k): str(v) for k, v in (spec.get("environmentVariables") or {}).items()})
    env.update(
        {
            "FC_FUNCTION_NAME": str(spec.get("functionName", "")),
            "FC_FUNCTION_HANDLER": str(spec.get("handler", "")),
            "FC_FUNCTION_MEMORY_SIZE": str(spec.get("memorySize", "")),
            "FC_QUALIFIER": qualifier,
            "FC_REGION": region,
            "FC_ACCOUNT_ID": account_id,
            "FC_INSTANCE_ID": instance_id,
            "FC_SERVER_PORT": str(port),
            "FC_CUSTOM_LISTEN_PORT": str(port),
            "PORT": str(port),
        }
    )
    if injects_credentials(spec):
        env.update(
            {
                "ALIBABA_CLOUD_ACCESS_KEY_ID": f"STS.emulated{secrets.token_hex(8)}",
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET": secrets.token_urlsafe(24),
                "ALIBABA_CLOUD_SECURITY_TOKEN": f"emulated-sts-token-{secrets.token_urlsafe(32)}",
            }
        )
    return env


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


def tail(path: str, lines: int = LOG_TAIL_LINES, max_bytes: int = 64 * 1024) -> str:
    """The last ``lines`` lines of a (log) file, decoded leniently; "" when unreadable."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace").rstrip()
    return "\n".join(text.splitlines()[-lines:])


def read_server_exit(directory: str) -> dict[str, Any] | None:
    """The last stdio server exit :mod:`~fc_emulator.serverwatch` recorded in ``directory``."""
    last = tail(os.path.join(directory, "server-exit"), 1)
    try:
        found = json.loads(last) if last else None
    except ValueError:
        return None
    return found if isinstance(found, dict) and isinstance(found.get("code"), int) else None


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


# instances ---------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Instance:
    """One running function process."""

    function_name: str
    revision: int
    instance_id: str
    argv: list[str]
    #: The init in front of ``argv`` (``["tini", "--"]``), and whether the emulator ran ``argv`` directly
    #: because that init is not installed here.
    init: list[str]
    init_stand_in: bool
    port: int
    container_port: int
    port_mapped: bool
    process: subprocess.Popen[bytes]
    directory: str
    log_path: str
    started_at: float
    start_timeout_s: float
    #: Whether the stdio server after ``--`` runs under :func:`watch_server` (its exit code and stderr known).
    watched: bool = False
    #: The threads copying stdout and stderr to the log store and ``output.log``.
    pumps: list[threading.Thread] = field(default_factory=list, repr=False)
    ready_at: float | None = None
    cold_start_ms: float | None = None
    #: The liveness check once ready (``healthCheckConfig`` with FC's defaults filled in), if it has a URL.
    health: dict[str, Any] | None = None
    health_failures: int = 0
    health_checks: int = 0
    next_health_at: float = 0.0
    last_used: float = field(default_factory=time.monotonic)
    active: int = 0
    stopping: bool = False
    _connections: set[socket.socket] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def drain(self, timeout: float = 1.0) -> None:
        """Wait (bounded) until the output pumps have copied what an exited process wrote."""
        deadline = time.monotonic() + timeout
        for thread in self.pumps:
            thread.join(max(0.0, deadline - time.monotonic()))

    def output_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The instance's last output for an error message. Behind a bridge it ends with the stdio server's
        exit code and its own last stderr lines, which a bridge's traceback would push out of a plain tail."""
        if not self.alive:
            self.drain()
        if not self.watched:
            return tail(self.log_path, lines)
        output = tail(self.log_path, min(lines, BRIDGE_TAIL_LINES))
        ended = self.server_exit()
        server = tail(os.path.join(self.directory, "server.log"), SERVER_TAIL_LINES)
        if ended is None and not server:
            return output
        parts = [output] if output else []
        if ended is not None:
            parts.append(f"the MCP server ({ended.get('command')}) {describe_exit(int(ended['code']))}")
        if server:
            parts.append(f"the MCP server's last stderr lines:\n{server}")
        else:
            parts.append("the MCP server wrote nothing to stderr")
        return "\n".join(parts)

    def server_exit(self) -> dict[str, Any] | None:
        """How the stdio server behind the bridge last ended (``{"pid", "code", "command"}``), if it did."""
        return read_server_exit(self.directory) if self.watched else None

    def track(self, sock: socket.socket) -> None:
        """Register a proxied upstream connection, cut by :meth:`cut_connections`."""
        with self._lock:
            self._connections.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.discard(sock)

    def cut_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def to_dict(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "functionName": self.function_name,
            "instanceId": self.instance_id,
            "revision": self.revision,
            "pid": self.pid,
            "port": self.port,
            "containerPort": self.container_port,
            "portMapped": self.port_mapped,
            "url": f"http://127.0.0.1:{self.port}",
            "command": list(self.argv),
            "init": list(self.init),
            "initStandIn": self.init_stand_in,
            "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at)),
            "coldStartMs": self.cold_start_ms,
            "idleSeconds": round(now - self.last_used, 3) if not self.active else 0.0,
            "activeRequests": self.active,
            "alive": self.alive,
            "healthChecks": self.health_checks,
            "healthFailures": self.health_failures,
            "serverExitCode": (self.server_exit() or {}).get("code"),
            "logFile": self.log_path,
        }


class InstanceManager:
    """Starts, tracks and stops function instances (see the module docstring). Thread-safe."""

    def __init__(
        self,
        *,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        stop_grace_s: float = DEFAULT_STOP_GRACE_S,
        runtime_dir: str | os.PathLike[str] | None = None,
        account_id: str = "1234567890123456",
        region: str = "cn-hangzhou",
        logs: LogStore | None = None,
    ) -> None:
        self.logs = logs if logs is not None else LogStore()
        self.start_timeout_s = float(start_timeout_s)
        self.idle_timeout_s = float(idle_timeout_s)
        self.stop_grace_s = float(stop_grace_s)
        self.account_id = account_id
        self.region = region
        self._runtime_dir = os.fspath(runtime_dir) if runtime_dir is not None else None
        self._temp_dir: str | None = None
        self._lock = threading.Lock()
        self._instances: dict[str, Instance] = {}
        self._start_locks: dict[str, threading.Lock] = {}
        #: Bumped when a function's instance is stopped (``_epoch``: when all are): a start that raced with
        #: the stop is discarded.
        self._generation: dict[str, int] = {}
        self._epoch = 0
        self._stoppers: set[threading.Thread] = set()
        self._reaper: threading.Thread | None = None
        self._wake = threading.Event()
        self._closing = False

    # configuration -------------------------------------------------------------------------------------
    def set_runtime_dir(self, path: str | os.PathLike[str] | None) -> None:
        self._runtime_dir = os.fspath(path) if path is not None else None

    def configure(self, *, start_timeout_s: float | None = None, idle_timeout_s: float | None = None) -> None:
        if start_timeout_s is not None:
            self.start_timeout_s = float(start_timeout_s)
        if idle_timeout_s is not None:
            self.idle_timeout_s = float(idle_timeout_s)
            self._wake.set()  # the reaper re-reads its period

    def runtime_dir(self) -> str:
        if self._runtime_dir is not None:
            os.makedirs(self._runtime_dir, exist_ok=True)
            return self._runtime_dir
        with self._lock:
            if self._temp_dir is None or not os.path.isdir(self._temp_dir):
                self._temp_dir = tempfile.mkdtemp(prefix="fc-emulator-instances-")
            return self._temp_dir

    # acquire / release -----------------------------------------------------------------------------------
    def _start_lock(self, function_name: str) -> threading.Lock:
        with self._lock:
            return self._start_locks.setdefault(function_name, threading.Lock())

    def acquire(self, function: Any) -> Instance:
        """A ready instance of ``function`` (a settled :class:`~fc_emulator.models.Function`), started
        if needed; counts one request in flight until :meth:`release`. Raises :class:`FunctionNotStarted`."""
        # One instance per function and version: a published version keeps its own instance while LATEST
        # (key = the name) is updated.
        name = getattr(function, "instance_key", None) or function.name
        with self._start_lock(name):
            with self._lock:
                if self._closing:
                    raise FunctionNotReady("the emulator is stopping")
                instance = self._instances.get(name)
                generation = (self._epoch, self._generation.get(name, 0))
            if instance is not None and (instance.revision != function.revision or not instance.alive):
                why = (
                    "revision changed"
                    if instance.revision != function.revision
                    else f"process {describe_exit(instance.process.returncode)}"
                )
                logger.info("instance %s of %s is stale (%s); replacing it", instance.instance_id, name, why)
                self._retire(name, instance, wait=False)
                instance = None
            if instance is None:
                instance = self._start(function)
                with self._lock:
                    if self._closing or (self._epoch, self._generation.get(name, 0)) != generation:
                        raced = True
                    else:
                        raced = False
                        self._instances[name] = instance
                if raced:
                    self._terminate(instance)
                    raise FunctionNotReady(
                        f"function '{name}' was changed or deleted while its instance was starting; retry"
                    )
                self._ensure_reaper()
            with instance._lock:
                instance.active += 1
                instance.last_used = time.monotonic()
            return instance

    def release(self, instance: Instance) -> None:
        with instance._lock:
            instance.active = max(0, instance.active - 1)
            instance.last_used = time.monotonic()

    # starting --------------------------------------------------------------------------------------------
    def _start(self, function: Any) -> Instance:
        name = function.name
        spec = function.spec
        container = spec.get("customContainerConfig") or {}
        init_argv, argv = split_init(container_argv(container, getattr(function, "image_config", None)))
        if not argv:
            raise FunctionNotStarted(
                f"function '{name}' has no customContainerConfig.command or entrypoint (or only an init "
                f"{' '.join(init_argv)!r} with nothing to run): the local emulator does not pull images, so "
                "it can only run an explicit command or an ENTRYPOINT registered with PUT /_emulator/images"
            )
        container_port = int(container.get("port") or DEFAULT_CONTAINER_PORT)
        host_port = free_port()
        mapped_argv, mapped = map_command(argv, container_port, host_port)
        port = host_port if mapped else container_port
        if not mapped:
            self._check_unmapped_port(name, port)
        instance_id = f"c-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:8]}"
        env = build_environment(
            spec, port=port, instance_id=instance_id, account_id=self.account_id, region=self.region
        )
        executable = shutil.which(mapped_argv[0], path=env["PATH"])
        if executable is None:
            raise FunctionNotStarted(
                f"function '{name}': command '{argv[0]}' was not found on PATH (the local emulator runs the "
                "container command on this machine and does not pull the image; install it here)"
            )
        init_executable = shutil.which(init_argv[0], path=env["PATH"]) if init_argv else None
        run_argv = mapped_argv
        if init_executable is not None:
            run_argv, executable = init_argv + mapped_argv, init_executable
        runtime_dir = self.runtime_dir()
        _prune(runtime_dir, KEEP_INSTANCE_DIRS - 1, keep=self._live_directories())
        directory = os.path.join(runtime_dir, f"{name}-{instance_id}")
        os.makedirs(directory, exist_ok=True)
        log_path = os.path.join(directory, "output.log")
        watched_argv, watched = watch_server(mapped_argv, directory)
        run_argv = (init_argv if init_executable is not None else []) + watched_argv
        started_wall, started = time.time(), time.monotonic()
        try:
            process = subprocess.Popen(  # the function's own command, by design
                run_argv,
                executable=executable,
                env=env,
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise FunctionNotStarted(f"function '{name}': could not run {argv[0]!r}: {exc}") from None
        pumps = start_pumps(
            (("stdout", process.stdout), ("stderr", process.stderr)),
            log_path,
            self._log_sink(function, instance_id),
            name=f"fc-emulator-output-{process.pid}",
        )
        limit = self._start_limit(container.get("healthCheckConfig"))
        instance = Instance(
            function_name=name,
            revision=function.revision,
            instance_id=instance_id,
            argv=mapped_argv,
            init=init_argv,
            init_stand_in=bool(init_argv) and init_executable is None,
            port=port,
            container_port=container_port,
            port_mapped=mapped,
            process=process,
            directory=directory,
            log_path=log_path,
            started_at=started_wall,
            start_timeout_s=limit,
            watched=watched,
            pumps=pumps,
        )
        logger.info(
            "starting %s (revision %s) as pid %s on 127.0.0.1:%s: %s",
            name,
            function.revision,
            process.pid,
            port,
            " ".join(init_argv + mapped_argv),
        )
        try:
            self._wait_ready(instance, container.get("healthCheckConfig"), started, limit)
        except BaseException:
            self._terminate(instance)
            raise
        instance.ready_at = time.monotonic()
        instance.cold_start_ms = round((instance.ready_at - started) * 1000, 1)
        instance.last_used = instance.ready_at
        health = container.get("healthCheckConfig")
        if isinstance(health, Mapping) and health.get("httpGetUrl"):
            instance.health = {**HEALTH_CHECK_DEFAULTS, **{k: v for k, v in health.items() if v is not None}}
            instance.next_health_at = instance.ready_at + float(instance.health["periodSeconds"])
        logger.info("%s is ready on 127.0.0.1:%s after %.0f ms", name, port, instance.cold_start_ms)
        return instance

    def _log_sink(self, function: Any, instance_id: str) -> Any:
        """Where an instance's output lines go: the log store, under the function's name and qualifier and
        the ``logConfig`` destination it had when the instance started."""
        log_config = function.spec.get("logConfig") or {}
        project, logstore = log_config.get("project"), log_config.get("logstore")
        destination = (str(project), str(logstore)) if project and logstore else None
        qualifier = str(getattr(function, "version_id", None) or "LATEST")
        logs, name = self.logs, function.name

        def sink(stream: str, line: str) -> None:
            logs.append(
                name,
                line,
                instance_id=instance_id,
                stream=stream,
                qualifier=qualifier,
                destination=destination,
            )

        return sink

    def _check_unmapped_port(self, name: str, port: int) -> None:
        with self._lock:
            owners = [
                i.function_name
                for i in self._instances.values()
                if i.port == port and i.function_name != name and i.alive
            ]
        if owners or port_accepts(port):
            who = f"the instance of function '{owners[0]}'" if owners else "another process"
            raise FunctionNotStarted(
                f"function '{name}': its command has no --port/-p flag equal to the container port {port}, "
                f"so the local emulator runs it unchanged and expects it on 127.0.0.1:{port}, but that port "
                f"is already taken by {who}. Add '--port {port}' to the command (the emulator then maps it "
                "to a free port) or change customContainerConfig.port"
            )

    def _start_limit(self, health: Mapping[str, Any] | None) -> float:
        limit = self.start_timeout_s
        if isinstance(health, Mapping) and health.get("httpGetUrl"):
            h = {**HEALTH_CHECK_DEFAULTS, **{k: v for k, v in health.items() if v is not None}}
            derived = (
                float(h["initialDelaySeconds"])
                + float(h["periodSeconds"]) * float(h["failureThreshold"])
                + float(h["timeoutSeconds"])
            )
            limit = min(limit, derived)
        return max(0.0, limit)

    def _wait_ready(
        self, instance: Instance, health: Mapping[str, Any] | None, started: float, limit: float
    ) -> None:
        port, process = instance.port, instance.process
        url = health.get("httpGetUrl") if isinstance(health, Mapping) else None
        h = {**HEALTH_CHECK_DEFAULTS, **{k: v for k, v in (health or {}).items() if v is not None}}
        deadline = started + limit
        next_check = started + float(h["initialDelaySeconds"])
        listening = False
        last_status: int | None = None
        step = 0.005
        while True:
            returncode = process.poll()
            if returncode is not None:
                what = f"{describe_exit(returncode)} before listening on port {instance.container_port}"
                ended = instance.server_exit()
                if ended is not None:
                    what += f" (its MCP server {describe_exit(int(ended['code']))})"
                raise FunctionNotStarted(self._failure(instance, what))
            now = time.monotonic()
            if not listening:
                listening = port_accepts(port, timeout=max(0.01, min(0.2, deadline - now)))
            if listening:
                if not url:
                    return
                now = time.monotonic()
                if now >= next_check:
                    timeout = max(0.05, min(float(h["timeoutSeconds"]), deadline - now))
                    last_status = http_status(port, str(url), timeout)
                    if last_status is not None and 200 <= last_status < 300:
                        return
                    next_check = time.monotonic() + float(h["periodSeconds"])
            now = time.monotonic()
            if now >= deadline:
                if listening:
                    got = f"HTTP {last_status}" if last_status is not None else "no answer"
                    what = f"did not pass its health check GET {url} within {limit:g} s (last result: {got})"
                else:
                    what = f"did not listen on port {instance.container_port} within {limit:g} s"
                    if instance.port_mapped:
                        what += f" (mapped to 127.0.0.1:{port})"
                    else:
                        what += (
                            " (its command has no --port/-p flag equal to the container port, so it was "
                            f"run unchanged and expected on 127.0.0.1:{port})"
                        )
                raise FunctionNotStarted(self._failure(instance, what))
            wait = min(step, max(0.0, deadline - now))
            if url and listening:
                wait = min(max(wait, next_check - now), max(0.0, deadline - now))
            try:
                process.wait(timeout=wait)  # returns early when the process exits
            except subprocess.TimeoutExpired:
                pass
            step = min(step * 2, 0.05)

    @staticmethod
    def _failure(instance: Instance, what: str) -> str:
        output = instance.output_tail()
        command = " ".join(instance.init + instance.argv)
        message = f"function '{instance.function_name}' instance {what}; command: {command}"
        if output:
            message += f"; last output:\n{output}"
        else:
            message += "; it printed nothing"
        return message

    # stopping --------------------------------------------------------------------------------------------
    def _retire(self, name: str, instance: Instance, *, wait: bool) -> None:
        """Detach ``instance`` (so the next request starts a new one) and stop it."""
        with self._lock:
            if self._instances.get(name) is instance:
                del self._instances[name]
        if wait:
            self._terminate(instance)
            return
        thread = threading.Thread(
            target=self._terminate_tracked,
            args=(instance,),
            daemon=True,
            name=f"fc-emulator-stop-{instance.pid}",
        )
        with self._lock:
            self._stoppers.add(thread)
        thread.start()

    def _terminate_tracked(self, instance: Instance) -> None:
        try:
            self._terminate(instance)
        finally:
            with self._lock:
                self._stoppers.discard(threading.current_thread())

    def _terminate(self, instance: Instance) -> None:
        """SIGTERM the process group, wait up to the grace period, SIGKILL the group, reap the leader."""
        instance.stopping = True
        instance.cut_connections()
        pid = instance.process.pid
        if instance.process.returncode is None:
            # Children may have left the group (mcp's stdio client starts the server in a session of its own):
            # remember every descendant now, while the tree is intact.
            family = descendants(pid)
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_grace_s
            while time.monotonic() < deadline and not _leader_exited(pid):
                time.sleep(0.01)
            # The leader is exited but not reaped (a zombie keeps its pid), so the group id is still ours:
            # kill whatever is left in the group (children that ignored SIGTERM or were orphaned) ...
            _signal_group(pid, signal.SIGKILL)
            # ... and every descendant that outlived its parent's shutdown, in whatever group it is.
            family.update(descendants(pid))
            killed = []
            for child, started in family.items():
                if _start_time(child) == started:
                    try:
                        os.kill(child, signal.SIGKILL)
                        killed.append((child, started))
                    except (ProcessLookupError, PermissionError):
                        pass
            # not our children, so no waitpid: wait (bounded) until they are gone or zombies
            deadline = time.monotonic() + 2.0
            while killed and time.monotonic() < deadline:
                killed = [(c, t) for c, t in killed if _start_time(c) == t]
                if killed:
                    time.sleep(0.005)
        else:
            # The leader died by itself (and was reaped): what is left of its group (the pgid stays reserved
            # while members exist) goes too.
            _signal_group(pid, signal.SIGKILL)
        try:
            instance.process.wait(timeout=self.stop_grace_s + 5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            logger.warning("instance pid %s did not die after SIGKILL", pid)
        instance.drain(2.0)  # the last lines reach the log store; the pump threads end with the pipes
        logger.info("stopped %s instance %s (pid %s)", instance.function_name, instance.instance_id, pid)

    def stop_function(self, function_name: str, *, wait: bool = False, versions: bool = False) -> None:
        """Stop the function's LATEST instance (after UpdateFunction, DeleteTrigger); with ``versions``
        also those of its published versions (after DeleteFunction)."""
        with self._lock:
            keys = [function_name]
            if versions:
                keys += [k for k in self._instances if k.startswith(f"{function_name}@")]
            found = []
            for key in keys:
                self._generation[key] = self._generation.get(key, 0) + 1
                instance = self._instances.get(key)
                if instance is not None:
                    found.append((key, instance))
        for key, instance in found:
            self._retire(key, instance, wait=wait)

    def stop_all(self) -> None:
        """Stop every instance and wait until all are gone (including stops already under way)."""
        with self._lock:
            instances = list(self._instances.items())
            self._epoch += 1
        for name, instance in instances:
            self._retire(name, instance, wait=True)
        self._join_stoppers()

    def _join_stoppers(self) -> None:
        while True:
            with self._lock:
                stoppers = list(self._stoppers)
            if not stoppers:
                return
            for thread in stoppers:
                thread.join()

    def close(self) -> None:
        """Stop everything, the reaper included, and wait; removes the temporary runtime dir. The manager can
        be used again afterwards (a restarted emulator)."""
        with self._lock:
            self._closing = True
            reaper, self._reaper = self._reaper, None
        self._wake.set()
        if reaper is not None:
            reaper.join(timeout=10)
        try:
            self.stop_all()
        finally:
            with self._lock:
                self._closing = False
                temp, self._temp_dir = self._temp_dir, None
            self._wake.clear()
            if temp is not None:
                shutil.rmtree(temp, ignore_errors=True)

    # idle reaper -----------------------------------------------------------------------------------------
    def _ensure_reaper(self) -> None:
        with self._lock:
            if self._reaper is not None or self._closing:
                return
            self._reaper = threading.Thread(target=self._reap_loop, name="fc-emulator-reaper", daemon=True)
            self._reaper.start()

    def _reap_loop(self) -> None:
        while True:
            period = min(5.0, max(0.05, self.idle_timeout_s / 4), self._health_period())
            self._wake.wait(period)
            self._wake.clear()
            with self._lock:
                if self._closing or self._reaper is not threading.current_thread():
                    return
            try:
                self.reap()
            except Exception:  # noqa: BLE001 - keep reaping
                logger.exception("instance reaper failed")

    def _health_period(self) -> float:
        with self._lock:
            periods = [float(i.health["periodSeconds"]) for i in self._instances.values() if i.health]
        return max(0.05, min(periods, default=5.0))

    def _unhealthy(self, instance: Instance, now: float) -> str | None:
        """Run the instance's liveness check when it is due; why it is to be replaced, or None."""
        health = instance.health
        if not health or instance.stopping or now < instance.next_health_at:
            return None
        status = http_status(instance.port, str(health["httpGetUrl"]), float(health["timeoutSeconds"]))
        instance.next_health_at = time.monotonic() + float(health["periodSeconds"])
        instance.health_checks += 1
        if status is not None and 200 <= status < 300:
            instance.health_failures = 0
            return None
        instance.health_failures += 1
        if instance.health_failures < int(health["failureThreshold"]):
            return None
        got = f"HTTP {status}" if status is not None else "no answer"
        return (
            f"failed its health check GET {health['httpGetUrl']} {instance.health_failures} times in a row "
            f"(last result: {got})"
        )

    def reap(self) -> list[str]:
        """Stop idle and unhealthy instances and drop dead ones; returns the instance ids removed."""
        now = time.monotonic()
        with self._lock:
            candidates = list(self._instances.items())
        removed = []
        for name, instance in candidates:
            why = self._unhealthy(instance, now) if instance.alive else None
            if why is not None:
                logger.warning("instance %s of %s %s; replacing it", instance.instance_id, name, why)
                self._retire(name, instance, wait=False)
                removed.append(instance.instance_id)
                continue
            if not instance.alive:
                logger.info(
                    "instance %s of %s %s",
                    instance.instance_id,
                    name,
                    describe_exit(instance.process.returncode),
                )
                self._retire(name, instance, wait=True)
                removed.append(instance.instance_id)
                continue
            with instance._lock:
                idle = instance.active == 0 and now - instance.last_used >= self.idle_timeout_s
            if idle:
                logger.info("stopping idle instance %s of %s", instance.instance_id, name)
                self._retire(name, instance, wait=False)
                removed.append(instance.instance_id)
        return removed

    # introspection -------------------------------------------------------------------------------------
    def _live_directories(self) -> set[str]:
        with self._lock:
            return {i.directory for i in self._instances.values()}

    def get(self, function_name: str) -> Instance | None:
        """LATEST's instance, else the newest one of any of its versions."""
        with self._lock:
            instance = self._instances.get(function_name)
            if instance is None:
                mine = [i for i in self._instances.values() if i.function_name == function_name]
                instance = max(mine, key=lambda i: i.started_at, default=None)
            return instance

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            instances = sorted(self._instances.values(), key=lambda i: i.function_name)
        return [i.to_dict() for i in instances]


def _prune(runtime_dir: str, limit: int, keep: set[str]) -> None:
    """Remove the oldest instance directories beyond ``limit`` (never one in ``keep``)."""
    try:
        entries = [e for e in os.scandir(runtime_dir) if e.is_dir() and e.path not in keep]
    except OSError:
        return
    if len(entries) <= limit:
        return
    entries.sort(key=lambda e: e.stat().st_mtime)
    for entry in entries[: len(entries) - limit]:
        shutil.rmtree(entry.path, ignore_errors=True)


def _start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot) from ``/proc``; None when gone or unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def descendants(pid: int) -> dict[int, int]:
    """``{pid: start time}`` of every live descendant of ``pid`` (Linux ``/proc``; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == b"Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        starts[int(entry)] = int(fields[19])
    found: dict[int, int] = {}
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        if child in found:
            continue
        found[child] = starts[child]
        todo.extend(children.get(child, []))
    return found


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _leader_exited(pid: int) -> bool:
    """True once the process has exited (without reaping it, so its pid/pgid cannot be reused yet)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


__all__ = [
    "DEFAULT_IDLE_TIMEOUT_S",
    "DEFAULT_START_TIMEOUT_S",
    "FunctionNotStarted",
    "Instance",
    "InstanceManager",
    "build_environment",
    "map_command",
]
