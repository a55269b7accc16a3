"""Each FC call goes to the deployment's own region (issue 16 #1): a gateway per region, and the emulator
answers for the region a call was for (from the `x-acs-region-id` header the gateway sends)."""

from __future__ import annotations

import pytest

from deployer.errors import FCNotFound
from deployer.fc import spec
from deployer.fc.gateway import FCGateway, make_client
from deployer.fc.ratelimit import bucket_key
from deployer.settings import Settings
from schemas import DeployRequest


def gw(fc, region: str | None) -> FCGateway:
    settings = Settings(fc_endpoint=fc.url, fc_read_timeout_s=5)
    return FCGateway(
        make_client(settings, region), max_attempts=2, backoff_initial_s=0.01, sleep=lambda _s: None
    )


def req(name: str) -> DeployRequest:
    return DeployRequest.model_validate(
        {
            "name": name,
            "image": "registry.cn-hangzhou.aliyuncs.com/ns/img:1",
            "command": ["srv"],
            "auth": {"type": "anonymous"},
        }
    )


def create(gateway: FCGateway, name: str) -> dict:
    r = req(name)
    fn, _ = gateway.create_or_update_function(spec.create_function_input(r), spec.update_function_input(r))
    return fn["body"]


def test_a_function_lands_in_the_region_its_gateway_is_for(fc) -> None:
    singapore, hangzhou = gw(fc, "ap-southeast-1"), gw(fc, "cn-hangzhou")
    sg = create(singapore, "in-singapore")
    hz = create(hangzhou, "in-hangzhou")
    assert sg["functionArn"].startswith("acs:fc:ap-southeast-1:")
    assert hz["functionArn"].startswith("acs:fc:cn-hangzhou:")
    # Regions are separate namespaces: each sees its own functions only.
    assert [f["functionName"] for f in singapore.list_functions()] == ["in-singapore"]
    assert [f["functionName"] for f in hangzhou.list_functions()] == ["in-hangzhou"]
    with pytest.raises(FCNotFound):
        hangzhou.get_function("in-singapore")
    assert singapore.get_function("in-singapore")["body"]["functionArn"] == sg["functionArn"]


def test_the_default_region_is_the_services(fc) -> None:
    body = create(gw(fc, None), "in-default")
    assert body["functionArn"].startswith("acs:fc:cn-hangzhou:")


def test_endpoint_template_and_rate_bucket_are_per_region() -> None:
    settings = Settings(fc_endpoint="http://fc-{region}.internal:9000")
    client = make_client(settings, "ap-southeast-1")
    assert client._endpoint == "fc-ap-southeast-1.internal:9000"
    assert bucket_key(settings, "ap-southeast-1") != bucket_key(settings, "cn-hangzhou")
    public = make_client(Settings(fc_account_id="123"), "eu-central-1")
    assert public._endpoint == "123.eu-central-1.fc.aliyuncs.com"
