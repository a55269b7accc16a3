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

Where each part lives: what runs is command.py, its environment environment.py, starting one instance
(plan, spawn, readiness) launch.py, the instance and its output tail instance.py, the port and health probes
probes.py, stopping a process tree proctree.py, the output's lines logstore.py. This module keeps the
instance table and its lock: acquiring and releasing instances, retiring stale, idle and unhealthy ones
(the reaper thread) and stopping them all.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Any

from .command import SERVER_WATCH, container_argv, map_command, split_init, watch_server
from .environment import PASSED_HOST_VARS, PASSED_PROXY_VARS, build_environment
from .exceptions import FunctionNotReady
from .instance import Instance, describe_exit, read_server_exit
from .launch import (
    KEEP_INSTANCE_DIRS,
    FunctionNotStarted,
    RunnableFunction,
    mark_ready,
    plan_launch,
    prune_instance_dirs,
    spawn,
    start_limit,
    wait_ready,
)
from .logstore import LogStore
from .probes import http_status, port_accepts
from .proctree import kill_tree

logger = logging.getLogger("fc_emulator")

# How long a cold start may take to listen (a health check's own budget can shorten it). mcp-proxy plus a
# Python MCP server take 1-2 s on a quiet laptop and 15-30 s on a loaded host; the variable stretches it.
DEFAULT_START_TIMEOUT_S = float(os.environ.get("MCPFC_EMULATOR_START_TIMEOUT_S") or 60.0)
# FC scales to zero: an instance with no request in flight this long is stopped (FC reclaims idle instances
# after a few minutes; 14 idle instances held 1.6 GB on a laptop). The variable sets it for `mcp-fc dev`.
DEFAULT_IDLE_TIMEOUT_S = float(os.environ.get("MCPFC_EMULATOR_IDLE_S") or 600.0)
DEFAULT_STOP_GRACE_S = 3.0


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
        #: Instances still starting (spawned, not ready yet), by key: a stop (DeleteFunction, a deleted
        #: trigger, emulator stop) ends them at once instead of leaving them to their start deadline.
        self._starting: dict[str, Instance] = {}
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
        """A ready instance of ``function`` (a settled :class:`~fc_emulator.resources.Function`), started
        if needed; counts one request in flight until :meth:`release`. Raises :class:`FunctionNotStarted`."""
        # One instance per function and version: a published version keeps its own instance while LATEST
        # (key = the name) is updated.
        name = getattr(function, "instance_key", None) or function.name
        with self._lock:
            arrived = (self._epoch, self._generation.get(name, 0))
        with self._start_lock(name):
            with self._lock:
                if self._closing:
                    raise FunctionNotReady("the emulator is stopping")
                instance = self._instances.get(name)
                generation = (self._epoch, self._generation.get(name, 0))
            if instance is None and generation != arrived and (generation[0] != arrived[0] or "@" in name):
                # A version's instance stopped (the function deleted, its trigger gone) while this request
                # waited for another one's start: a start now would run what nothing can reach until its
                # deadline (issue 26 #11). LATEST's stop is also an UpdateFunction's: that request goes on.
                raise FunctionNotReady(f"function '{name}' was changed or deleted while starting; retry")
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
                instance = self._start(function, name)
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
    def _start(self, function: RunnableFunction, key: str) -> Instance:
        plan = plan_launch(
            function, account_id=self.account_id, region=self.region, check_port=self._check_unmapped_port
        )
        runtime_dir = self.runtime_dir()
        prune_instance_dirs(runtime_dir, KEEP_INSTANCE_DIRS - 1, keep=self._live_directories())
        limit = start_limit(self.start_timeout_s, plan.health)
        instance, started = spawn(function, plan, runtime_dir, self.logs, limit)
        with self._lock:
            self._starting[key] = instance
        try:
            wait_ready(instance, plan.health, started, limit)
        except BaseException:
            self._terminate(instance)
            if instance.stopped_while_starting:
                raise FunctionNotReady(
                    f"function '{key}' was changed or deleted while its instance was starting; retry"
                ) from None
            raise
        finally:
            with self._lock:
                self._starting.pop(key, None)
        mark_ready(instance, plan.health, started)
        logger.info("%s is ready on 127.0.0.1:%s after %.0f ms", plan.name, plan.port, instance.cold_start_ms)
        return instance

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
        """Cut its connections, stop its process tree (:func:`~fc_emulator.proctree.kill_tree`), reap it.
        Once per instance: a second caller (a start whose instance a stop ended) waits for the first."""
        with instance._lock:
            already, instance.stopping = instance.stopping, True
        if already:
            try:
                instance.process.wait(timeout=self.stop_grace_s + 5)
            except subprocess.TimeoutExpired:  # pragma: no cover - the first caller sends SIGKILL
                pass
            return
        instance.cut_connections()
        pid = instance.process.pid
        kill_tree(instance.process, self.stop_grace_s)
        try:
            instance.process.wait(timeout=self.stop_grace_s + 5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            logger.warning("instance pid %s did not die after SIGKILL", pid)
        instance.drain(2.0)  # the last lines reach the log store; the pump threads end with the pipes
        logger.info("stopped %s instance %s (pid %s)", instance.function_name, instance.instance_id, pid)

    def stop_function(self, function_name: str, *, wait: bool = False, versions: bool = False) -> None:
        """Stop the function's LATEST instance (after UpdateFunction, DeleteTrigger); with ``versions``
        also those of its published versions (after DeleteFunction). Instances still starting too."""
        with self._lock:
            keys = [function_name]
            if versions:
                prefix = f"{function_name}@"
                keys += sorted({k for k in [*self._instances, *self._starting] if k.startswith(prefix)})
        self.stop_keys(keys, wait=wait)

    def stop_keys(self, keys: list[str] | tuple[str, ...], *, wait: bool = False) -> None:
        """Stop the instances (ready or starting) of these keys: a function's name, or ``name@version``."""
        with self._lock:
            found = []
            for key in keys:
                self._generation[key] = self._generation.get(key, 0) + 1
                instance = self._instances.get(key)
                if instance is not None:
                    found.append((key, instance))
                if (starting := self._starting.get(key)) is not None:
                    starting.stopped_while_starting = True
                    found.append((key, starting))
        for key, instance in found:
            self._retire(key, instance, wait=wait)

    def stop_all(self) -> None:
        """Stop every instance and wait until all are gone (including stops already under way)."""
        with self._lock:
            instances = list(self._instances.items())
            for key, starting in self._starting.items():
                starting.stopped_while_starting = True
                instances.append((key, starting))
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


__all__ = [
    "DEFAULT_IDLE_TIMEOUT_S",
    "DEFAULT_START_TIMEOUT_S",
    "DEFAULT_STOP_GRACE_S",
    "PASSED_HOST_VARS",
    "PASSED_PROXY_VARS",
    "SERVER_WATCH",
    "FunctionNotStarted",
    "Instance",
    "InstanceManager",
    "build_environment",
    "container_argv",
    "describe_exit",
    "map_command",
    "read_server_exit",
    "split_init",
    "watch_server",
]
