"""What the MCP server process sees: the function's env, never the deployer's, and the role's STS
credentials only when the deploy asks for them (spec builder default + the emulator's FC behaviour)."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from deployer.fc import spec
from deployer.fc.gateway import FCGateway, make_client
from deployer.settings import Settings
from schemas import DeployRequest
from tests.conftest import TEST_AK, TEST_SK, wait_until

ECHO = str(Path(__file__).resolve().parents[1] / "emulator" / "echo_function.py")


@pytest.fixture
def live_fc(monkeypatch):
    from fc_emulator import EmulatorServer

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", TEST_AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", TEST_SK)
    monkeypatch.setenv("MCPFC_SECRET_KEY", "deployer-only-secret")  # must not reach the function
    with EmulatorServer(port=0, access_key_id=TEST_AK, access_key_secret=TEST_SK, pending_seconds=0.1) as fc:
        yield fc


def function_env(fc, **overrides) -> dict[str, str]:
    return httpx.get(f"{deploy_env_probe(fc, **overrides)}/env", timeout=30).json()


def deploy_env_probe(fc, **overrides) -> str:
    """Deploy the echo function (it starts at its first request) and return its trigger URL."""
    fields = dict(
        name="env-probe",
        image="registry.cn-hangzhou.aliyuncs.com/ns/echo:1",
        proxy="none",
        command=[sys.executable, ECHO, "--port", "8080"],
        env={"VISIBLE": "yes"},
        secret_env={"API_TOKEN": "for-the-server"},
        auth={"type": "anonymous"},
        role="acs:ram::1234567890123456:role/mcp-reader",
    )
    req = DeployRequest(**{**fields, **overrides})
    gw = FCGateway(make_client(Settings(fc_endpoint=fc.url)), max_attempts=3)
    gw.create_or_update_function(spec.create_function_input(req), spec.update_function_input(req))
    wait_until(lambda: gw.get_function(req.name)["body"].get("state") == "Active")
    trig, _ = gw.create_or_update_trigger(
        req.name,
        spec.create_trigger_input(req, spec.EndpointAuth()),
        spec.update_trigger_input(req, spec.EndpointAuth()),
    )
    return trig["body"]["httpTrigger"]["urlInternet"]


def test_role_credentials_stay_out_of_the_server_by_default(live_fc):
    env = function_env(live_fc)
    assert env["VISIBLE"] == "yes" and env["API_TOKEN"] == "for-the-server"
    assert not [k for k in env if k.startswith("ALIBABA_CLOUD_")], "role STS credentials were injected"
    assert "MCPFC_SECRET_KEY" not in env, "the deployer's own environment leaked into the function"


def test_role_credentials_are_handed_over_only_when_asked(live_fc):
    env = function_env(live_fc, inject_credentials=True)
    assert env.get("ALIBABA_CLOUD_SECURITY_TOKEN"), "the emulator injects STS credentials like FC does"


def test_a_local_run_gets_the_hosts_certificates_and_proxies_but_no_deployer_secret(
    live_fc, monkeypatch, tmp_path
):
    """`uvx` / `npx` in an emulated function reach the network as in the user's shell (certificates,
    proxies, caches), and nothing of the deployer's own environment or other tools' tokens gets there."""
    import json

    import certifi

    host_needs = {
        "SSL_CERT_FILE": certifi.where(),
        "SSL_CERT_DIR": str(tmp_path),
        "REQUESTS_CA_BUNDLE": certifi.where(),
        "NODE_EXTRA_CA_CERTS": certifi.where(),
        "HTTP_PROXY": "http://proxy.corp.example:3128",
        "HTTPS_PROXY": "http://proxy.corp.example:3128",
        "http_proxy": "http://proxy.corp.example:3128",
        "https_proxy": "http://proxy.corp.example:3128",
        # loopback stays direct for this test's own requests, which honour the proxy variables too
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "npm_config_cache": str(tmp_path / "npm-cache"),
    }
    deployer_secrets = {
        "MCPFC_API_KEY": "mcpfc_hostkey_never-in-a-function-0123",
        "MCPFC_DATABASE_URL": "postgresql://mcpfc:db-password-canary@db.internal/mcpfc",
        "MCPFC_BROKER_URL": "redis://:broker-password-canary@redis.internal:6379/0",
        "ALIBABA_CLOUD_SECURITY_TOKEN": "host-sts-token-canary",
        "GITHUB_TOKEN": "ghp_canary0123456789",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-canary",
        "UV_PUBLISH_TOKEN": "uv-publish-token-canary",
        "UV_INDEX_PRIVATE_PASSWORD": "uv-index-password-canary",
        "NPM_TOKEN": "npm-token-canary",
    }
    url = deploy_env_probe(live_fc, env={"VISIBLE": "yes", "https_proxy": "http://the-functions-own:8080"})
    # Set after the SDK calls (the FC SDK sends even loopback calls through HTTP_PROXY: it ignores NO_PROXY)
    # and before the first request, which starts the instance with the emulator's environment of then.
    for key, value in {**host_needs, **deployer_secrets}.items():
        monkeypatch.setenv(key, value)
    env = httpx.get(f"{url}/env", timeout=30).json()

    expected = {**host_needs, "https_proxy": "http://the-functions-own:8080"}  # the function's env wins
    assert {k: env.get(k) for k in expected} == expected
    assert env["VISIBLE"] == "yes"
    leaked = sorted(k for k in env if k.startswith(("MCPFC_", "ALIBABA_CLOUD_")) or k in deployer_secrets)
    assert not leaked, f"the deployer's environment reached the function: {leaked}"
    shown = json.dumps(env)
    for value in [*deployer_secrets.values(), "deployer-only-secret", TEST_SK]:
        assert value not in shown
