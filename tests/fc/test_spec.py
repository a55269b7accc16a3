"""The spec builder turns a DeployRequest into exactly what FC 3.0 and the mcp-fc bridge need."""

import json

import pytest

from deployer.errors import SpecError
from deployer.fc import spec
from schemas import DeployRequest, RedeployRequest, Transport

SENTRY_IMAGE = "registry.cn-beijing.aliyuncs.com/biyao/public:python-mcp-server-sentry-2025.1.14-v7"


def sentry(**overrides) -> DeployRequest:
    return DeployRequest.model_validate(
        {
            "name": "mcp-test1",
            "image": SENTRY_IMAGE,
            "command": ["mcp-server-sentry", "--auth-token", "tok-123"],
            "env": {"a": "b"},
            "cpu": 0.5,
            "memory_mb": 512,
            "disk_mb": 512,
            "timeout_s": 600,
            "instance_concurrency": 10,
            "auth": {"type": "anonymous"},
            "transport": "sse",  # the reference deploy; streamable HTTP (the default) is tested on its own
            **overrides,
        }
    )


def test_create_function_body_for_the_reference_deploy():
    body = spec.create_function_input(sentry()).to_map()
    assert body["functionName"] == "mcp-test1"
    assert body["runtime"] == "custom-container" and body["handler"] == "index.handler"
    assert (body["cpu"], body["memorySize"], body["diskSize"], body["timeout"]) == (0.5, 512, 512, 600)
    assert body["instanceConcurrency"] == 10
    assert body["environmentVariables"] == {"a": "b"}
    container = body["customContainerConfig"]
    assert container["image"] == SENTRY_IMAGE and container["port"] == 8080
    # anonymous: no --allow-origin, so the bridge allows loopback origins only
    assert container["command"] == [
        "mcp-fc-bridge", "--port", "8080", "--host", "0.0.0.0", "--transport", "sse",
        "--", "mcp-server-sentry", "--auth-token", "tok-123",
    ]  # fmt: skip
    assert "--sse-port" not in container["command"] and "--sse-host" not in container["command"]
    assert container["healthCheckConfig"]["httpGetUrl"] == "/status"
    # set explicitly, so the process does not depend on the image's ENTRYPOINT (audit row 22)
    assert container["entrypoint"] == ["tini", "--"]


def test_the_process_is_independent_of_the_image_entrypoint():
    """`entrypoint + command` is exactly tini and the bridge argv, whatever the image declares."""
    req = sentry()
    container = spec.create_function_input(req).to_map()["customContainerConfig"]
    assert container["entrypoint"] + container["command"] == ["tini", "--", *spec.proxy_command(req)]
    assert spec.update_function_input(req).to_map()["customContainerConfig"]["entrypoint"] == ["tini", "--"]
    # init none: the bridge is PID 1, still with both parts set
    bare = spec.create_function_input(sentry(init="none")).to_map()["customContainerConfig"]
    assert bare["entrypoint"] + bare["command"] == spec.proxy_command(req)
    assert bare["entrypoint"] == spec.proxy_command(req)[:1]


def test_sse_gets_mcp_sse_affinity_as_a_json_string():
    body = spec.create_function_input(sentry()).to_map()
    assert body["sessionAffinity"] == "MCP_SSE"
    config = json.loads(body["sessionAffinityConfig"])
    assert config["sseEndpointPath"] == "/sse"
    # sessions per instance never exceed the instance concurrency (FC rule), leaving room for POSTs:
    # FC's default 20, capped at half of the default concurrency 10
    assert config == {"sseEndpointPath": "/sse", "sessionConcurrencyPerInstance": 5}
    assert set(config) == {"sseEndpointPath", "sessionConcurrencyPerInstance"}  # the SDK model's keys only


def test_sessions_per_instance_is_a_setting_of_its_own():
    body = spec.create_function_input(
        sentry(instance_concurrency=100, session_concurrency_per_instance=60)
    ).to_map()
    assert json.loads(body["sessionAffinityConfig"])["sessionConcurrencyPerInstance"] == 60
    assert body["instanceConcurrency"] == 100
    default = spec.create_function_input(sentry(instance_concurrency=100)).to_map()
    assert json.loads(default["sessionAffinityConfig"])["sessionConcurrencyPerInstance"] == 20


def test_streamable_http_is_stateless_and_allows_delete():
    req = sentry(transport="streamable-http")
    body = spec.create_function_input(req).to_map()
    # the bridge is stateless by construction; only SSE asks for more routes
    command = body["customContainerConfig"]["command"]
    assert (
        command[:5] == ["mcp-fc-bridge", "--port", "8080", "--host", "0.0.0.0"]
        and "--transport" not in command
    )
    assert body["sessionAffinity"] == "NONE" and "sessionAffinityConfig" not in body
    methods = json.loads(spec.create_trigger_input(req, spec.EndpointAuth()).trigger_config)["methods"]
    assert {"GET", "POST", "DELETE"} <= set(methods)


def test_trigger_input_is_http_latest_with_config_as_json_string():
    trig = spec.create_trigger_input(sentry(), spec.EndpointAuth()).to_map()
    assert trig["triggerType"] == "http" and trig["qualifier"] == "LATEST" and trig["triggerName"] == "http"
    assert isinstance(trig["triggerConfig"], str)
    config = json.loads(trig["triggerConfig"])
    assert config["authType"] == "anonymous"
    assert {"GET", "POST"} <= set(config["methods"])
    assert config["disableURLInternet"] is False


def test_jwt_trigger_carries_the_public_keys_only():
    jwks = {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "k1", "n": "abc", "e": "AQAB"}]}
    config = json.loads(
        spec.create_trigger_input(sentry(auth={"type": "jwt"}), spec.EndpointAuth(jwks=jwks)).trigger_config
    )
    assert config["authType"] == "jwt"
    assert config["authConfig"]["jwks"] == jwks
    # FC strips the prefix literally, so it ends with the space before the token (audit row 5) ...
    assert config["authConfig"]["tokenLookup"] == "header:Authorization:Bearer "
    # ... and no claimPassBy: optional, and FC 3.0 documents no query target for it (row 6)
    assert set(config["authConfig"]) == {"jwks", "tokenLookup"}
    with pytest.raises(SpecError):
        spec.create_trigger_input(sentry(auth={"type": "jwt"}), spec.EndpointAuth())


def test_secret_env_reaches_the_function_but_not_the_spec_dump():
    req = sentry(secret_env={"SENTRY_TOKEN": "canary-999"})
    assert spec.create_function_input(req).environment_variables == {"a": "b", "SENTRY_TOKEN": "canary-999"}
    assert "canary-999" not in req.model_dump_json()


def test_role_credentials_are_not_injected_unless_asked():
    assert spec.create_function_input(sentry()).disable_inject_credentials == "All"
    assert spec.create_function_input(sentry(inject_credentials=True)).disable_inject_credentials == "None"


def test_proxy_none_runs_the_image_command_as_is():
    req = sentry(proxy="none", command=["node", "server.js", "--port", "8080"])
    body = spec.create_function_input(req).to_map()
    assert body["customContainerConfig"]["command"] == ["node", "server.js", "--port", "8080"]
    assert "healthCheckConfig" not in body["customContainerConfig"]
    # the image's own ENTRYPOINT stays; without a command its CMD stays too
    assert "entrypoint" not in body["customContainerConfig"]
    own = spec.create_function_input(sentry(proxy="none", command=[])).to_map()["customContainerConfig"]
    assert "entrypoint" not in own and "command" not in own


def test_update_input_sets_every_managed_field():
    upd = spec.update_function_input(sentry(image=SENTRY_IMAGE.replace("v7", "v8"))).to_map()
    assert upd["customContainerConfig"]["image"].endswith("v8")
    for key in ("cpu", "memorySize", "diskSize", "timeout", "instanceConcurrency", "environmentVariables",
                "sessionAffinity", "runtime", "handler"):  # fmt: skip
        assert key in upd
    assert "functionName" not in upd


def test_trigger_config_matches_ignores_key_order():
    req = sentry()
    wanted = spec.update_trigger_input(req, spec.EndpointAuth())
    same = json.dumps(dict(reversed(list(json.loads(wanted.trigger_config).items()))))
    assert spec.trigger_config_matches(same, wanted)
    other = spec.update_trigger_input(sentry(transport="streamable-http"), spec.EndpointAuth())
    assert not spec.trigger_config_matches(other.trigger_config, wanted)


def test_endpoint_urls():
    base, vpc = "https://x.cn-hangzhou.fcapp.run", "https://x.cn-hangzhou-vpc.fcapp.run"
    urls = spec.endpoint_urls(base, vpc, Transport.sse)
    assert urls.sse == "https://x.cn-hangzhou.fcapp.run/sse"
    assert urls.mcp == "https://x.cn-hangzhou.fcapp.run/mcp"
    # a streamable-http bridge answers 404 at /sse: no such URL is listed (issue 26 #5)
    urls = spec.endpoint_urls(base, vpc, Transport.streamable_http)
    assert urls.sse is None and urls.mcp == "https://x.cn-hangzhou.fcapp.run/mcp"


def test_a_default_request_is_streamable_http_without_affinity():
    req = DeployRequest.model_validate({"name": "d", "image": SENTRY_IMAGE, "command": ["srv"]})
    assert req.transport == "streamable-http"
    body = spec.create_function_input(req).to_map()
    assert body["sessionAffinity"] == "NONE" and "sessionAffinityConfig" not in body


def test_converting_sse_to_streamable_http_rewrites_affinity_and_trigger_methods():
    """What `redeploy --transport streamable-http` sends: no MCP_SSE affinity (UpdateFunction sets NONE) and a
    trigger that allows DELETE, the method streamable HTTP clients end a session with."""
    old = sentry(session_concurrency_per_instance=4)
    new = RedeployRequest(transport="streamable-http").apply_to(old)
    assert new.transport == "streamable-http" and new.session_concurrency_per_instance is None
    update = spec.update_function_input(new).to_map()
    assert update["sessionAffinity"] == "NONE"
    assert "--transport" not in update["customContainerConfig"]["command"]
    assert "--transport" in spec.update_function_input(old).to_map()["customContainerConfig"]["command"]
    auth = spec.EndpointAuth()
    before = json.loads(spec.update_trigger_input(old, auth).trigger_config)["methods"]
    after = json.loads(spec.update_trigger_input(new, auth).trigger_config)["methods"]
    assert "DELETE" not in before and {"GET", "POST", "DELETE", "OPTIONS"} <= set(after)
    assert not spec.trigger_config_matches(
        spec.update_trigger_input(old, auth).trigger_config, spec.update_trigger_input(new, auth)
    )


def test_the_health_check_is_a_quick_liveness_verdict_within_fcs_ranges():
    """A hung server is replaced within ~15 s (2 s x 30 cost two minutes of failed calls, issue 26 #14); the
    values stay in FC's documented ranges (CustomHealthCheckConfig: timeout 1-3, others 0/1-120)."""
    req = DeployRequest.model_validate({"name": "d", "image": SENTRY_IMAGE, "command": ["srv"]})
    check = spec.health_check(req)
    assert check is not None
    assert check.period_seconds * check.failure_threshold + check.timeout_seconds <= 15
    assert 1 <= check.timeout_seconds <= 3 and 0 <= check.initial_delay_seconds <= 120
    assert 1 <= check.period_seconds <= 120 and 1 <= check.failure_threshold <= 120


def test_an_anonymous_endpoint_allows_no_browser_origin_by_default():
    """Unauthenticated, '*' would let any web page's script call the server (DNS rebinding, issue 24): the
    bridge gets no --allow-origin and keeps its loopback-only default; an explicit list still wins."""
    base = {"name": "o", "image": "python:3.12-slim", "command": ["srv"]}
    anonymous = DeployRequest(**base, auth={"type": "anonymous"})
    assert anonymous.allow_origins == [] and "--allow-origin" not in spec.proxy_command(anonymous)
    assert DeployRequest.model_validate(anonymous.model_dump()).allow_origins == []  # stored, then read back
    assert DeployRequest(**base).allow_origins == ["*"]  # behind the trigger's JWT
    chosen = DeployRequest(**base, auth={"type": "anonymous"}, allow_origins=["*"])
    assert spec.proxy_command(chosen)[5:7] == ["--allow-origin", "*"]
