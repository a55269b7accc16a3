"""Backend state of the FC emulator: functions, triggers, versions and aliases (moto's ``models.py``).

``FCBackend`` has one method per FC action. Every method takes already-parsed arguments (the JSON body as a
dict with FC's camelCase keys, path names decoded) and returns the response body as a dict in FC's wire shape
(or ``None`` for the Delete actions), or raises an :class:`~fc_emulator.exceptions.FCError`.

State transitions are computed lazily from timestamps (no background threads): a new function is ``Pending``
for ``pending_seconds`` and then ``Active`` (or ``Failed`` when its image matches one of ``fail_images``);
an updated function keeps its state but has ``lastUpdateStatus: InProgress`` for ``pending_seconds``, then
``Successful`` (or ``Failed``). FC's fourth state, ``Inactive`` (not invocable), is set through the control
API (:meth:`FCBackend.deactivate`); as on FC, an update or an invocation brings the function back to
``Pending`` and then ``Active``.

Strictness: where a public source says what FC does (shared/reference/fc3-fidelity-audit.md), the emulator
does the same; values no public source shows FC taking are refused with ``InvalidArgument`` rather than
accepted, so a test can never pass on a value real FC might refuse: ``sessionAffinity`` outside the SDK's
list (no ``MCP_STREAMABLE``), ``authType: bearer`` (documented, wire format unpublished), keys of a
``sessionAffinityConfig`` that its type's SDK model does not have, ``sessionConcurrencyPerInstance`` above
``instanceConcurrency``, and an environment over 4 KB counted as its serialized JSON.

All methods are thread-safe (one re-entrant lock) and never sleep; nothing slow runs under the lock except
binding a trigger's loopback listener.

Where the actions live: this module has the functions' actions and the backend's core (lock, lookups,
configuration, the data plane's ``resolve``); the resources are resources.py, the triggers' actions
triggers.py, versions and aliases versions.py, the state file statefile.py, the hook to the data plane
listeners.py. What input the backend accepts is validation.py.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from .codepackage import layer_version, take_code, validate_code_function
from .exceptions import (
    FunctionAlreadyExists,
    FunctionNotEmpty,
    FunctionNotFound,
    InvalidArgument,
    TriggerNotFound,
)
from .listeners import NullListeners, TriggerListeners
from .resources import Function, Trigger
from .statefile import FCStateFileMixin
from .triggers import FCTriggersMixin
from .validation import (
    CONTAINER_OUTPUT_KEYS,
    FUNCTION_OUTPUT_KEYS,
    apply_function_defaults,
    is_number,
    validate_function_fields,
    validate_function_spec,
)
from .versions import FCVersionsMixin
from .wire import paginate

#: The region the FC API request being served was for. The server sets it for the request's duration from
#: the endpoint host (``<account>.<region>.fc.aliyuncs.com``) or the ``x-acs-region-id`` header that
#: mcp-fc's gateway sends; unset (a bare backend, the data plane) means the backend's own region.
REQUEST_REGION: ContextVar[str | None] = ContextVar("fc_emulator_request_region", default=None)


class FCBackend(FCTriggersMixin, FCVersionsMixin, FCStateFileMixin):
    """In-memory FC 3.0 state for one account and region (moto's ``BaseBackend``)."""

    def __init__(
        self,
        region: str = "cn-hangzhou",
        account_id: str = "1234567890123456",
        pending_seconds: float = 1.0,
        *,
        fail_images: list[str] | None = None,
        listeners: TriggerListeners | None = None,
        state_file: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.listeners: TriggerListeners = listeners or NullListeners()
        self.state_file = os.fspath(state_file) if state_file is not None else None
        self.clock = clock
        self._initial_config = {
            "pending_seconds": float(pending_seconds),
            "fail_images": list(fail_images or []),
        }
        self._lock = threading.RLock()
        self._persist_lock = threading.Lock()
        self._seq = 0
        self._persisted_seq = 0
        self.functions: dict[str, Function] = {}
        self.triggers: dict[str, dict[str, Trigger]] = {}
        self._init_versions()
        self.pending_seconds = float(pending_seconds)
        self.fail_images: list[str] = list(fail_images or [])
        #: Image ENTRYPOINT/CMD registered through the control API (the emulator pulls no images).
        self.images: dict[str, dict[str, list[str]]] = {}

    # configuration -------------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """``pending_seconds``, ``fail_images`` and the data plane's runtime settings (``runtime``,
        ``start_timeout_s``, ``idle_timeout_s``) when the listeners have any."""
        runtime = getattr(self.listeners, "get_runtime_config", None)
        with self._lock:
            config: dict[str, Any] = {
                "pending_seconds": self.pending_seconds,
                "fail_images": list(self.fail_images),
            }
        if runtime is not None:
            config.update(runtime())
        return config

    def configure(
        self, pending_seconds: float | None = None, fail_images: list[str] | None = None, **runtime: Any
    ) -> dict[str, Any]:
        """Change some settings; ``runtime`` keys go to the data plane (validated before anything changes)."""
        if pending_seconds is not None:
            if not is_number(pending_seconds) or pending_seconds < 0:
                raise InvalidArgument("pending_seconds must be a number >= 0")
        if fail_images is not None:
            if not isinstance(fail_images, list) or not all(isinstance(s, str) and s for s in fail_images):
                raise InvalidArgument("fail_images must be a list of non-empty strings")
        if runtime:
            configure_runtime = getattr(self.listeners, "configure_runtime", None)
            if configure_runtime is None:
                raise InvalidArgument(f"unknown config key(s) {sorted(runtime)}")
            configure_runtime(**runtime)
        with self._lock:
            if pending_seconds is not None:
                self.pending_seconds = float(pending_seconds)
            if fail_images is not None:
                self.fail_images = list(fail_images)
        return self.get_config()

    def _fail_reason(self, spec: Mapping[str, Any]) -> str | None:
        container = spec.get("customContainerConfig")
        image = container.get("image") if isinstance(container, Mapping) else None
        for pattern in self.fail_images:
            if isinstance(image, str) and pattern in image:
                return (
                    f"failed to pull image '{image}': emulated failure (image matches fail_images "
                    f"pattern '{pattern}')"
                )
        return None

    # helpers ---------------------------------------------------------------------------------------------
    def _region(self) -> str:
        return REQUEST_REGION.get() or self.region

    def _function(self, name: str, *, any_region: bool = False) -> Function:
        """A function of the request's region (FC's regions are separate namespaces: another region's
        function is not found). Function names are unique across the emulator's regions, though."""
        fn = self.functions.get(name)
        if fn is None or (not any_region and fn.region != self._region()):
            raise FunctionNotFound(name)
        fn.settle(self.clock())
        return fn

    def _trigger(self, function_name: str, trigger_name: str, *, any_region: bool = False) -> Trigger:
        self._function(function_name, any_region=any_region)
        trigger = self.triggers.get(function_name, {}).get(trigger_name)
        if trigger is None:
            raise TriggerNotFound(function_name, trigger_name)
        return trigger

    @staticmethod
    def _body(body: Any) -> dict[str, Any]:
        if body is None:
            return {}
        if not isinstance(body, Mapping):
            raise InvalidArgument("the request body must be a JSON object")
        return {k: v for k, v in body.items() if v is not None}

    @staticmethod
    def _clean_function_input(body: dict[str, Any]) -> dict[str, Any]:
        spec = {k: v for k, v in body.items() if k not in FUNCTION_OUTPUT_KEYS}
        container = spec.get("customContainerConfig")
        if isinstance(container, Mapping):
            spec["customContainerConfig"] = {
                k: v for k, v in container.items() if k not in CONTAINER_OUTPUT_KEYS and v is not None
            }
        return spec

    # functions -------------------------------------------------------------------------------------------
    def create_function(self, body: Mapping[str, Any] | None) -> dict[str, Any]:
        spec = self._clean_function_input(self._body(body))
        if not spec.get("functionName"):
            raise InvalidArgument("functionName is required")
        validate_function_fields(spec)
        take_code(spec)
        apply_function_defaults(spec)
        validate_function_spec(spec)
        validate_code_function(spec, self._region())
        name = spec["functionName"]
        with self._lock:
            if name in self.functions:
                raise FunctionAlreadyExists(name)
            now = self.clock()
            fn = Function(
                spec,
                region=self._region(),
                account_id=self.account_id,
                now=now,
                pending_seconds=self.pending_seconds,
                fail_reason=self._fail_reason(spec),
            )
            fn.settle(now)
            self.functions[name] = fn
            self.triggers[name] = {}
            result = fn.to_dict()
            seq = self._changed()
        self._persist(seq)
        return result

    def get_layer_version_by_arn(self, arn: str) -> dict[str, Any]:
        return layer_version(arn, self._region())

    def get_function(self, function_name: str, qualifier: str | None = None) -> dict[str, Any]:
        """With a version or alias as ``qualifier``: that version's configuration."""
        with self._lock:
            fn = self._function(function_name)
            version = self.resolve_qualifier(function_name, qualifier)
            if version is None:
                return fn.to_dict()
            return fn.version_view(version).to_dict()

    def update_function(self, function_name: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        """PATCH-like: only the fields present in the body change.

        Nested objects (``customContainerConfig``, ``vpcConfig``, ``logConfig`` ...) are replaced as a whole
        when present, not merged key by key: send the complete ``customContainerConfig`` (image, port,
        command ...) on every update that touches it, as FC's own console and devsapp do.
        ``functionName`` in the body is ignored (the path names the function).
        """
        changes = self._clean_function_input(self._body(body))
        changes.pop("functionName", None)
        changes.pop("tags", None)  # UpdateFunctionInput has no tags
        validate_function_fields(changes)
        take_code(changes)
        with self._lock:
            fn = self._function(function_name)
            spec = {**fn.spec, **changes}
            apply_function_defaults(spec)
            validate_function_spec(spec)
            validate_code_function(spec, fn.region)
            now = self.clock()
            fn.apply_update(
                spec, now=now, pending_seconds=self.pending_seconds, fail_reason=self._fail_reason(spec)
            )
            fn.settle(now)
            result = fn.to_dict()
            seq = self._changed()
        self._persist(seq)
        self.listeners.function_updated(function_name)
        return result

    def delete_function(self, function_name: str) -> None:
        with self._lock:
            self._function(function_name)
            if self.triggers.get(function_name):
                raise FunctionNotEmpty(function_name)
            if self.aliases.get(function_name):
                raise FunctionNotEmpty(function_name, "aliases")
            if self.versions.get(function_name):
                raise FunctionNotEmpty(function_name, "published versions")
            del self.functions[function_name]
            self.triggers.pop(function_name, None)
            self._drop_versions(function_name)
            seq = self._changed()
        self._persist(seq)
        self.listeners.function_deleted(function_name)

    def list_functions(
        self, prefix: str | None = None, limit: Any = None, next_token: str | None = None, **_ignored: Any
    ) -> dict[str, Any]:
        """Sorted by name. Filters other than ``prefix`` (runtime, tags, fcVersion ...) are ignored."""
        with self._lock:
            region = self._region()
            mine = [n for n, fn in self.functions.items() if fn.region == region]
            names, token = paginate(mine, prefix, limit, next_token)
            now = self.clock()
            functions = []
            for name in names:
                fn = self.functions[name]
                fn.settle(now)
                functions.append(fn.to_dict())
        result: dict[str, Any] = {"functions": functions}
        if token:
            result["nextToken"] = token
        return result

    # data plane ------------------------------------------------------------------------------------------
    def resolve(self, function_name: str, trigger_name: str) -> tuple[Function, Trigger]:
        """Settled shallow copies of a function and one of its triggers (safe to use without the lock)."""
        seq = 0
        with self._lock:
            trigger = self._trigger(function_name, trigger_name, any_region=True)
            fn = self.functions[function_name]
            if fn.state == "Inactive":
                # FC: invoking an Inactive function returns it to Pending; this request still finds it
                # not ready (503), a later one finds it Active.
                now = self.clock()
                fn.wake(now=now, pending_seconds=self.pending_seconds, fail_reason=self._fail_reason(fn.spec))
                fn.settle(now)
                seq = self._changed()
            # The configuration the trigger's qualifier resolves to: a trigger on an alias keeps running
            # its version while LATEST changes.
            version = self.resolve_qualifier(function_name, trigger.qualifier)
            function = copy.copy(fn) if version is None else fn.version_view(version)
            image = function.image
            function.image_config = copy.deepcopy(self.images.get(image)) if image else None
            trigger = copy.copy(trigger)
        if seq:
            self._persist(seq)
        return function, trigger

    def deactivate(self, function_name: str) -> dict[str, Any]:
        """Put a function in FC's ``Inactive`` state (control API); answers the function."""
        with self._lock:
            fn = self._function(function_name, any_region=True)  # the control API spans regions
            fn.deactivate()
            result = fn.to_dict()
            seq = self._changed()
        self._persist(seq)
        return result

    # images ------------------------------------------------------------------------------------------------
    def get_images(self) -> dict[str, dict[str, list[str]]]:
        with self._lock:
            return copy.deepcopy(self.images)

    def set_images(self, images: Any) -> dict[str, dict[str, list[str]]]:
        """Replace the registered images: ``{image: {"entrypoint": [...], "cmd": [...]}}`` (both optional),
        what ``docker inspect`` would show as the image's ENTRYPOINT and CMD."""
        if not isinstance(images, Mapping):
            raise InvalidArgument('images must be an object {"<image>": {"entrypoint": [...], "cmd": [...]}}')
        parsed: dict[str, dict[str, list[str]]] = {}
        for image, config in images.items():
            if not isinstance(config, Mapping) or set(config) - {"entrypoint", "cmd"}:
                raise InvalidArgument(f"image {image!r}: give an object with 'entrypoint' and/or 'cmd'")
            entry: dict[str, list[str]] = {}
            for key in ("entrypoint", "cmd"):
                value = config.get(key)
                if value is None:
                    continue
                if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                    raise InvalidArgument(f"image {image!r}: {key} must be a list of strings")
                entry[key] = list(value)
            parsed[str(image)] = entry
        with self._lock:
            self.images = parsed
            return copy.deepcopy(self.images)

    # whole state -------------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """``{"functions": {name: Function}, "triggers": {function: {trigger: Trigger}}}`` in wire shape."""
        with self._lock:
            now = self.clock()
            for fn in self.functions.values():
                fn.settle(now)
            return {
                "functions": {n: fn.to_dict() for n, fn in sorted(self.functions.items())},
                "triggers": {
                    f: {n: t.to_dict() for n, t in sorted(ts.items())}
                    for f, ts in sorted(self.triggers.items())
                },
            }

    def reset(self) -> None:
        """Wipe every function and trigger, close their listeners, restore the initial configuration."""
        with self._lock:
            self.functions.clear()
            self.triggers.clear()
            self._init_versions()
            self.pending_seconds = self._initial_config["pending_seconds"]
            self.fail_images = list(self._initial_config["fail_images"])
            self.images = {}
            self.listeners.close_all()
            seq = self._changed()
        self._persist(seq)

    def _changed(self) -> int:
        """Call under the lock after a mutation; returns the change's sequence number."""
        self._seq += 1
        return self._seq


__all__ = ["REQUEST_REGION", "FCBackend", "Function", "NullListeners", "Trigger", "TriggerListeners"]
