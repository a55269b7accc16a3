"""FC error codes, statuses and validation, as the real SDK surfaces them."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest
from alibabacloud_fc20230330 import models as fc
from alibabacloud_tea_openapi.exceptions import ClientException

from fc_emulator import signing


def _raises(call, *args) -> ClientException:
    with pytest.raises(ClientException) as info:
        call(*args)
    return info.value


def test_wrong_secret_is_signature_not_match(emulator, make_client):
    bad = make_client(emulator, access_key_secret="not-the-secret")
    err = _raises(bad.get_function, "x", fc.GetFunctionRequest())
    assert (err.code, err.status_code) == ("SignatureNotMatch", 403)
    assert err.request_id and err.request_id != "None"


def test_unknown_access_key_id(emulator, make_client):
    bad = make_client(emulator, access_key_id="who-is-this")
    err = _raises(bad.list_functions, fc.ListFunctionsRequest())
    assert (err.code, err.status_code) == ("InvalidAccessKeyID", 403)


def test_sts_credentials_are_checked_against_the_same_key_pair(emulator, make_client):
    sts = make_client(emulator, security_token="sts-token")
    assert sts.list_functions(fc.ListFunctionsRequest()).status_code == 200
    bad = make_client(emulator, access_key_secret="nope", security_token="sts-token")
    assert _raises(bad.list_functions, fc.ListFunctionsRequest()).code == "SignatureNotMatch"


def test_duplicate_function(emulator, client, created, function_input):
    err = _raises(client.create_function, fc.CreateFunctionRequest(body=function_input(created)))
    assert (err.code, err.status_code) == ("FunctionAlreadyExists", 409)
    assert err.data["Message"] == f"function '{created}' already exists"
    assert err.data["RequestId"] == err.request_id


def test_function_not_found(emulator, client):
    for call, args in (
        (client.get_function, ("ghost", fc.GetFunctionRequest())),
        (client.update_function, ("ghost", fc.UpdateFunctionRequest(body=fc.UpdateFunctionInput(timeout=5)))),
        (client.delete_function, ("ghost",)),
        (client.list_triggers, ("ghost", fc.ListTriggersRequest())),
        (client.get_trigger, ("ghost", "http")),
    ):
        err = _raises(call, *args)
        assert (err.code, err.status_code) == ("FunctionNotFound", 404), call
    assert err.data["Message"] == "function 'ghost' does not exist."


def test_trigger_errors(emulator, client, created, http_trigger_input):
    client.create_trigger(created, fc.CreateTriggerRequest(body=http_trigger_input()))
    err = _raises(client.create_trigger, created, fc.CreateTriggerRequest(body=http_trigger_input()))
    assert (err.code, err.status_code) == ("TriggerAlreadyExists", 409)
    err = _raises(client.get_trigger, created, "nope")
    assert (err.code, err.status_code) == ("TriggerNotFound", 404)
    err = _raises(client.delete_trigger, created, "nope")
    assert err.code == "TriggerNotFound"
    update = fc.UpdateTriggerRequest(body=fc.UpdateTriggerInput(description="d"))
    err = _raises(client.update_trigger, created, "nope", update)
    assert err.code == "TriggerNotFound"


def test_delete_function_with_trigger_is_function_not_empty(emulator, client, created, http_trigger_input):
    client.create_trigger(created, fc.CreateTriggerRequest(body=http_trigger_input()))
    err = _raises(client.delete_function, created)
    assert (err.code, err.status_code) == ("FunctionNotEmpty", 412)
    assert "has active triggers" in err.data["Message"]
    assert client.get_function(created, fc.GetFunctionRequest()).body.function_name == created


ACR_EE = "myinst-registry-vpc.cn-hangzhou.cr.aliyuncs.com/ns/mcp:1"


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"memory_size": 100}, "memorySize"),
        ({"memory_size": 1000}, "memorySize"),
        ({"memory_size": 65536}, "memorySize"),
        ({"cpu": 0.33}, "cpu"),
        ({"cpu": 17.0}, "cpu"),
        ({"cpu": 4.0, "memory_size": 1024}, "cpu"),  # memory below 1:1
        ({"cpu": 0.05, "memory_size": 1024}, "cpu"),  # memory above 1:4
        ({"disk_size": 1024}, "diskSize"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": 86401}, "timeout"),
        ({"instance_concurrency": 201}, "instanceConcurrency"),
        ({"function_name": "9starts-with-digit"}, "functionName"),
        ({"function_name": "-dash"}, "functionName"),
        ({"function_name": "has.dot"}, "functionName"),
        ({"function_name": "x" * 65}, "functionName"),
        ({"function_name": "echo\n"}, "functionName"),  # `$` would accept the trailing newline
        ({"environment_variables": {"KEY\n": "x"}}, "environmentVariables"),
        (
            {"custom_container_config": fc.CustomContainerConfig(image="ns/img:1\n")},
            "customContainerConfig.image",
        ),
        (
            {"custom_container_config": fc.CustomContainerConfig(image="ns/img:vé")},
            "customContainerConfig.image",
        ),
        ({"runtime": None}, "runtime"),
        ({"handler": None}, "handler"),
        ({"handler": "h" * 129}, "handler"),
        ({"description": "d" * 257}, "description"),
        ({"environment_variables": {"1BAD": "x"}}, "environmentVariables"),
        ({"environment_variables": {"FC_RESERVED": "x"}}, "FC_"),
        ({"environment_variables": {"BIG": "x" * 4094}}, "environmentVariables"),
        ({"custom_container_config": fc.CustomContainerConfig(port=8080)}, "customContainerConfig.image"),
        ({"custom_container_config": None}, "customContainerConfig.image"),
        ({"custom_container_config": fc.CustomContainerConfig(image=ACR_EE)}, "acrInstanceId"),
        ({"session_affinity": "STICKY"}, "sessionAffinity"),
        ({"session_affinity_config": "not json"}, "sessionAffinityConfig"),
        ({"session_affinity_config": "[1, 2]"}, "sessionAffinityConfig"),
        (
            {
                "session_affinity_config": json.dumps(
                    {"sseEndpointPath": "/sse", "sessionConcurrencyPerInstance": 500}
                )
            },
            "sessionConcurrencyPerInstance",
        ),
        ({"session_affinity_config": json.dumps({"sseEndpointPath": 7})}, "sseEndpointPath"),
        # values no public source shows FC taking (audit rows 16-18)
        ({"session_affinity": "MCP_STREAMABLE"}, "sessionAffinity"),
        (
            {"session_affinity_config": json.dumps({"sseEndpointPath": "/sse", "sessionTTLInSeconds": 60})},
            "sessionTTLInSeconds",
        ),
        # more sessions than concurrent requests per instance (the fixture has instanceConcurrency 20)
        (
            {
                "session_affinity_config": json.dumps(
                    {"sseEndpointPath": "/sse", "sessionConcurrencyPerInstance": 21}
                )
            },
            "exceeds instanceConcurrency",
        ),
        # counted as serialized JSON: {"BIG": "..."} is 11 bytes more than the value
        ({"environment_variables": {"BIG": "x" * 4086}}, "environmentVariables"),
    ],
)
def test_create_function_validation(emulator, client, function_input, overrides, field):
    err = _raises(client.create_function, fc.CreateFunctionRequest(body=function_input(**overrides)))
    assert (err.code, err.status_code) == ("InvalidArgument", 400)
    assert field in err.data["Message"], err.data["Message"]
    assert emulator.backend.snapshot()["functions"] == {}


@pytest.mark.parametrize(
    "overrides",
    [
        {"custom_container_config": fc.CustomContainerConfig(image=ACR_EE, acr_instance_id="cri-abc")},
        {"environment_variables": {"OK_1": "x" * 4000}},
        {"cpu": 0.25, "memory_size": 1024},  # exactly 1:4
        {"cpu": 2.0, "memory_size": 2048},  # exactly 1:1
        {
            "session_affinity": "GENERATED_COOKIE",
            "session_affinity_config": json.dumps(
                {"sessionConcurrencyPerInstance": 20, "sessionTTLInSeconds": 3600}
            ),
        },
        {"environment_variables": {"BIG": "x" * 4085}},
        {"memory_size": 128, "cpu": None},  # cpu defaulted from memory
    ],
)
def test_create_function_accepts_valid_edge_cases(emulator, client, function_input, overrides):
    resp = client.create_function(fc.CreateFunctionRequest(body=function_input(**overrides)))
    assert resp.status_code == 200


def test_update_is_validated_on_the_merged_function(emulator, client, created):
    # cpu alone would break the 1:4 ratio with the stored 1024 MB
    err = _raises(
        client.update_function, created, fc.UpdateFunctionRequest(body=fc.UpdateFunctionInput(cpu=0.1))
    )
    assert err.code == "InvalidArgument" and "cpu" in err.data["Message"]
    assert client.get_function(created, fc.GetFunctionRequest()).body.cpu == 0.5


def _trigger(name="http", ttype="http", config=None, qualifier="LATEST"):
    return fc.CreateTriggerInput(
        trigger_name=name,
        trigger_type=ttype,
        qualifier=qualifier,
        trigger_config=config if isinstance(config, str) or config is None else json.dumps(config),
    )


@pytest.mark.parametrize(
    "trigger, field",
    [
        (_trigger(name="1bad", config={"methods": ["GET"]}), "triggerName"),
        (_trigger(name="http\n", config={"methods": ["GET"]}), "triggerName"),
        (_trigger(ttype=None, config={"methods": ["GET"]}), "triggerType"),
        (_trigger(ttype="carrier-pigeon", config={"methods": ["GET"]}), "triggerType"),
        (_trigger(config=None), "triggerConfig"),
        (_trigger(config="{not json"), "triggerConfig"),
        (_trigger(config={"methods": ["GET", "BREW"]}), "methods"),
        (_trigger(config={"methods": []}), "methods"),
        (_trigger(config={"methods": ["GET"], "authType": "magic"}), "authType"),
        (_trigger(config={"methods": ["GET"], "authType": "jwt"}), "authConfig"),
        (
            _trigger(config={"methods": ["GET"], "authType": "jwt", "authConfig": {"jwks": {"keys": []}}}),
            "jwks",
        ),
        (
            _trigger(config={"methods": ["GET"], "authType": "bearer", "authConfig": {"tokens": ["t" * 40]}}),
            "wire format is not public",
        ),
    ],
)
def test_create_trigger_validation(emulator, client, created, trigger, field):
    err = _raises(client.create_trigger, created, fc.CreateTriggerRequest(body=trigger))
    assert (err.code, err.status_code) == ("InvalidArgument", 400)
    assert field in err.data["Message"], err.data["Message"]


def test_jwt_trigger_with_keys_is_accepted(emulator, client, created):
    config = {
        "methods": ["GET", "POST"],
        "authType": "jwt",
        "authConfig": {
            "jwks": {"keys": [{"kty": "RSA", "alg": "RS256", "n": "abc", "e": "AQAB"}]},
            "tokenLookup": "header:Authorization:Bearer",
            "claimPassBy": "query::",
        },
    }
    body = client.create_trigger(created, fc.CreateTriggerRequest(body=_trigger(config=config))).body
    assert json.loads(body.trigger_config)["authType"] == "jwt"


def test_one_http_trigger_per_qualifier_and_ten_triggers_max(emulator, client, created):
    client.create_trigger(created, fc.CreateTriggerRequest(body=_trigger("a", config={"methods": ["GET"]})))
    err = _raises(
        client.create_trigger,
        created,
        fc.CreateTriggerRequest(body=_trigger("b", config={"methods": ["GET"]})),
    )
    assert err.code == "InvalidArgument" and "only one" in err.data["Message"]
    for i in range(9):
        timer = _trigger(f"t{i}", "timer", {"cronExpression": "@every 1m"})
        client.create_trigger(created, fc.CreateTriggerRequest(body=timer))
    err = _raises(
        client.create_trigger,
        created,
        fc.CreateTriggerRequest(body=_trigger("t10", "timer", {"cronExpression": "@every 1m"})),
    )
    assert err.code == "InvalidArgument" and "10" in err.data["Message"]


def test_list_limit_out_of_range(emulator, client):
    for limit in (0, 101):
        err = _raises(client.list_functions, fc.ListFunctionsRequest(limit=limit))
        assert err.code == "InvalidArgument" and "limit" in err.data["Message"]
    err = _raises(client.list_functions, fc.ListFunctionsRequest(next_token="!!!not-a-token"))
    assert err.code == "InvalidArgument"


def _signed(emulator, method, path, *, query="", body=b"", action="GetFunction", version="2023-03-30"):
    headers = {
        "host": emulator.endpoint,
        "x-acs-version": version,
        "x-acs-action": action,
        "x-acs-date": "2026-01-01T00:00:00Z",
        "x-acs-signature-nonce": "n1",
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
        "accept": "application/json",
    }
    headers["Authorization"] = signing.sign(
        method, path, query, headers, body, emulator.access_key_id, emulator.access_key_secret
    )
    url = f"{emulator.url}{path}" + (f"?{query}" if query else "")
    return httpx.request(method, url, headers=headers, content=body)


def test_unknown_path_is_path_not_supported_json(emulator):
    for method, path in (
        ("GET", "/2023-03-30/nothing"),
        ("POST", "/2023-03-30/functions/x"),
        ("GET", "/"),
        ("PATCH", "/2023-03-30/functions"),
    ):
        r = httpx.request(method, emulator.url + path)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/json"
        assert r.headers["x-fc-request-id"]
        body = r.json()
        assert body["Code"] == "PathNotSupported" and body["RequestId"] == r.headers["x-fc-request-id"]


def test_missing_authorization_is_signature_not_match(emulator):
    r = httpx.get(f"{emulator.url}/2023-03-30/functions")
    assert r.status_code == 403 and r.json()["Code"] == "SignatureNotMatch"
    r = httpx.get(f"{emulator.url}/2023-03-30/functions", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 403 and r.json()["Code"] == "SignatureNotMatch"


def test_action_and_version_headers_are_checked(emulator):
    ok = _signed(emulator, "GET", "/2023-03-30/functions/ghost")
    assert ok.status_code == 404 and ok.json()["Code"] == "FunctionNotFound"
    wrong_action = _signed(emulator, "GET", "/2023-03-30/functions/ghost", action="ListFunctions")
    assert wrong_action.status_code == 400 and wrong_action.json()["Code"] == "InvalidArgument"
    assert "x-acs-action" in wrong_action.json()["Message"]
    wrong_version = _signed(emulator, "GET", "/2023-03-30/functions/ghost", version="2021-04-06")
    assert wrong_version.status_code == 400 and "x-acs-version" in wrong_version.json()["Message"]


def test_invalid_json_body(emulator):
    r = _signed(emulator, "POST", "/2023-03-30/functions", body=b"{oops", action="CreateFunction")
    assert r.status_code == 400 and r.json()["Code"] == "InvalidArgument"
