"""What the emulated FC accepts: the limits and shapes of function and trigger input, and their checks.

Split out of models.py (the backend's state and actions): these are pure functions of a request body,
raising :class:`~fc_emulator.exceptions.InvalidArgument` with FC's wording where a public source
gives it (shared/reference/fc3-fidelity-audit.md), so the backend's methods read as FC's actions.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .exceptions import InvalidArgument

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


# validation helpers ----------------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
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


def parse_json_object(value: Any, name: str) -> dict[str, Any]:
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
    config = parse_json_object(raw, "sessionAffinityConfig")
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
    sessions = parse_json_object(raw, "sessionAffinityConfig").get("sessionConcurrencyPerInstance")
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
        not is_number(cpu) or not 0.05 - 1e-9 <= cpu <= 16 + 1e-9 or abs(cpu * 20 - round(cpu * 20)) > 1e-6
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
    config = parse_json_object(spec["triggerConfig"], "triggerConfig")
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
            auth_config = parse_json_object(config["authConfig"], "triggerConfig.authConfig")
            jwks = auth_config.get("jwks", auth_config.get("JWKS"))
            keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
            if not isinstance(keys, list) or not keys:
                raise InvalidArgument("triggerConfig.authConfig.jwks.keys must be a non-empty list of JWKs")
        if "disableURLInternet" in config and not isinstance(config["disableURLInternet"], bool):
            raise InvalidArgument("triggerConfig.disableURLInternet must be a boolean")
    return config
