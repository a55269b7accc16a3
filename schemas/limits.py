"""Function Compute 3.0 limits, as the control plane enforces them.

Source: shared/reference/fc3-api.md §3. Checked at validation time so that no request that FC
would refuse ever reaches the cloud. Every pattern is anchored with \\A...\\Z and applied with `fullmatch`
(`$` would accept a trailing newline: `x` and `x\\n` became two deployments and two functions).
"""

import json
import re

FUNCTION_NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_-]{0,63}\Z")
FUNCTION_NAME_RULE = "1-64 letters, digits, '_' or '-', not starting with a digit or '-'"

ENV_KEY_RE = re.compile(r"\A[A-Za-z][A-Za-z0-9_]*\Z")
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
ACR_EE_HOST_RE = re.compile(r"\A[\w-]{3,30}-registry(-vpc)?\.[\w-]+\.cr\.aliyuncs\.com\Z", re.ASCII)
ACR_INSTANCE_ID_RE = re.compile(r"\Acri-[A-Za-z0-9]+\Z")

# An OCI image reference, loosely: registry/path[:tag][@digest], no whitespace or control chars. ASCII
# only: an OCI tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127} (\w alone would accept any Unicode letter).
IMAGE_RE = re.compile(
    r"\A(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?\Z"
)
IMAGE_MAX = 512

REGION_RE = re.compile(r"\A[a-z]{2,}(-[a-z0-9]+){1,4}\Z")
# The regions Function Compute 3.0 serves: the keys of the FC 3.0 SDK's endpoint map
# (alibabacloud_fc20230330 Client._endpoint_map; tests/schemas/test_schemas.py keeps the two equal). A region
# outside it is a 422, not a deploy that fails later at FC (or a 500 when it is longer than its column).
FC_REGIONS = frozenset(
    {
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-south-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-5",
        "ap-southeast-7",
        "cn-beijing",
        "cn-chengdu",
        "cn-hangzhou",
        "cn-hangzhou-finance",
        "cn-heyuan-acdr-1",
        "cn-hongkong",
        "cn-huhehaote",
        "cn-qingdao",
        "cn-shanghai",
        "cn-shanghai-finance-1",
        "cn-shenzhen",
        "cn-wulanchabu",
        "cn-zhangjiakou",
        "eu-central-1",
        "eu-west-1",
        "me-central-1",
        "us-east-1",
        "us-west-1",
    }
)
REGION_MAX = 32  # the deployments.region column

# A CORS origin as the bridge's --allow-origin takes it: `*`, or scheme://host[:port] with nothing else (no
# path, no spaces, no leading '-': a value must never read as another flag of the bridge's command line).
ORIGIN_RE = re.compile(
    r"\Ahttps?://(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)(?::[0-9]{1,5})?\Z"
)

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


# ACR hosts name their region (fc3-api.md §3.3): Personal Edition registry[-vpc].<region>.aliyuncs.com (and
# registry-intl[-vpc]. on the international site), Enterprise Edition
# <instance>-registry[-vpc].<region>.cr.aliyuncs.com.
ACR_HOST_RE = re.compile(
    r"\A(?:registry(?:-intl)?(?:-vpc)?\.(?P<personal>[a-z0-9-]+)\.aliyuncs\.com"
    r"|[\w-]{3,30}-registry(?:-vpc)?\.(?P<enterprise>[a-z0-9-]+)\.cr\.aliyuncs\.com)\Z",
    re.ASCII,
)


def acr_region(image: str) -> str | None:
    """The region of an image in Alibaba Cloud Container Registry, else None."""
    match = ACR_HOST_RE.fullmatch(image_registry_host(image) or "")
    return (match.group("personal") or match.group("enterprise")) if match else None


def image_region_error(image: str, region: str) -> str | None:
    """FC pulls a custom-container image from its own region only ("Image must be in the same region and
    account", fc3-api.md §3.2): an ACR image of another region is refused before any cloud call."""
    image_region = acr_region(image)
    if image_region is None or image_region == region:
        return None
    return (
        f"the image is in ACR region {image_region} and the function in {region}: FC pulls images from the "
        f"function's own region only; push it to registry.{region}.aliyuncs.com or deploy with --region "
        f"{image_region}"
    )


def image_warnings(image: str) -> list[str]:
    """What FC may refuse or do unexpectedly with an image, where no public source says it refuses it."""
    warnings = []
    if acr_region(image) is None:
        warnings.append(
            f"{image} is not in Alibaba Cloud Container Registry: FC pulls other registries only with a "
            "registry configuration (registryConfig), which mcp-fc does not send; push it to "
            "registry.<region>.aliyuncs.com in the function's region"
        )
    last = image.rsplit("/", 1)[-1]
    if ":" not in last.split("@", 1)[0] and "@" not in last:
        warnings.append(
            f"{image} has no tag: the registry's `latest` is taken at deploy time; a tag (or @sha256 digest) "
            "keeps redeploys and rollbacks reproducible"
        )
    return warnings
