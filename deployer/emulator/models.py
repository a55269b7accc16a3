"""Backend state of the FC emulator: functions, triggers and their validation (moto's ``models.py``).

``FCBackend`` has one method per FC action. Every method takes already-parsed arguments (the JSON body as a
dict with FC's camelCase keys, path names decoded) and returns the response body as a dict in FC's wire shape
(or ``None`` for the Delete actions), or raises an :class:`~deployer.emulator.exceptions.FCError`.

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
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import logging
import math
import os
import re
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
from .versions import FCVersionsMixin

logger = logging.getLogger("deployer.emulator")

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
STATE_FILE_VERSION = 1

# Whole-string patterns (\A...\Z, applied with fullmatch): FC refuses "echo\n" as a name, and `$` would
# accept it (a trailing newline matches `$`), making `echo` and `echo\n` two functions.
FUNCTION_NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_-]{0,63}\Z")
TRIGGER_NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_-]{0,127}\Z")
ENV_KEY_RE = re.compile(r"\A[A-Za-z][A-Za-z0-9_]*\Z")
HEADER_FIELD_NAME_RE = re.compile(r"\A[A-Za-z][A-Za-z0-9_-]{4,39}\Z")
#: ACR Enterprise Edition registry hosts (``<instance>-registry[-vpc].<region>.cr.aliyuncs.com``).
ACR_EE_HOST_RE = re.compile(r"\A[\w-]+-registry(-vpc)?\.[\w-]+\.cr\.aliyuncs\.com\Z", re.ASCII)
#: An image reference as a registry takes it: printable ASCII without spaces (a tag is ASCII by the OCI
#: distribution spec; a newline, a space or a non-ASCII letter is never part of a pullable reference).
IMAGE_REF_RE = re.compile(r"\A[!-~]+\Z")

RUNTIMES = frozenset(
    {
        "custom-container",
        "custom",
        "custom.debian10",
        "custom.debian11",
        "custom.debian12",
        "nodejs12",
        "nodejs14",
        "nodejs16",
        "nodejs18",
        "nodejs20",
        "go1",
        "python3",
        "python3.9",
        "python3.10",
        "python3.12",
        "java8",
        "java11",
        "php7.2",
        "dotnetcore3.1",
    }
)
#: The SDK 4.8.3 and Go SDK list (audit row 18): no MCP_STREAMABLE, whatever some pages call it.
SESSION_AFFINITIES = ("NONE", "MCP_SSE", "GENERATED_COOKIE", "HEADER_FIELD")
#: The keys of each affinity's config model in the SDK (MCPSSESessionAffinityConfig, CookieSessionAffinityConfig,
#: HeaderFieldSessionAffinityConfig).
AFFINITY_CONFIG_KEYS = {
    "MCP_SSE": frozenset({"sseEndpointPath", "sessionConcurrencyPerInstance"}),
    "GENERATED_COOKIE": frozenset(
        {"sessionConcurrencyPerInstance", "sessionTTLInSeconds", "sessionIdleTimeoutInSeconds"}
    ),
    "HEADER_FIELD": frozenset(
        {
            "affinityHeaderFieldName",
            "sessionConcurrencyPerInstance",
            "sessionTTLInSeconds",
            "sessionIdleTimeoutInSeconds",
        }
    ),
}
TRIGGER_TYPES = frozenset(
    {"http", "timer", "oss", "log", "tablestore", "cdn_events", "mns_topic", "eventbridge"}
)
HTTP_METHODS = frozenset({"HEAD", "DELETE", "POST", "GET", "OPTIONS", "PUT", "PATCH"})
#: SDK ``_auth_config.py``: "Valid values: anonymous, function, and jwt." (audit row 1).
HTTP_AUTH_TYPES = ("anonymous", "function", "jwt")
#: FC documents bearer-token triggers, but no public source shows their triggerConfig (audit row 7).
BEARER_UNVERIFIED = (
    "triggerConfig.authType 'bearer' is not emulated: its wire format is not public (the SDK lists "
    "anonymous, function and jwt)"
)
MAX_TRIGGERS_PER_FUNCTION = 10
MAX_ENV_BYTES = 4096
DEFAULT_LIST_LIMIT = 20

#: Keys FC computes; ignored when a client sends them back in a Create/Update body.
FUNCTION_OUTPUT_KEYS = frozenset(
    {
        "functionId",
        "functionArn",
        "createdTime",
        "lastModifiedTime",
        "codeSize",
        "codeChecksum",
        "state",
        "stateReason",
        "stateReasonCode",
        "lastUpdateStatus",
        "lastUpdateStatusReason",
        "lastUpdateStatusReasonCode",
        "version",
        "invocationRestriction",
        "lockInfo",
    }
)
CONTAINER_OUTPUT_KEYS = frozenset({"resolvedImageUri", "accelerationInfo"})
#: Fields of CreateTriggerInput / UpdateTriggerInput the emulator stores.
TRIGGER_INPUT_KEYS = (
    "triggerName",
    "triggerType",
    "triggerConfig",
    "qualifier",
    "description",
    "invocationRole",
    "sourceArn",
)
TRIGGER_UPDATABLE_KEYS = ("triggerConfig", "qualifier", "description", "invocationRole")


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


# validation helpers ----------------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _require_str(
    spec: Mapping[str, Any], key: str, *, max_len: int | None = None, min_len: int = 0, where: str = ""
) -> None:
    if key not in spec or spec[key] is None:
        return
    value = spec[key]
    name = f"{where}{key}"
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string")
    if len(value) < min_len:
        raise InvalidArgument(f"{name} must not be empty")
    if max_len is not None and len(value) > max_len:
        raise InvalidArgument(f"{name} must be at most {max_len} characters, got {len(value)}")


def _int_in(spec: Mapping[str, Any], key: str, low: int, high: int, where: str = "") -> None:
    if spec.get(key) is None:
        return
    value = spec[key]
    if not _is_int(value) or not low <= value <= high:
        raise InvalidArgument(f"{where}{key} must be an integer in [{low}, {high}], got {value!r}")


def _parse_json_object(value: Any, name: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a JSON string")
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise InvalidArgument(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidArgument(f"{name} must be a JSON object")
    return parsed


def _validate_env(env: Any) -> None:
    if env is None:
        return
    if not isinstance(env, Mapping):
        raise InvalidArgument("environmentVariables must be an object of string values")
    for key, value in env.items():
        if not isinstance(key, str) or not ENV_KEY_RE.fullmatch(key):
            raise InvalidArgument(
                f"environmentVariables key '{key}' is invalid: it must start with a letter "
                "and contain only letters, digits and '_'"
            )
        if key.startswith("FC_"):
            raise InvalidArgument(f"environmentVariables key '{key}' uses the reserved prefix 'FC_'")
        if not isinstance(value, str):
            raise InvalidArgument(f"environmentVariables['{key}'] must be a string")
    # FC does not say how it counts "the total size"; count the largest plausible form, the JSON it
    # receives, so nothing passes here that FC could refuse (mcp-fc's own check counts the same way).
    total = len(json.dumps(dict(env), ensure_ascii=True))
    if total > MAX_ENV_BYTES:
        raise InvalidArgument(f"environmentVariables total size {total} exceeds {MAX_ENV_BYTES} bytes")


def _validate_session_affinity(spec: Mapping[str, Any]) -> None:
    affinity = spec.get("sessionAffinity")
    if affinity is not None and affinity not in SESSION_AFFINITIES:
        raise InvalidArgument(f"sessionAffinity must be one of {list(SESSION_AFFINITIES)}, got {affinity!r}")
    raw = spec.get("sessionAffinityConfig")
    if raw is None or raw == "":
        if affinity == "HEADER_FIELD":
            raise InvalidArgument(
                "sessionAffinityConfig.affinityHeaderFieldName is required for HEADER_FIELD"
            )
        return
    if not isinstance(raw, str):
        raise InvalidArgument("sessionAffinityConfig must be a JSON string")
    config = _parse_json_object(raw, "sessionAffinityConfig")
    where = "sessionAffinityConfig."
    allowed = AFFINITY_CONFIG_KEYS.get(str(affinity))
    if allowed is None:
        return  # NONE: no affinity, the config (e.g. left from an earlier MCP_SSE) is not used
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise InvalidArgument(
            f"sessionAffinityConfig has unknown key(s) {unknown} for {affinity}; allowed: {sorted(allowed)}"
        )
    _int_in(config, "sessionConcurrencyPerInstance", 1, 200, where)
    if affinity == "MCP_SSE":
        path = config.get("sseEndpointPath")
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise InvalidArgument("sessionAffinityConfig.sseEndpointPath must be a string starting with '/'")
    elif affinity in ("GENERATED_COOKIE", "HEADER_FIELD"):
        _int_in(config, "sessionTTLInSeconds", 1, 21600, where)
        _int_in(config, "sessionIdleTimeoutInSeconds", 0, 21600, where)
    if affinity == "HEADER_FIELD":
        name = config.get("affinityHeaderFieldName")
        if (
            not isinstance(name, str)
            or not HEADER_FIELD_NAME_RE.fullmatch(name)
            or name.lower().startswith("x-fc-")
        ):
            raise InvalidArgument(
                "sessionAffinityConfig.affinityHeaderFieldName must be 5-40 characters, "
                "start with a letter, use letters, digits, '-' or '_', and not start "
                "with 'x-fc-'"
            )


def _check_sessions_fit(spec: Mapping[str, Any]) -> None:
    """ "The number of concurrent sessions per instance cannot exceed the maximum number of concurrent
    requests per instance" (session-affinity-configuration-practices, en). A zh page says affinity forces
    instance concurrency to 200 instead; the emulator follows the stricter reading."""
    affinity = spec.get("sessionAffinity")
    raw = spec.get("sessionAffinityConfig")
    if affinity not in AFFINITY_CONFIG_KEYS or not isinstance(raw, str) or not raw:
        return
    sessions = _parse_json_object(raw, "sessionAffinityConfig").get("sessionConcurrencyPerInstance")
    concurrency = spec.get("instanceConcurrency")
    if _is_int(sessions) and _is_int(concurrency) and sessions > concurrency:
        raise InvalidArgument(
            f"sessionAffinityConfig.sessionConcurrencyPerInstance {sessions} exceeds instanceConcurrency "
            f"{concurrency}: sessions per instance cannot exceed concurrent requests per instance"
        )


def _validate_container(config: Any, runtime: Any) -> None:
    if config is None:
        if runtime == "custom-container":
            raise InvalidArgument("customContainerConfig.image is required for runtime custom-container")
        return
    if not isinstance(config, Mapping):
        raise InvalidArgument("customContainerConfig must be an object")
    image = config.get("image")
    if runtime == "custom-container" and (not isinstance(image, str) or not image.strip()):
        raise InvalidArgument("customContainerConfig.image is required for runtime custom-container")
    if image is not None and not isinstance(image, str):
        raise InvalidArgument("customContainerConfig.image must be a string")
    if isinstance(image, str) and image and not IMAGE_REF_RE.fullmatch(image):
        raise InvalidArgument(
            f"customContainerConfig.image {image!r} is invalid: an image reference is printable ASCII "
            "without spaces"
        )
    _int_in(config, "port", 1, 65535, "customContainerConfig.")
    for key in ("command", "entrypoint"):
        value = config.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(x, str) for x in value)):
            raise InvalidArgument(f"customContainerConfig.{key} must be a list of strings")
    _require_str(config, "acrInstanceId", where="customContainerConfig.")
    if isinstance(image, str) and image:
        host = image.split("/", 1)[0]
        if ACR_EE_HOST_RE.fullmatch(host) and not config.get("acrInstanceId"):
            raise InvalidArgument(
                f"customContainerConfig.acrInstanceId is required for the ACR Enterprise "
                f"Edition image '{image}'"
            )
    health = config.get("healthCheckConfig")
    if health is not None:
        if not isinstance(health, Mapping):
            raise InvalidArgument("customContainerConfig.healthCheckConfig must be an object")
        where = "customContainerConfig.healthCheckConfig."
        _require_str(health, "httpGetUrl", max_len=2048, where=where)
        for key, low, high in (
            ("initialDelaySeconds", 0, 120),
            ("periodSeconds", 1, 120),
            ("timeoutSeconds", 1, 3),
            ("failureThreshold", 1, 120),
            ("successThreshold", 1, 120),
        ):
            _int_in(health, key, low, high, where)


def validate_function_fields(spec: Mapping[str, Any]) -> None:
    """Check each field that is present (types, ranges, patterns)."""
    name = spec.get("functionName")
    if name is not None and (not isinstance(name, str) or not FUNCTION_NAME_RE.fullmatch(name)):
        raise InvalidArgument(
            f"functionName {name!r} is invalid: it must be 1-64 characters of letters, "
            "digits, '_' or '-' and must not start with a digit or '-'"
        )
    runtime = spec.get("runtime")
    if runtime is not None and runtime not in RUNTIMES:
        raise InvalidArgument(f"runtime {runtime!r} is not supported")
    _require_str(spec, "handler", min_len=1, max_len=128)
    _require_str(spec, "description", max_len=256)
    _require_str(spec, "role", max_len=300)
    memory = spec.get("memorySize")
    if memory is not None and (not _is_int(memory) or memory % 64 or not 128 <= memory <= 32768):
        raise InvalidArgument(f"memorySize must be a multiple of 64 in [128, 32768] MB, got {memory!r}")
    cpu = spec.get("cpu")
    if cpu is not None and (
        not _is_number(cpu) or not 0.05 - 1e-9 <= cpu <= 16 + 1e-9 or abs(cpu * 20 - round(cpu * 20)) > 1e-6
    ):
        raise InvalidArgument(f"cpu must be a multiple of 0.05 in [0.05, 16] vCPU, got {cpu!r}")
    disk = spec.get("diskSize")
    if disk is not None and (not _is_int(disk) or disk not in (512, 10240)):
        raise InvalidArgument(f"diskSize must be 512 or 10240 MB, got {disk!r}")
    _int_in(spec, "timeout", 1, 86400)
    _int_in(spec, "instanceConcurrency", 1, 200)
    if spec.get("internetAccess") is not None and not isinstance(spec["internetAccess"], bool):
        raise InvalidArgument("internetAccess must be a boolean")
    _validate_env(spec.get("environmentVariables"))
    layers = spec.get("layers")
    if layers is not None and (not isinstance(layers, list) or not all(isinstance(x, str) for x in layers)):
        raise InvalidArgument("layers must be a list of layer version ARNs")
    tags = spec.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, Mapping) for t in tags)):
        raise InvalidArgument("tags must be a list of {Key, Value} objects")
    _require_str(spec, "instanceIsolationMode")
    _validate_session_affinity(spec)


def apply_function_defaults(spec: dict[str, Any]) -> None:
    """Fill the defaults FC returns. cpu/memory default from each other (cpu = memory_GB / 2)."""
    if spec.get("memorySize") is None and spec.get("cpu") is None:
        spec["memorySize"] = 512
    if spec.get("cpu") is None:
        steps = math.ceil(spec["memorySize"] / 1024 / 2 / 0.05 - 1e-9)
        spec["cpu"] = round(min(16.0, max(0.05, steps * 0.05)), 2)
    if spec.get("memorySize") is None:
        spec["memorySize"] = min(32768, max(128, math.ceil(spec["cpu"] * 2 * 1024 / 64 - 1e-9) * 64))
    for key, value in (
        ("diskSize", 512),
        ("timeout", 3),
        ("instanceConcurrency", 1),
        ("description", ""),
        ("role", ""),
        ("internetAccess", True),
        ("sessionAffinity", "NONE"),
        ("instanceIsolationMode", "SHARE"),
        ("environmentVariables", {}),
        ("tags", []),
        ("layers", []),
    ):
        if spec.get(key) is None:
            spec[key] = copy.deepcopy(value)
    container = spec.get("customContainerConfig")
    if isinstance(container, Mapping) and container.get("port") is None:
        spec["customContainerConfig"] = {**container, "port": 9000}


def validate_function_spec(spec: Mapping[str, Any]) -> None:
    """Whole-function checks on a complete (defaulted, merged) spec."""
    validate_function_fields(spec)
    if not spec.get("functionName"):
        raise InvalidArgument("functionName is required")
    if not spec.get("runtime"):
        raise InvalidArgument("runtime is required")
    if not spec.get("handler"):
        raise InvalidArgument("handler is required (1-128 characters)")
    cpu, memory_gb = spec["cpu"], spec["memorySize"] / 1024
    if not cpu - 1e-9 <= memory_gb <= 4 * cpu + 1e-9:
        raise InvalidArgument(
            f"cpu {cpu} and memorySize {spec['memorySize']} MB do not fit: "
            "cpu : memory(GB) must be between 1:1 and 1:4"
        )
    _check_sessions_fit(spec)
    _validate_container(spec.get("customContainerConfig"), spec.get("runtime"))


def validate_trigger_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a complete trigger spec; return its parsed triggerConfig."""
    name = spec.get("triggerName")
    if not isinstance(name, str) or not TRIGGER_NAME_RE.fullmatch(name):
        raise InvalidArgument(
            f"triggerName {name!r} is invalid: it must be 1-128 characters of letters, "
            "digits, '_' or '-' and must not start with a digit or '-'"
        )
    ttype = spec.get("triggerType")
    if not ttype:
        raise InvalidArgument("triggerType is required")
    if ttype not in TRIGGER_TYPES:
        raise InvalidArgument(f"triggerType must be one of {sorted(TRIGGER_TYPES)}, got {ttype!r}")
    if spec.get("triggerConfig") in (None, ""):
        raise InvalidArgument("triggerConfig is required")
    if not isinstance(spec["triggerConfig"], str):
        raise InvalidArgument("triggerConfig must be a JSON string")
    config = _parse_json_object(spec["triggerConfig"], "triggerConfig")
    _require_str(spec, "qualifier", min_len=1, max_len=128)
    _require_str(spec, "description", max_len=256)
    _require_str(spec, "invocationRole", max_len=300)
    _require_str(spec, "sourceArn", max_len=300)
    if ttype == "http":
        methods = config.get("methods")
        if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
            raise InvalidArgument("triggerConfig.methods must be a non-empty list of HTTP methods")
        bad = sorted(set(methods) - HTTP_METHODS)
        if bad:
            raise InvalidArgument(
                f"triggerConfig.methods has unsupported method(s) {bad}; allowed: {sorted(HTTP_METHODS)}"
            )
        auth = config.get("authType", "function")
        if auth == "bearer":
            raise InvalidArgument(BEARER_UNVERIFIED)
        if auth not in HTTP_AUTH_TYPES:
            raise InvalidArgument(
                f"triggerConfig.authType must be one of {list(HTTP_AUTH_TYPES)}, got {auth!r}"
            )
        if auth == "jwt":
            if config.get("authConfig") in (None, ""):
                raise InvalidArgument("triggerConfig.authConfig is required when authType is jwt")
            auth_config = _parse_json_object(config["authConfig"], "triggerConfig.authConfig")
            jwks = auth_config.get("jwks", auth_config.get("JWKS"))
            keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
            if not isinstance(keys, list) or not keys:
                raise InvalidArgument("triggerConfig.authConfig.jwks.keys must be a non-empty list of JWKs")
        if "disableURLInternet" in config and not isinstance(config["disableURLInternet"], bool):
            raise InvalidArgument("triggerConfig.disableURLInternet must be a boolean")
    return config


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
