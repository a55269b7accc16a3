"""Backend state of the FC emulator: functions and triggers (moto's ``models.py``; what input it accepts is
validation.py).

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

One module (~910 lines) on purpose: `FCBackend` is moto's one backend per service, one method per FC
action over resources guarded by one lock; what input it accepts is validation.py, versions and aliases
versions.py.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, Protocol

from .exceptions import (
    FunctionAlreadyExists,
    FunctionNotEmpty,
    FunctionNotFound,
    InvalidArgument,
    TriggerAlreadyExists,
    TriggerNotFound,
)
from .validation import (
    CONTAINER_OUTPUT_KEYS,
    DEFAULT_LIST_LIMIT,
    FUNCTION_OUTPUT_KEYS,
    MAX_TRIGGERS_PER_FUNCTION,
    TRIGGER_INPUT_KEYS,
    TRIGGER_UPDATABLE_KEYS,
    _is_number,
    _parse_json_object,
    apply_function_defaults,
    validate_function_fields,
    validate_function_spec,
    validate_trigger_spec,
)
from .versions import FCVersionsMixin

logger = logging.getLogger("fc_emulator")

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
STATE_FILE_VERSION = 1


def iso(ts: float) -> str:
    return time.strftime(ISO_FORMAT, time.gmtime(ts))


def resolved_image_uri(image: str) -> str:
    """``repo@sha256:<hex>``: the tag is dropped and a digest derived from the image string is appended."""
    if "@sha256:" in image:
        return image
    slash = image.rfind("/")
    colon = image.rfind(":")
    repo = image[:colon] if colon > slash else image
    return f"{repo}@sha256:{hashlib.sha256(image.encode('utf-8')).hexdigest()}"


# resources -------------------------------------------------------------------------------------------


class Function:
    """One function. ``spec`` holds the input fields (defaults filled); it is replaced, never mutated."""

    #: The registered ENTRYPOINT/CMD of its image (``{"entrypoint": [...], "cmd": [...]}``), set on the
    #: copies :meth:`FCBackend.resolve` hands to the data plane; never persisted.
    image_config: dict[str, Any] | None = None

    def __init__(
        self,
        spec: dict[str, Any],
        *,
        region: str,
        account_id: str,
        now: float,
        pending_seconds: float,
        fail_reason: str | None,
    ) -> None:
        self.name: str = spec["functionName"]
        self.spec = spec
        self.region = region
        self.account_id = account_id
        self.function_id = str(uuid.uuid4())
        self.created = now
        self.modified = now
        #: Incremented on every UpdateFunction (a data plane can restart its instance when it changes).
        self.revision = 1
        self.resolved_image = self._resolve_image()
        self.state, self.state_reason, self.state_reason_code = "Pending", "Function creating", "Creating"
        self.last_update_status: str | None = None
        self.last_update_status_reason: str | None = None
        self.last_update_status_reason_code: str | None = None
        # pending transitions: (at, values...)
        self._state_at: float | None = now + pending_seconds
        self._state_to: tuple[str, str, str] = (
            ("Failed", fail_reason, "ImagePullFailed") if fail_reason else ("Active", "", "")
        )
        self._update_at: float | None = None
        self._update_to: tuple[str, str, str] = ("Successful", "", "")

    @property
    def arn(self) -> str:
        return f"acs:fc:{self.region}:{self.account_id}:functions/{self.name}"

    @property
    def image(self) -> str | None:
        container = self.spec.get("customContainerConfig")
        return container.get("image") if isinstance(container, Mapping) else None

    def _resolve_image(self) -> str | None:
        image = self.image
        return resolved_image_uri(image) if isinstance(image, str) and image else None

    def settle(self, now: float) -> None:
        """Apply the transitions whose time has come, in time order."""
        events = []
        if self._state_at is not None and now >= self._state_at:
            events.append((self._state_at, "state"))
        if self._update_at is not None and now >= self._update_at:
            events.append((self._update_at, "update"))
        for _, kind in sorted(events):
            if kind == "state":
                self.state, self.state_reason, self.state_reason_code = self._state_to
                self._state_at = None
            else:
                status, reason, code = self._update_to
                self.last_update_status = status
                self.last_update_status_reason = reason
                self.last_update_status_reason_code = code
                self._update_at = None
                # A successful update of a function whose start had failed brings it up.
                if status == "Successful" and self.state == "Failed" and self._state_at is None:
                    self.state, self.state_reason, self.state_reason_code = "Active", "", ""

    def deactivate(self) -> None:
        """FC's ``Inactive``: kept, but not invocable until it is updated or invoked."""
        self._state_at = None
        self.state = "Inactive"
        self.state_reason = (
            "The function has not been invoked for a long time and its resources were released"
        )
        self.state_reason_code = "Idle"

    def wake(self, *, now: float, pending_seconds: float, fail_reason: str | None) -> None:
        """Inactive → Pending → Active (or Failed): what an update or an invocation does on FC."""
        if self.state != "Inactive":
            return
        self.state, self.state_reason, self.state_reason_code = "Pending", "Function restoring", "Restoring"
        self._state_at = now + pending_seconds
        self._state_to = ("Failed", fail_reason, "ImagePullFailed") if fail_reason else ("Active", "", "")

    def apply_update(
        self, spec: dict[str, Any], *, now: float, pending_seconds: float, fail_reason: str | None
    ) -> None:
        self.wake(now=now, pending_seconds=pending_seconds, fail_reason=fail_reason)
        self.spec = spec
        self.modified = now
        self.revision += 1
        self.resolved_image = self._resolve_image()
        self.last_update_status = "InProgress"
        self.last_update_status_reason = "Function updating"
        self.last_update_status_reason_code = "Updating"
        self._update_at = now + pending_seconds
        self._update_to = (
            ("Failed", fail_reason, "ImagePullFailed") if fail_reason else ("Successful", "", "")
        )

    #: The runtime's key for this configuration's instance: LATEST's is the name, a version's name@id.
    instance_key: str | None = None
    version_id: str = "LATEST"

    def version_view(self, version: Any) -> Function:
        """A copy running a published version's snapshot (its own instance, never stale)."""
        view = copy.copy(self)
        view.spec = version.spec
        view.revision = version.revision
        view.version_id = version.version_id
        view.instance_key = f"{self.name}@{version.version_id}"
        view.resolved_image = view._resolve_image()
        return view

    def to_dict(self) -> dict[str, Any]:
        """The FC ``Function`` wire shape (camelCase)."""
        body = copy.deepcopy({k: v for k, v in self.spec.items() if k != "code"})
        container = body.get("customContainerConfig")
        if isinstance(container, dict) and self.resolved_image:
            container["resolvedImageUri"] = self.resolved_image
        body["layers"] = [{"arn": arn, "size": 0} for arn in self.spec.get("layers") or []]
        body.update(
            {
                "functionId": self.function_id,
                "functionName": self.name,
                "functionArn": self.arn,
                "createdTime": iso(self.created),
                "lastModifiedTime": iso(self.modified),
                "codeSize": 0,
                "codeChecksum": "",
                "state": self.state,
                "stateReason": self.state_reason,
                "stateReasonCode": self.state_reason_code,
                "lastUpdateStatus": self.last_update_status,
                "lastUpdateStatusReason": self.last_update_status_reason,
                "lastUpdateStatusReasonCode": self.last_update_status_reason_code,
                "version": self.version_id,
            }
        )
        return dict(sorted(body.items()))

    # persistence
    def to_record(self) -> dict[str, Any]:
        record = {k: v for k, v in vars(self).items() if k != "account_id"}
        record["_state_to"] = list(self._state_to)
        record["_update_to"] = list(self._update_to)
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any], *, region: str, account_id: str) -> Function:
        fn = cls.__new__(cls)
        for key, value in record.items():
            setattr(fn, key, tuple(value) if key in ("_state_to", "_update_to") else value)
        fn.region, fn.account_id = record.get("region") or region, account_id
        return fn


class Trigger:
    """One trigger. HTTP triggers own a loopback port: their URL is the root of their own origin."""

    def __init__(self, function_name: str, spec: dict[str, Any], *, now: float) -> None:
        self.function_name = function_name
        self.name: str = spec["triggerName"]
        self.spec = spec
        self.trigger_id = str(uuid.uuid4())
        self.created = now
        self.modified = now
        self.port: int | None = None
        self.url_host = "127.0.0.1"

    @property
    def trigger_type(self) -> str:
        return self.spec["triggerType"]

    @property
    def qualifier(self) -> str:
        return self.spec.get("qualifier") or "LATEST"

    @property
    def is_http(self) -> bool:
        return self.trigger_type == "http"

    @property
    def config(self) -> dict[str, Any]:
        return _parse_json_object(self.spec["triggerConfig"], "triggerConfig")

    @property
    def url(self) -> str | None:
        return f"http://{self.url_host}:{self.port}" if self.is_http and self.port else None

    def to_dict(self) -> dict[str, Any]:
        """The FC ``Trigger`` wire shape. ``urlIntranet`` equals ``urlInternet`` (both loopback)."""
        body: dict[str, Any] = {
            "triggerName": self.name,
            "triggerType": self.trigger_type,
            "triggerId": self.trigger_id,
            "triggerConfig": self.spec["triggerConfig"],
            "qualifier": self.qualifier,
            "description": self.spec.get("description") or "",
            "invocationRole": self.spec.get("invocationRole"),
            "sourceArn": self.spec.get("sourceArn"),
            "targetArn": None,
            "status": None,
            "createdTime": iso(self.created),
            "lastModifiedTime": iso(self.modified),
        }
        if self.is_http:
            body["httpTrigger"] = {"urlInternet": self.url, "urlIntranet": self.url}
        return body

    def to_record(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Trigger:
        trigger = cls.__new__(cls)
        for key, value in record.items():
            setattr(trigger, key, value)
        return trigger


# listeners hook ----------------------------------------------------------------------------------


class TriggerListeners(Protocol):
    """What the backend needs from the data plane: one loopback listener per HTTP trigger."""

    url_host: str

    def open(self, function_name: str, trigger_name: str, port: int | None = None) -> int:
        """Start listening for a trigger (on ``port`` if given and free); return the bound port."""

    def close(self, function_name: str, trigger_name: str) -> None: ...

    def close_all(self) -> None: ...

    def function_deleted(self, function_name: str) -> None:
        """After DeleteFunction (outside the backend lock)."""

    def function_updated(self, function_name: str) -> None:
        """After UpdateFunction (outside the backend lock)."""

    def trigger_deleted(self, function_name: str, trigger_name: str) -> None:
        """After DeleteTrigger of an HTTP trigger (outside the backend lock; ``close`` ran under it)."""


class NullListeners:
    """Listeners for a bare backend (no server): reserves nothing, hands out free port numbers."""

    url_host = "127.0.0.1"

    def open(self, function_name: str, trigger_name: str, port: int | None = None) -> int:
        if port:
            return port
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def close(self, function_name: str, trigger_name: str) -> None:
        return None

    def close_all(self) -> None:
        return None

    def function_deleted(self, function_name: str) -> None:
        return None

    def function_updated(self, function_name: str) -> None:
        return None

    def trigger_deleted(self, function_name: str, trigger_name: str) -> None:
        return None


# pagination ------------------------------------------------------------------------------------------


def _encode_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii").rstrip("=")


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument(f"nextToken {token!r} is invalid") from None


def parse_limit(limit: Any) -> int:
    if limit is None or limit == "":
        return DEFAULT_LIST_LIMIT
    try:
        value = int(limit)
    except (TypeError, ValueError):
        raise InvalidArgument(f"limit must be an integer in [1, 100], got {limit!r}") from None
    if not 1 <= value <= 100:
        raise InvalidArgument(f"limit must be an integer in [1, 100], got {value}")
    return value


def _paginate(
    names: list[str], prefix: str | None, limit: Any, next_token: str | None
) -> tuple[list[str], str | None]:
    size = parse_limit(limit)
    selected = sorted(n for n in names if not prefix or n.startswith(prefix))
    if next_token:
        start = _decode_token(next_token)
        selected = [n for n in selected if n >= start]
    page, rest = selected[:size], selected[size:]
    return page, (_encode_token(rest[0]) if rest else None)


# backend ---------------------------------------------------------------------------------------------


#: The region the FC API request being served was for. The server sets it for the request's duration from
#: the endpoint host (``<account>.<region>.fc.aliyuncs.com``) or the ``x-acs-region-id`` header that
#: mcp-fc's gateway sends; unset (a bare backend, the data plane) means the backend's own region.
REQUEST_REGION: ContextVar[str | None] = ContextVar("fc_emulator_request_region", default=None)


class FCBackend(FCVersionsMixin):
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
            if not _is_number(pending_seconds) or pending_seconds < 0:
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
        apply_function_defaults(spec)
        validate_function_spec(spec)
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
        with self._lock:
            fn = self._function(function_name)
            spec = {**fn.spec, **changes}
            apply_function_defaults(spec)
            validate_function_spec(spec)
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
            names, token = _paginate(mine, prefix, limit, next_token)
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

    # triggers --------------------------------------------------------------------------------------------
    def _check_trigger_limits(self, function_name: str, spec: Mapping[str, Any], exclude: str | None) -> None:
        others = [t for n, t in self.triggers.get(function_name, {}).items() if n != exclude]
        if exclude is None and len(others) >= MAX_TRIGGERS_PER_FUNCTION:
            raise InvalidArgument(
                f"function '{function_name}' already has {MAX_TRIGGERS_PER_FUNCTION} triggers, the maximum"
            )
        if spec["triggerType"] == "http":
            qualifier = spec.get("qualifier") or "LATEST"
            for other in others:
                if other.is_http and other.qualifier == qualifier:
                    raise InvalidArgument(
                        f"function '{function_name}' already has an HTTP trigger "
                        f"'{other.name}' for qualifier '{qualifier}'; only one is allowed"
                    )

    def create_trigger(self, function_name: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        data = self._body(body)
        spec = {k: data[k] for k in TRIGGER_INPUT_KEYS if k in data}
        spec.setdefault("qualifier", "LATEST")
        with self._lock:
            self._function(function_name)
            validate_trigger_spec(spec)
            self.check_qualifier(function_name, spec["qualifier"])
            name = spec["triggerName"]
            if name in self.triggers.setdefault(function_name, {}):
                raise TriggerAlreadyExists(function_name, name)
            self._check_trigger_limits(function_name, spec, exclude=None)
            trigger = Trigger(function_name, spec, now=self.clock())
            if trigger.is_http:
                trigger.url_host = self.listeners.url_host
                trigger.port = self.listeners.open(function_name, name)
            self.triggers[function_name][name] = trigger
            result = trigger.to_dict()
            seq = self._changed()
        self._persist(seq)
        return result

    def get_trigger(self, function_name: str, trigger_name: str) -> dict[str, Any]:
        with self._lock:
            return self._trigger(function_name, trigger_name).to_dict()

    def update_trigger(
        self, function_name: str, trigger_name: str, body: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """PATCH-like over ``triggerConfig`` (replaced as a whole), ``qualifier``, ``description`` and
        ``invocationRole``; the name and type cannot change. An HTTP trigger keeps its port and URL."""
        data = self._body(body)
        changes = {k: data[k] for k in TRIGGER_UPDATABLE_KEYS if k in data}
        with self._lock:
            trigger = self._trigger(function_name, trigger_name)
            spec = {**trigger.spec, **changes}
            validate_trigger_spec(spec)
            self.check_qualifier(function_name, spec.get("qualifier"))
            self._check_trigger_limits(function_name, spec, exclude=trigger_name)
            trigger.spec = spec
            trigger.modified = self.clock()
            result = trigger.to_dict()
            seq = self._changed()
        self._persist(seq)
        return result

    def delete_trigger(self, function_name: str, trigger_name: str) -> None:
        with self._lock:
            trigger = self._trigger(function_name, trigger_name)
            del self.triggers[function_name][trigger_name]
            if trigger.is_http:
                self.listeners.close(function_name, trigger_name)
            seq = self._changed()
        self._persist(seq)
        if trigger.is_http:
            self.listeners.trigger_deleted(function_name, trigger_name)

    def list_triggers(
        self, function_name: str, prefix: str | None = None, limit: Any = None, next_token: str | None = None
    ) -> dict[str, Any]:
        with self._lock:
            self._function(function_name)
            triggers = self.triggers.get(function_name, {})
            names, token = _paginate(list(triggers), prefix, limit, next_token)
            result: dict[str, Any] = {"triggers": [triggers[n].to_dict() for n in names]}
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

    # persistence -------------------------------------------------------------------------------------
    def _changed(self) -> int:
        """Call under the lock after a mutation; returns the change's sequence number."""
        self._seq += 1
        return self._seq

    def _records(self) -> dict[str, Any]:
        # Specs are replaced, never mutated in place, so this shallow copy is safe to dump outside the lock.
        return {
            "version": STATE_FILE_VERSION,
            "region": self.region,
            "account_id": self.account_id,
            "functions": [fn.to_record() for fn in self.functions.values()],
            "triggers": [t.to_record() for ts in self.triggers.values() for t in ts.values()],
            **self._versions_records(),
        }

    def _persist(self, seq: int) -> None:
        """Write the state file if no newer snapshot has been written meanwhile (coalesces bursts)."""
        if self.state_file is None:
            return
        with self._persist_lock:
            if self._persisted_seq >= seq:
                return
            with self._lock:
                records, latest = self._records(), self._seq
            self._write_state(records)
            self._persisted_seq = latest

    def _write_state(self, records: dict[str, Any]) -> None:
        assert self.state_file is not None
        directory = os.path.dirname(os.path.abspath(self.state_file))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".fc-emulator-", suffix=".json", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(records, fh, indent=1, sort_keys=True)
            os.replace(tmp, self.state_file)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def reopen_listeners(self) -> None:
        """Re-open the listener of every HTTP trigger (after the listeners were closed, e.g. on restart),
        on its previous port when free."""
        with self._lock:
            changed = False
            for function_name, triggers in self.triggers.items():
                for trigger in triggers.values():
                    if trigger.is_http:
                        previous = trigger.port
                        trigger.url_host = self.listeners.url_host
                        trigger.port = self.listeners.open(function_name, trigger.name, previous)
                        changed = changed or trigger.port != previous
            seq = self._changed() if changed else 0
        if seq:
            self._persist(seq)

    def load_state(self) -> int:
        """Load functions and triggers from ``state_file`` (if it exists) and re-open trigger listeners,
        re-binding each trigger's previous port when it is free. Returns the number of functions loaded."""
        if self.state_file is None or not os.path.exists(self.state_file):
            return 0
        with open(self.state_file, encoding="utf-8") as fh:
            data = json.load(fh)
        if data.get("version") != STATE_FILE_VERSION:
            raise ValueError(f"{self.state_file}: unsupported state file version {data.get('version')!r}")
        with self._lock:
            self.listeners.close_all()
            self.functions = {}
            self.triggers = {}
            for record in data.get("functions", []):
                fn = Function.from_record(record, region=self.region, account_id=self.account_id)
                self.functions[fn.name] = fn
                self.triggers[fn.name] = {}
            for record in data.get("triggers", []):
                trigger = Trigger.from_record(record)
                if trigger.function_name not in self.functions:
                    continue
                if trigger.is_http:
                    previous = trigger.port
                    trigger.url_host = self.listeners.url_host
                    trigger.port = self.listeners.open(trigger.function_name, trigger.name, previous)
                    if previous and trigger.port != previous:
                        logger.warning(
                            "trigger %s/%s: port %s is taken, now listening on %s (URL changed)",
                            trigger.function_name,
                            trigger.name,
                            previous,
                            trigger.port,
                        )
                self.triggers[trigger.function_name][trigger.name] = trigger
            self._load_versions(data, self.functions)
            seq = self._changed()
            count = len(self.functions)
        self._persist(seq)
        return count
