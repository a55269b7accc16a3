"""Function Compute 3.0 limits, as the control plane enforces them.

Source: shared/reference/fc3-api.md §3. Checked at validation time so that no request that FC
would refuse ever reaches the cloud.
"""

import json
import re

FUNCTION_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
FUNCTION_NAME_RULE = "1-64 letters, digits, '_' or '-', not starting with a digit or '-'"

ENV_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
ENV_KEY_RULE = "must start with a letter and contain only letters, digits and '_'"
ENV_RESERVED_PREFIX = "FC_"
ENV_TOTAL_BYTES = 4096

MEMORY_MIN_MB, MEMORY_MAX_MB, MEMORY_STEP_MB = 128, 32768, 64
CPU_MIN, CPU_MAX, CPU_STEP = 0.05, 16.0, 0.05
DISK_SIZES_MB = (512, 10240)
TIMEOUT_MIN_S, TIMEOUT_MAX_S = 1, 86400
CONCURRENCY_MIN, CONCURRENCY_MAX = 1, 200
# MCP_SSE sessionConcurrencyPerInstance: "Valid values: 1 to 200", FC's default 20 (SDK, struct doc).
SESSIONS_MIN, SESSIONS_MAX, SESSIONS_DEFAULT = 1, 200, 20
DESCRIPTION_MAX = 256
ROLE_MAX = 300

# ACR Enterprise Edition hosts: <instance>-registry[-vpc].<region>.cr.aliyuncs.com
ACR_EE_HOST_RE = re.compile(r"^[\w-]{3,30}-registry(-vpc)?\.[\w-]+\.cr\.aliyuncs\.com$")
ACR_INSTANCE_ID_RE = re.compile(r"^cri-[A-Za-z0-9]+$")

# An OCI image reference, loosely: registry/path[:tag][@digest], no whitespace or control chars.
IMAGE_RE = re.compile(
    r"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
IMAGE_MAX = 512

REGION_RE = re.compile(r"^[a-z]{2,}(-[a-z0-9]+){1,4}$")

CONTAINER_PORT = 8080


def is_multiple(value: float, step: float) -> bool:
    """True when value is an integer multiple of step, tolerant of float noise (0.15 / 0.05)."""
    ratio = value / step
    return abs(ratio - round(ratio)) < 1e-6


def env_size(env: dict[str, str]) -> int:
    """Bytes counted against FC's 4 KB environment limit, conservatively.

    FC does not document how it counts "the total size of all environment variables", so we count the
    largest form it could plausibly measure: the JSON object it receives, with quotes, separators and
    `\\uXXXX` escapes for anything non-ASCII. That is never less than the UTF-8 bytes of keys and values,
    so nothing we accept can be over FC's limit under either reading."""
    return len(json.dumps(env, ensure_ascii=True))


def image_registry_host(image: str) -> str | None:
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return None
