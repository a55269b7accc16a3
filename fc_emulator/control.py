"""The emulator's control API under ``/_emulator/`` (moto's ``/moto-api/``), NOT signature-checked.

It listens only on the emulator's own host and port. All bodies are JSON.

- ``POST /_emulator/reset``: wipe functions, triggers (closing their listeners), registered images, fault
  rules, counters and the runtime config; answers ``{"reset": true}``.
- ``GET /_emulator/faults``: the fault rules ``{"CreateFunction": {...rule...}, "*": {...}}`` (``count``
  shows what is left). ``PUT`` replaces all rules with the body (same shape) and answers the new rules;
  ``DELETE`` drops them all and answers ``{}``.
- ``GET /_emulator/state``: ``{"functions": {name: Function}, "triggers": {function: {name: Trigger}}}``
  in FC's wire shape.
- ``GET /_emulator/stats``: ``{"calls": {op: n}, "faults": {op: {"latency"|"throttle"|"error"|"lose_response":
  n}}, "total_calls": n, "total_faults": n}``; ``DELETE`` zeroes the counters.
- ``GET /_emulator/config``: ``{"pending_seconds": 1.0, "fail_images": [], "runtime": true,
  "start_timeout_s": 60.0, "idle_timeout_s": 600.0}``; ``PUT`` changes some of those keys (e.g.
  ``{"pending_seconds": 0.2}`` or ``{"start_timeout_s": 3}``) and answers all of them. ``runtime: false``
  stops every instance and makes trigger URLs answer 503 ``FunctionNotReady``.
- ``GET /_emulator/instances``: ``{"instances": [{"functionName", "instanceId", "revision", "pid", "port",
  "containerPort", "url", "command", "startedAt", "coldStartMs", "activeRequests", "logFile", ...}]}``, the
  running function processes; ``DELETE`` stops them all (the next request cold-starts again).
- ``GET /_emulator/images``: ``{"images": {image: {"entrypoint": [...], "cmd": [...]}}}``, the ENTRYPOINT and
  CMD the emulator assumes for an image (it pulls none; an unregistered image has neither). ``PUT`` replaces
  them with the body's ``{image: {...}}`` and answers the new set; ``DELETE`` drops them. The runtime runs
  ``customContainerConfig.entrypoint + command`` when the function sets ``entrypoint``, else the image's
  ENTRYPOINT followed by ``command`` (or the image's CMD), as a container runtime does.
- ``POST /_emulator/functions/{name}/deactivate``: put the function in FC's ``Inactive`` state (not
  invocable); an UpdateFunction or a request to its trigger brings it back through ``Pending``. Answers
  the function.
- ``GET /_emulator/healthz``: ``{"status": "ok", "endpoint", "url", "accessKeyId", "region", "accountId"}``.

Fault rule keys are documented in :mod:`fc_emulator.faults`. Errors use the FC error body.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from .dataplane import DataPlane
from .exceptions import InvalidArgument, PathNotSupported
from .faults import FaultInjector
from .models import FCBackend

CONTROL_PREFIX = "/_emulator"
BACKEND_CONFIG_KEYS = frozenset({"pending_seconds", "fail_images"})
RUNTIME_CONFIG_KEYS = frozenset({"runtime", "start_timeout_s", "idle_timeout_s"})
CONFIG_KEYS = BACKEND_CONFIG_KEYS | RUNTIME_CONFIG_KEYS


class Emulator(Protocol):
    """What the control API drives: :class:`~fc_emulator.server.EmulatorServer` (which serves this API, so
    the server module is never imported here)."""

    backend: FCBackend
    faults: FaultInjector

    @property
    def dataplane(self) -> DataPlane: ...

    def info(self) -> dict[str, Any]: ...

    def reset(self) -> None: ...


def is_control_path(raw_path: str) -> bool:
    return raw_path == CONTROL_PREFIX or raw_path.startswith(CONTROL_PREFIX + "/")


def _json(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"the request body is not valid JSON: {exc}") from None


def handle(emulator: Emulator, method: str, raw_path: str, body: bytes) -> tuple[int, Any]:
    """Answer one control request: ``(status, JSON-able payload)``; raises :class:`FCError`."""
    path = raw_path.rstrip("/")
    method = method.upper()
    if path == f"{CONTROL_PREFIX}/healthz" and method in ("GET", "HEAD"):
        return 200, {"status": "ok", **emulator.info()}
    if path == f"{CONTROL_PREFIX}/reset" and method == "POST":
        emulator.reset()
        return 200, {"reset": True}
    if path == f"{CONTROL_PREFIX}/state" and method == "GET":
        return 200, emulator.backend.snapshot()
    if path == f"{CONTROL_PREFIX}/stats":
        if method == "GET":
            return 200, emulator.faults.stats()
        if method == "DELETE":
            emulator.faults.reset_stats()
            return 200, emulator.faults.stats()
    if path == f"{CONTROL_PREFIX}/faults":
        if method == "GET":
            return 200, emulator.faults.get_config()
        if method == "PUT":
            try:
                return 200, emulator.faults.configure(_json(body))
            except ValueError as exc:
                raise InvalidArgument(str(exc)) from None
        if method == "DELETE":
            emulator.faults.clear()
            return 200, {}
    if path == f"{CONTROL_PREFIX}/config":
        if method == "GET":
            return 200, emulator.backend.get_config()
        if method == "PUT":
            data = _json(body)
            if not isinstance(data, dict):
                raise InvalidArgument("the config must be a JSON object")
            unknown = sorted(set(data) - CONFIG_KEYS)
            if unknown:
                raise InvalidArgument(
                    f"unknown config key(s) {unknown}; valid keys are {sorted(CONFIG_KEYS)}"
                )
            return 200, emulator.backend.configure(**data)
    if path == f"{CONTROL_PREFIX}/images":
        if method == "GET":
            return 200, {"images": emulator.backend.get_images()}
        if method == "PUT":
            return 200, {"images": emulator.backend.set_images(_json(body))}
        if method == "DELETE":
            return 200, {"images": emulator.backend.set_images({})}
    functions = f"{CONTROL_PREFIX}/functions/"
    if path.startswith(functions) and path.endswith("/deactivate") and method == "POST":
        name = path[len(functions) : -len("/deactivate")]
        return 200, emulator.backend.deactivate(name)
    if path == f"{CONTROL_PREFIX}/instances":
        if method == "GET":
            return 200, {"instances": emulator.dataplane.list_instances()}
        if method == "DELETE":
            emulator.dataplane.instances.stop_all()
            return 200, {"instances": emulator.dataplane.list_instances()}
    raise PathNotSupported(method, raw_path)


__all__ = ["CONTROL_PREFIX", "Emulator", "handle", "is_control_path"]
