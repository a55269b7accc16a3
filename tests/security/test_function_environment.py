"""What the MCP server process sees: the function's env, never the deployer's, and the role's STS
credentials only when the deploy asks for them (spec builder default + the emulator's FC behaviour)."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from deployer import spec
from deployer.gateway import FCGateway, make_client
from deployer.settings import Settings
from schemas import DeployRequest
from tests.conftest import TEST_AK, TEST_SK, wait_until

ECHO = str(Path(__file__).resolve().parents[1] / "emulator" / "echo_function.py")


@pytest.fixture
def live_fc(monkeypatch):
    from deployer.emulator import EmulatorServer

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", TEST_AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", TEST_SK)
    monkeypatch.setenv("MCPFC_SECRET_KEY", "deployer-only-secret")  # must not reach the function
    with EmulatorServer(port=0, access_key_id=TEST_AK, access_key_secret=TEST_SK, pending_seconds=0.1) as fc:
        yield fc


def function_env(fc, **overrides) -> dict[str, str]:
    req = DeployRequest(
        name="env-probe",
        image="registry.cn-hangzhou.aliyuncs.com/ns/echo:1",
        proxy="none",
        command=[sys.executable, ECHO, "--port", "8080"],
        env={"VISIBLE": "yes"},
        secret_env={"API_TOKEN": "for-the-server"},
        auth={"type": "anonymous"},
        role="acs:ram::1234567890123456:role/mcp-reader",
        **overrides,
    )
    gw = FCGateway(make_client(Settings(fc_endpoint=fc.url)), max_attempts=3)
    gw.create_or_update_function(spec.create_function_input(req), spec.update_function_input(req))
    wait_until(lambda: gw.get_function(req.name)["body"].get("state") == "Active")
    trig, _ = gw.create_or_update_trigger(
        req.name,
        spec.create_trigger_input(req, spec.EndpointAuth()),
        spec.update_trigger_input(req, spec.EndpointAuth()),
    )
    url = trig["body"]["httpTrigger"]["urlInternet"]
    return httpx.get(f"{url}/env", timeout=30).json()


def test_role_credentials_stay_out_of_the_server_by_default(live_fc):
    env = function_env(live_fc)
    assert env["VISIBLE"] == "yes" and env["API_TOKEN"] == "for-the-server"
    assert not [k for k in env if k.startswith("ALIBABA_CLOUD_")], "role STS credentials were injected"
    assert "MCPFC_SECRET_KEY" not in env, "the deployer's own environment leaked into the function"


def test_role_credentials_are_handed_over_only_when_asked(live_fc):
    env = function_env(live_fc, inject_credentials=True)
    assert env.get("ALIBABA_CLOUD_SECURITY_TOKEN"), "the emulator injects STS credentials like FC does"
