"""DeployRequest enforces FC 3.0's limits: every rejection names the field and the rule."""

import pytest
from pydantic import ValidationError

from schemas import MASK, DeployRequest, RedeployRequest, Status, can_transition

BASE = {
    "name": "mcp-time",
    "image": "registry.cn-hangzhou.aliyuncs.com/ns/mcp-time:1.0",
    "command": ["mcp-server-time"],
}


def errors_of(**overrides):
    with pytest.raises(ValidationError) as info:
        DeployRequest.model_validate({**BASE, **overrides})
    return {(".".join(map(str, e["loc"])), e["type"]) for e in info.value.errors()}


def test_defaults_match_the_contract():
    req = DeployRequest.model_validate(BASE)
    assert (req.cpu, req.memory_mb, req.disk_mb, req.timeout_s, req.instance_concurrency) == (
        0.5,
        512,
        512,
        600,
        10,
    )
    assert req.transport == "streamable-http" and req.priority == "normal" and req.proxy == "mcp-proxy"
    assert req.auth.type == "jwt", "endpoints are authenticated unless anonymous is asked for"


@pytest.mark.parametrize(
    ("overrides", "field", "rule"),
    [
        ({"name": "1abc"}, "name", "function_name"),
        ({"name": "-abc"}, "name", "function_name"),
        ({"name": "a" * 65}, "name", "function_name"),
        ({"name": "has space"}, "name", "function_name"),
        ({"name": "naïve"}, "name", "function_name"),
        ({"memory_mb": 100}, "memory_mb", "memory_range"),
        ({"memory_mb": 520}, "memory_mb", "memory_range"),
        ({"memory_mb": 65536}, "memory_mb", "memory_range"),
        ({"cpu": 0.03}, "cpu", "cpu_range"),
        ({"cpu": 0.33}, "cpu", "cpu_range"),
        ({"cpu": 17}, "cpu", "cpu_range"),
        ({"cpu": 1.0, "memory_mb": 512}, "memory_mb", "cpu_memory_ratio"),
        ({"cpu": 0.5, "memory_mb": 4096}, "memory_mb", "cpu_memory_ratio"),
        ({"disk_mb": 1024}, "disk_mb", "disk_size"),
        ({"timeout_s": 0}, "timeout_s", "timeout_range"),
        ({"timeout_s": 86401}, "timeout_s", "timeout_range"),
        ({"instance_concurrency": 0}, "instance_concurrency", "concurrency_range"),
        ({"instance_concurrency": 201}, "instance_concurrency", "concurrency_range"),
        ({"env": {"1A": "x"}}, "env", "env_key"),
        ({"env": {"A-B": "x"}}, "env", "env_key"),
        ({"env": {"FC_REGION": "x"}}, "env", "env_key_reserved"),
        ({"secret_env": {"fc_token": "x"}}, "secret_env", "env_key_reserved"),
        ({"env": {"BIG": "x" * 4094}}, "env", "env_total_size"),
        ({"env": {"A": "x" * 3000}, "secret_env": {"B": "y" * 1100}}, "env", "env_total_size"),
        ({"env": {"A": "1"}, "secret_env": {"A": "2"}}, "secret_env", "env_duplicate_key"),
        (
            {"image": "inst-registry.cn-hangzhou.cr.aliyuncs.com/ns/repo:1"},
            "acr_instance_id",
            "acr_instance_required",
        ),
        (
            {"image": "inst-registry-vpc.cn-hangzhou.cr.aliyuncs.com/ns/repo:1"},
            "acr_instance_id",
            "acr_instance_required",
        ),
        ({"image": "has space:1"}, "image", "image_reference"),
        ({"image": "UPPER/Case"}, "image", "image_reference"),
        ({"command": []}, "command", "command_required"),
        ({"command": [""]}, "command", "command_program"),
        ({"command": ["-x", "server"]}, "command", "command_program"),
        ({"cpu": True}, "cpu", "number_type"),
        ({"memory_mb": False}, "memory_mb", "number_type"),
        ({"command": ["ok", "a\x00b"]}, "command", "no_nul"),
        ({"region": "Hangzhou"}, "region", "region"),
        ({"role": "admin"}, "role", "role_arn"),
        ({"acr_instance_id": "nope"}, "acr_instance_id", "acr_instance_id"),
        ({"unknown_field": 1}, "unknown_field", "extra_forbidden"),
        ({"memory_mb": "lots"}, "memory_mb", "int_parsing"),
        ({"transport": "websocket"}, "transport", "enum"),
        ({"auth": {"type": "oauth"}}, "auth.type", "enum"),
        # whole strings: `$` accepts a trailing newline, so "x" and "x\n" became two deployments
        ({"name": "mcp-time\n"}, "name", "function_name"),
        ({"env": {"KEY\n": "x"}}, "env", "env_key"),
        ({"secret_env": {"KEY\n": "x"}}, "secret_env", "env_key"),
        ({"region": "cn-hangzhou\n"}, "region", "region"),
        ({"image": "ns/img:1\n"}, "image", "image_reference"),
        ({"image": "registry.cn-hangzhou.aliyuncs.com/ns/img\n"}, "image", "image_reference"),
        ({"acr_instance_id": "cri-abc\n"}, "acr_instance_id", "acr_instance_id"),
        (
            {"vpc": {"vpc_id": "vpc-a\n", "vswitch_ids": ["vsw-a"], "security_group_id": "sg-a"}},
            "vpc.vpc_id",
            "string_pattern_mismatch",
        ),
        # image tags are ASCII (OCI: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127})
        ({"image": "ns/img:vé"}, "image", "image_reference"),
        ({"image": "ns/img:١٢"}, "image", "image_reference"),
        # regions FC has (issue 16: a deploy to mars-1 was accepted; an over-long region was a 500)
        ({"region": "mars-1"}, "region", "region"),
        ({"region": "cn-" + "a" * 200}, "region", "region"),
        # allowed origins are origins, never flags or several words for mcp-proxy's argv
        ({"allow_origins": ["--foo"]}, "allow_origins", "origin"),
        ({"allow_origins": ["https://a.example --pass-environment"]}, "allow_origins", "origin"),
        ({"allow_origins": ["https://a.example/path"]}, "allow_origins", "origin"),
        ({"allow_origins": ["https://a.example\n"]}, "allow_origins", "origin"),
        ({"allow_origins": ["ftp://a.example"]}, "allow_origins", "origin"),
        ({"allow_origins": ["a.example"]}, "allow_origins", "origin"),
        ({"auth": {"type": "bearer"}}, "auth.type", "auth_bearer_unverified"),
        (
            {"session_concurrency_per_instance": 0},
            "session_concurrency_per_instance",
            "session_concurrency_range",
        ),
        (
            {"session_concurrency_per_instance": 201, "instance_concurrency": 200},
            "session_concurrency_per_instance",
            "session_concurrency_range",
        ),
        (
            {"session_concurrency_per_instance": 11},
            "session_concurrency_per_instance",
            "session_concurrency_exceeds_instance",
        ),
        (
            {"session_concurrency_per_instance": 2, "transport": "streamable-http"},
            "session_concurrency_per_instance",
            "session_concurrency_needs_sse",
        ),
        # counted as the JSON FC receives: {"BIG": "..."} is 11 bytes more than the value
        ({"env": {"BIG": "x" * 4086}}, "env", "env_total_size"),
        # non-ASCII counts as its \uXXXX escape (6 bytes), more than its 2 UTF-8 bytes
        ({"env": {"A": "é" * 682}}, "env", "env_total_size"),
        ({"init": "dumb-init"}, "init", "enum"),
    ],
)
def test_fc_limits_are_enforced_with_field_and_rule(overrides, field, rule):
    assert (field, rule) in errors_of(**overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {"cpu": 0.05, "memory_mb": 128},
        {"cpu": 0.15, "memory_mb": 192},
        {"cpu": 16, "memory_mb": 32768},
        {"cpu": 2, "memory_mb": 8192},
        {"disk_mb": 10240},
        {"timeout_s": 86400, "instance_concurrency": 200},
        {"env": {"a": "b", "Z_1": ""}},
        {"env": {"BIG": "x" * 4085}},
        {"env": {"A": "é" * 680}},
        {"session_concurrency_per_instance": 10, "transport": "sse"},
        {"session_concurrency_per_instance": 200, "instance_concurrency": 200, "transport": "sse"},
        {"init": "none"},
        {"image": "inst-registry.cn-hangzhou.cr.aliyuncs.com/ns/repo:1", "acr_instance_id": "cri-abc123"},
        {"image": "python:3.12-slim"},
        {"image": "localhost:5000/team/server@sha256:" + "a" * 64},
        {"proxy": "none", "command": []},
        {"region": "ap-southeast-1", "image": "registry.ap-southeast-1.aliyuncs.com/ns/mcp-time:1.0"},
        {"region": "cn-shanghai-finance-1", "image": "python:3.12-slim"},
        {"region": "ap-southeast-1", "image": "registry-intl-vpc.ap-southeast-1.aliyuncs.com/ns/t:1"},
        {"allow_origins": ["*"]},
        {
            "allow_origins": [
                "https://claude.ai",
                "http://localhost:6274",
                "http://127.0.0.1:8080",
                "http://[::1]:3000",
            ]
        },
        {"command": ["npx", "-y", "@modelcontextprotocol/server-everything", "--flag=$(rm -rf /)"]},
    ],
)
def test_valid_edges_are_accepted(overrides):
    DeployRequest.model_validate({**BASE, **overrides})


def test_secret_env_is_write_only():
    req = DeployRequest.model_validate({**BASE, "secret_env": {"SENTRY_TOKEN": "canary-123"}})
    dumped = req.model_dump_json()
    assert "canary-123" not in dumped and MASK in dumped
    assert "canary-123" not in repr(req) and "canary-123" not in str(req)
    assert req.secret_values() == {"SENTRY_TOKEN": "canary-123"}


def test_redeploy_merges_and_revalidates():
    current = DeployRequest.model_validate({**BASE, "secret_env": {"T": "s1"}, "env": {"A": "1"}})
    merged = RedeployRequest(image="registry.cn-hangzhou.aliyuncs.com/ns/mcp-time:2.0").apply_to(current)
    assert (
        merged.image.endswith(":2.0") and merged.env == {"A": "1"} and merged.secret_values() == {"T": "s1"}
    )
    with pytest.raises(ValidationError) as info:
        RedeployRequest(memory_mb=8192).apply_to(current)  # 8 GB for 0.5 vCPU breaks the ratio
    assert info.value.errors()[0]["type"] == "cpu_memory_ratio"


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [
        ("pending", "running", True),
        ("running", "succeeded", True),
        ("succeeded", "pending", True),
        ("deleting", "deleted", True),
        ("deleted", "running", False),
        ("succeeded", "running", False),
        ("pending", "succeeded", False),
    ],
)
def test_status_transitions(old, new, ok):
    assert can_transition(Status(old), Status(new)) is ok


def test_region_list_is_the_fc_sdks():
    """FC_REGIONS is the FC 3.0 SDK's endpoint map: a region the SDK knows is never refused, and no other."""
    import inspect
    import re

    from alibabacloud_fc20230330.client import Client

    from schemas import limits

    source = inspect.getsource(Client.__init__)
    block = source[source.index("_endpoint_map = {") : source.index("}", source.index("_endpoint_map = {"))]
    sdk = set(re.findall(r"'([a-z0-9-]+)':", block))
    assert sdk and limits.FC_REGIONS == sdk
    assert max(map(len, limits.FC_REGIONS)) <= limits.REGION_MAX


def test_redeploy_validates_origins_too():
    current = DeployRequest.model_validate(BASE)
    with pytest.raises(ValidationError) as info:
        RedeployRequest(allow_origins=["--stateless"]).apply_to(current)
    assert ("allow_origins", "origin") in {
        (".".join(map(str, e["loc"])), e["type"]) for e in info.value.errors()
    }


def test_bearer_is_refused_saying_why():
    with pytest.raises(ValidationError) as info:
        DeployRequest.model_validate({**BASE, "auth": {"type": "bearer"}})
    message = info.value.errors()[0]["msg"]
    assert "wire format" in message and "not public" in message and "jwt" in message


@pytest.mark.parametrize(
    ("concurrency", "sessions", "expected"),
    [
        (10, None, 5),
        (1, None, 1),
        (3, None, 1),
        (40, None, 20),
        (200, None, 20),
        (10, 10, 10),
        (200, 150, 150),
    ],
)
def test_sessions_per_instance_default_to_fc_default_capped_at_half_the_concurrency(
    concurrency, sessions, expected
):
    req = DeployRequest.model_validate(
        {
            **BASE,
            "transport": "sse",
            "instance_concurrency": concurrency,
            "session_concurrency_per_instance": sessions,
        }
    )
    assert req.sessions_per_instance() == expected


def test_redeploy_lowering_concurrency_below_the_sessions_is_refused():
    current = DeployRequest.model_validate(
        {**BASE, "transport": "sse", "instance_concurrency": 20, "session_concurrency_per_instance": 15}
    )
    with pytest.raises(ValidationError) as info:
        RedeployRequest(instance_concurrency=10).apply_to(current)
    assert info.value.errors()[0]["type"] == "session_concurrency_exceeds_instance"
    merged = RedeployRequest(instance_concurrency=10, session_concurrency_per_instance=8).apply_to(current)
    assert merged.sessions_per_instance() == 8


def test_redeploy_keeps_the_transport_unless_it_is_changed():
    sse = DeployRequest.model_validate({**BASE, "transport": "sse", "session_concurrency_per_instance": 3})
    kept = RedeployRequest(image="registry.cn-hangzhou.aliyuncs.com/ns/mcp-time:2.0").apply_to(sse)
    assert kept.transport == "sse" and kept.session_concurrency_per_instance == 3
    converted = RedeployRequest(transport="streamable-http").apply_to(sse)
    # SSE session affinity means nothing on streamable HTTP: the conversion drops it instead of failing
    assert converted.transport == "streamable-http" and converted.session_concurrency_per_instance is None
    back = RedeployRequest(transport="sse").apply_to(converted)
    assert back.transport == "sse"


def test_sse_is_marked_deprecated_in_the_schema():
    prop = DeployRequest.model_json_schema()["properties"]["transport"]
    assert prop["default"] == "streamable-http"
    assert "deprecated" in prop["description"] and prop["x-deprecated-values"] == ["sse"]
    redeploy = RedeployRequest.model_json_schema()["properties"]["transport"]
    assert "deprecated" in redeploy["description"]


@pytest.mark.parametrize(
    "image",
    [
        "registry.cn-beijing.aliyuncs.com/ns/t:1",
        "registry-vpc.cn-beijing.aliyuncs.com/ns/t:1",
        "inst-registry.cn-beijing.cr.aliyuncs.com/ns/t:1",
        "inst-registry-vpc.cn-beijing.cr.aliyuncs.com/ns/t:1",
    ],
)
def test_an_acr_image_of_another_region_is_refused(image):
    """FC pulls images from the function's own region only (fc3-api.md §3.2)."""
    with pytest.raises(ValidationError) as info:
        DeployRequest.model_validate(
            {**BASE, "image": image, "region": "cn-hangzhou", "acr_instance_id": "cri-abc123"}
        )
    [error] = info.value.errors()
    assert (error["loc"], error["type"]) == (("image",), "image_region")
    assert "cn-beijing" in error["msg"] and "--region cn-beijing" in error["msg"]


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("registry.cn-hangzhou.aliyuncs.com/ns/t:1", []),
        ("registry.cn-hangzhou.aliyuncs.com/ns/t@sha256:" + "a" * 64, []),
        ("registry.cn-hangzhou.aliyuncs.com/ns/t", ["no tag"]),
        ("localhost:5000/ns/t", ["not in Alibaba Cloud Container Registry", "no tag"]),
        ("ghcr.io/org/server:2", ["not in Alibaba Cloud Container Registry"]),
        ("python", ["not in Alibaba Cloud Container Registry", "no tag"]),
    ],
)
def test_image_warnings(image, expected):
    from schemas.limits import image_warnings

    warnings = image_warnings(image)
    assert len(warnings) == len(expected)
    for warning, words in zip(warnings, expected, strict=True):
        assert words in warning
