"""The FC gateway with the official SDK against the emulator: errors, retries, convergence under faults."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from alibabacloud_fc20230330 import models as fc_models
from alibabacloud_fc20230330.client import Client
from alibabacloud_tea_openapi import models as open_api

from deployer.errors import (
    FCAccessDenied,
    FCAlreadyExists,
    FCConflict,
    FCInvalidArgument,
    FCNotFound,
    FCServerError,
    FCThrottled,
    FCUnreachable,
)
from deployer.fc import spec
from deployer.fc.gateway import FCGateway, function_readiness, make_client
from deployer.settings import Settings
from schemas import DeployRequest
from tests.conftest import wait_until


def gateway_for(fc, *, max_attempts: int = 8, delays: list[float] | None = None, **settings) -> FCGateway:
    client = make_client(Settings(fc_endpoint=fc.url, fc_read_timeout_s=5, **settings))
    record = delays.append if delays is not None else (lambda _s: None)
    return FCGateway(
        client, max_attempts=max_attempts, backoff_initial_s=0.01, backoff_max_s=0.05, sleep=record
    )


def request(name: str = "mcp-test1", **overrides) -> DeployRequest:
    return DeployRequest.model_validate(
        {
            "name": name,
            "image": "registry.cn-beijing.aliyuncs.com/biyao/public:python-mcp-server-sentry-2025.1.14-v7",
            "command": ["mcp-server-sentry", "--auth-token", "tok"],
            "env": {"a": "b"},
            "auth": {"type": "anonymous"},
            **overrides,
        }
    )


def deploy(gw: FCGateway, req: DeployRequest):
    fn, how = gw.create_or_update_function(spec.create_function_input(req), spec.update_function_input(req))
    auth = spec.EndpointAuth()
    trig, _ = gw.create_or_update_trigger(
        req.name, spec.create_trigger_input(req, auth), spec.update_trigger_input(req, auth)
    )
    return fn, trig, how


def test_create_wait_active_and_trigger_url(fc):
    gw = gateway_for(fc)
    req = request()
    fn, how = gw.create_or_update_function(spec.create_function_input(req), spec.update_function_input(req))
    assert how == "created" and fn["statusCode"] == 200
    body = fn["body"]
    assert body["functionName"] == "mcp-test1" and body["runtime"] == "custom-container"
    assert body["customContainerConfig"]["command"][:5] == [
        "mcp-fc-bridge",
        "--port",
        "8080",
        "--host",
        "0.0.0.0",
    ]
    assert function_readiness(gw.get_function("mcp-test1")["body"])[0] == "pending"
    wait_until(lambda: function_readiness(gw.get_function("mcp-test1")["body"])[0] == "ready")
    assert gw.get_function("mcp-test1")["body"]["state"] == "Active"
    trig, how = gw.create_or_update_trigger(
        "mcp-test1",
        spec.create_trigger_input(req, spec.EndpointAuth()),
        spec.update_trigger_input(req, spec.EndpointAuth()),
    )
    assert how == "created"
    assert trig["body"]["httpTrigger"]["urlInternet"].startswith("http://127.0.0.1:")
    assert set(trig) >= {"headers", "statusCode", "body"}


def test_second_deploy_updates_in_place_and_keeps_the_url(fc):
    gw = gateway_for(fc)
    _, trig1, how1 = deploy(gw, request())
    _, trig2, how2 = deploy(gw, request(image="registry.cn-beijing.aliyuncs.com/biyao/public:v8"))
    assert (how1, how2) == ("created", "updated")
    assert trig1["body"]["httpTrigger"]["urlInternet"] == trig2["body"]["httpTrigger"]["urlInternet"]
    assert gw.get_function("mcp-test1")["body"]["customContainerConfig"]["image"].endswith(":v8")
    assert fc.faults.stats()["calls"].get("UpdateTrigger", 0) == 0, (
        "unchanged trigger config is not rewritten"
    )


def test_changed_trigger_config_is_updated(fc):
    gw = gateway_for(fc)
    deploy(gw, request(transport="sse"))
    req = request(transport="streamable-http")
    _, how = gw.create_or_update_trigger(
        req.name,
        spec.create_trigger_input(req, spec.EndpointAuth()),
        spec.update_trigger_input(req, spec.EndpointAuth()),
    )
    assert how == "updated"
    config = json.loads(gw.get_trigger(req.name, "http")["body"]["triggerConfig"])
    assert "DELETE" in config["methods"]


def static_client(fc, access_key_id: str, access_key_secret: str) -> Client:
    return Client(
        open_api.Config(
            access_key_id=access_key_id,
            access_key_secret=access_key_secret,
            endpoint=fc.endpoint,
            protocol="http",
        )
    )


def test_wrong_secret_is_signature_not_match(fc):
    with pytest.raises(FCAccessDenied) as info:
        FCGateway(static_client(fc, "test-ak", "wrong-secret"), max_attempts=3).get_function("x")
    assert info.value.code == "SignatureNotMatch" and info.value.status_code == 403
    with pytest.raises(FCAccessDenied) as info:
        FCGateway(static_client(fc, "unknown-ak", "wrong-secret"), max_attempts=3).get_function("x")
    assert info.value.code == "InvalidAccessKeyID"
    assert "wrong-secret" not in str(info.value)
    assert fc.faults.stats()["calls"].get("GetFunction", 0) <= 2, "auth errors are not retried"


def test_error_codes_map_to_the_hierarchy(fc):
    gw = gateway_for(fc)
    req = request()
    gw.create_function(spec.create_function_input(req))
    with pytest.raises(FCAlreadyExists) as info:
        gw.create_function(spec.create_function_input(req))
    assert (
        info.value.code == "FunctionAlreadyExists" and info.value.status_code == 409 and info.value.request_id
    )
    with pytest.raises(FCNotFound) as info:
        gw.get_function("missing")
    assert info.value.code == "FunctionNotFound" and info.value.status_code == 404
    with pytest.raises(FCNotFound) as info:
        gw.get_trigger("mcp-test1", "http")
    assert info.value.code == "TriggerNotFound"
    gw.create_trigger("mcp-test1", spec.create_trigger_input(req, spec.EndpointAuth()))
    with pytest.raises(FCAlreadyExists) as info:
        gw.create_trigger("mcp-test1", spec.create_trigger_input(req, spec.EndpointAuth()))
    assert info.value.code == "TriggerAlreadyExists"
    with pytest.raises(FCConflict) as info:
        gw.delete_function("mcp-test1")
    assert info.value.code == "FunctionNotEmpty"
    assert gw.delete_function_and_triggers("mcp-test1") is True
    assert gw.delete_function("mcp-test1") is False, "deleting what is gone counts as done"


def test_invalid_argument_is_not_retried(fc):
    gw = gateway_for(fc)
    body = spec.create_function_input(request())
    body.memory_size = 100  # past the schema, straight to FC
    with pytest.raises(FCInvalidArgument) as info:
        gw.create_function(body)
    assert info.value.code == "InvalidArgument" and info.value.status_code == 400
    assert "memory" in info.value.message.lower()
    assert fc.faults.stats()["calls"]["CreateFunction"] == 1


def test_throttling_is_retried_honouring_retry_after(fc):
    delays: list[float] = []
    gw = gateway_for(fc, delays=delays)
    fc.faults.set("GetFunction", throttle_rate=1.0, retry_after=40, count=2)
    gw.create_function(spec.create_function_input(request()))
    assert gw.get_function("mcp-test1")["statusCode"] == 200
    assert fc.faults.stats()["calls"]["GetFunction"] == 3
    assert len(delays) == 2 and all(d >= 0.04 for d in delays), delays


def test_persistent_throttling_surfaces_as_throttled(fc):
    gw = gateway_for(fc, max_attempts=3)
    fc.faults.set("GetFunction", throttle_rate=1.0)
    with pytest.raises(FCThrottled) as info:
        gw.get_function("x")
    assert info.value.retryable and info.value.retry_after is not None
    assert fc.faults.stats()["calls"]["GetFunction"] == 3


def test_server_errors_are_retried_then_surface(fc):
    gw = gateway_for(fc, max_attempts=3)
    fc.faults.set("GetFunction", error_rate=1.0, error_status=503, error_code="ServiceUnavailable", count=2)
    with pytest.raises(FCNotFound):
        gw.get_function("x")  # two 503s, then the real answer
    fc.faults.set("GetFunction", error_rate=1.0)
    with pytest.raises(FCServerError) as info:
        gw.get_function("x")
    assert info.value.status_code == 500 and info.value.retryable


def test_unreachable_endpoint_is_typed_and_quick():
    gw = FCGateway(
        make_client(Settings(fc_endpoint="http://127.0.0.1:9", fc_connect_timeout_s=1, fc_read_timeout_s=1)),
        max_attempts=2,
        backoff_initial_s=0.01,
        backoff_max_s=0.01,
    )
    with pytest.raises(FCUnreachable) as info:
        gw.get_function("x")
    assert info.value.retryable and "secret" not in str(info.value).lower()


def test_lost_create_response_still_converges_to_one_function(fc):
    gw = gateway_for(fc)
    fc.faults.set("CreateFunction", lose_response_rate=1.0, count=1)
    fc.faults.set("CreateTrigger", lose_response_rate=1.0, count=1)
    _, trig, how = deploy(gw, request())
    assert how == "updated", "the lost create committed, so the retry found it and updated"
    assert trig["body"]["httpTrigger"]["urlInternet"]
    functions = gw.list_functions()
    assert [f["functionName"] for f in functions] == ["mcp-test1"]
    assert len(gw.list_triggers("mcp-test1")) == 1


def test_fault_mix_converges_to_exactly_one_function_and_trigger_each(fc):
    """30% throttling, 10% 5xx and lost create responses: every name ends with one function, one trigger."""
    gw = gateway_for(fc, max_attempts=30)
    fc.faults.configure(
        {
            "*": {"throttle_rate": 0.3, "error_rate": 0.1, "retry_after": 1, "seed": 7},
            "CreateFunction": {
                "throttle_rate": 0.3,
                "error_rate": 0.1,
                "lose_response_rate": 0.5,
                "seed": 11,
            },
            "CreateTrigger": {"throttle_rate": 0.3, "error_rate": 0.1, "lose_response_rate": 0.5, "seed": 13},
        }
    )
    names = [f"mcp-fault-{i}" for i in range(24)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda n: deploy(gw, request(n)), names))
    # and again (a redeploy of every name under the same faults)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: deploy(gw, request(n, env={"a": "c"})), names))
    fc.faults.clear()
    functions = gw.list_functions(prefix="mcp-fault-")
    assert sorted(f["functionName"] for f in functions) == sorted(names)
    for name in names:
        triggers = gw.list_triggers(name)
        assert len(triggers) == 1, (name, triggers)
        assert gw.get_function(name)["body"]["environmentVariables"] == {"a": "c"}
    stats = fc.faults.stats()
    assert stats["total_faults"] > 50, stats  # the mix really fired
    assert all(r[1]["body"]["httpTrigger"]["urlInternet"] for r in results)


def test_list_functions_paginates(fc):
    gw = gateway_for(fc)
    for i in range(7):
        gw.create_function(spec.create_function_input(request(f"page-{i}")))
    assert len(gw.list_functions(prefix="page-", page_size=3)) == 7


def test_async_and_sync_share_the_wire_format(fc):
    """The SDK's create input serialises triggerConfig as a JSON string, as FC expects."""
    req = request()
    body = spec.create_trigger_input(req, spec.EndpointAuth()).to_map()
    assert isinstance(body["triggerConfig"], str)
    assert fc_models.CreateTriggerInput().from_map(body).trigger_config == body["triggerConfig"]
