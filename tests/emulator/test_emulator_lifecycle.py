"""Functions and triggers through the real SDK: shapes, state transitions, HTTP trigger listeners."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import httpx
import pytest
from alibabacloud_fc20230330 import models as fc

from fc_emulator.runtime import DEFAULT_START_TIMEOUT_S

# The stored result of a real deploy against Alibaba Cloud (a copy of shared/data/fc-deploy-result-example.json).
EXAMPLE_FILE = Path(__file__).resolve().parents[1] / "data/fc-deploy-result-example.json"
EXAMPLE = json.loads(EXAMPLE_FILE.read_text())

ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _image(repo_tag: str) -> fc.CustomContainerConfig:
    return fc.CustomContainerConfig(image=f"registry.cn-hangzhou.aliyuncs.com/ns/{repo_tag}")


def _trigger_url(client, function_name: str, trigger: fc.CreateTriggerInput) -> str:
    resp = client.create_trigger(function_name, fc.CreateTriggerRequest(body=trigger))
    return resp.body.http_trigger.url_internet


def _get(client, name: str) -> fc.Function:
    return client.get_function(name, fc.GetFunctionRequest()).body


def test_create_function_echoes_input_and_adds_outputs(emulator, client, function_input):
    resp = client.create_function(fc.CreateFunctionRequest(body=function_input()))
    assert resp.status_code == 200
    body = resp.to_map()["body"]
    assert body["functionName"] == "mcp-weather"
    assert body["runtime"] == "custom-container"
    assert body["handler"] == "index.handler"
    assert (body["cpu"], body["memorySize"], body["diskSize"], body["timeout"]) == (0.5, 1024, 512, 600)
    assert body["instanceConcurrency"] == 20
    assert body["environmentVariables"] == {"MCP_TRANSPORT": "sse"}
    assert body["sessionAffinity"] == "MCP_SSE"
    assert json.loads(body["sessionAffinityConfig"]) == {
        "sseEndpointPath": "/sse",
        "sessionConcurrencyPerInstance": 20,
    }
    ccc = body["customContainerConfig"]
    assert ccc["image"] == "registry.cn-hangzhou.aliyuncs.com/ns/mcp-weather:1.0"
    assert ccc["port"] == 8080
    assert ccc["command"][0] == "mcp-proxy"
    assert re.fullmatch(
        r"registry\.cn-hangzhou\.aliyuncs\.com/ns/mcp-weather@sha256:[0-9a-f]{64}", ccc["resolvedImageUri"]
    )
    assert re.fullmatch(r"[0-9a-f-]{36}", body["functionId"])
    assert body["functionArn"] == "acs:fc:cn-hangzhou:1234567890123456:functions/mcp-weather"
    assert ISO_RE.match(body["createdTime"]) and ISO_RE.match(body["lastModifiedTime"])
    assert body["codeSize"] == 0 and body["codeChecksum"] == ""
    assert body["internetAccess"] is True
    assert body["instanceIsolationMode"] == "SHARE"
    # the SDK drops fields its model lacks: read the raw wire body through the control API
    raw = httpx.get(f"{emulator.url}/_emulator/state").json()["functions"]["mcp-weather"]
    assert raw["version"] == "LATEST" and raw["functionId"] == body["functionId"]
    headers = resp.headers
    assert headers["content-type"].startswith("application/json")
    assert re.fullmatch(r"1-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{12}", headers["x-fc-request-id"])
    assert headers["etag"] and headers["date"]


def test_resolved_image_digest_is_deterministic(emulator, client, function_input):
    a = client.create_function(fc.CreateFunctionRequest(body=function_input("a"))).body
    b = client.create_function(fc.CreateFunctionRequest(body=function_input("b"))).body
    assert a.custom_container_config.resolved_image_uri == b.custom_container_config.resolved_image_uri


def test_function_and_trigger_bodies_have_the_real_fc_keys(
    emulator, client, function_input, http_trigger_input
):
    """Every key a real FC deploy returned with a value is present in the emulator's answer."""
    client.create_function(fc.CreateFunctionRequest(body=function_input()))
    client.create_trigger("mcp-weather", fc.CreateTriggerRequest(body=http_trigger_input()))
    # raw wire shapes (the SDK's to_map() drops fields its models lack, e.g. ``version``)
    state = httpx.get(f"{emulator.url}/_emulator/state").json()
    fn = state["functions"]["mcp-weather"]
    tr = state["triggers"]["mcp-weather"]["http"]
    real_fn = EXAMPLE["function_result"]["body"]
    real_tr = EXAMPLE["trigger_result"]["body"]
    # Keys the example has with non-null values, minus configs the test function does not set.
    unset = {"vpcConfig", "logConfig", "tracingConfig", "nasConfig", "ossMountConfig", "disableOndemand"}
    for key, value in real_fn.items():
        if value is not None and key not in unset:
            assert key in fn, key
    for key, value in real_tr.items():
        if value is not None:
            assert key in tr, key
    assert set(tr["httpTrigger"]) == set(real_tr["httpTrigger"])


def test_new_function_is_pending_then_active(emulator, client, function_input, wait_until):
    body = client.create_function(fc.CreateFunctionRequest(body=function_input())).body
    assert (body.state, body.state_reason_code) == ("Pending", "Creating")
    assert _get(client, "mcp-weather").state == "Pending"
    active = wait_until(lambda: (f := _get(client, "mcp-weather")).state == "Active" and f)
    assert active.state_reason_code in ("", None)


def test_update_is_in_progress_then_successful_and_patch_like(emulator, client, created, wait_until):
    wait_until(lambda: _get(client, created).state == "Active")
    before = _get(client, created)
    update = fc.UpdateFunctionInput(
        environment_variables={"MCP_TRANSPORT": "sse", "NEW": "1"},
        custom_container_config=fc.CustomContainerConfig(
            image="registry.cn-hangzhou.aliyuncs.com/ns/mcp:2.0", port=9000
        ),
    )
    body = client.update_function(created, fc.UpdateFunctionRequest(body=update)).body
    assert body.state == "Active"
    assert body.last_update_status == "InProgress"
    # Only the fields sent changed; the container config was replaced as a whole.
    assert body.environment_variables == {"MCP_TRANSPORT": "sse", "NEW": "1"}
    assert body.timeout == 600 and body.session_affinity == "MCP_SSE" and body.memory_size == 1024
    assert body.custom_container_config.image.endswith("mcp:2.0")
    assert body.custom_container_config.command is None
    assert (
        body.custom_container_config.resolved_image_uri != before.custom_container_config.resolved_image_uri
    )
    assert body.function_id == before.function_id and body.created_time == before.created_time
    done = wait_until(lambda: (f := _get(client, created)).last_update_status == "Successful" and f)
    assert done.state == "Active"


def test_failed_image_ends_in_failed_state(emulator, client, function_input, wait_until):
    emulator.backend.configure(fail_images=["broken"])
    client.create_function(
        fc.CreateFunctionRequest(body=function_input("bad", custom_container_config=_image("broken:1")))
    )
    failed = wait_until(lambda: (f := _get(client, "bad")).state != "Pending" and f)
    assert failed.state == "Failed"
    assert "broken" in failed.state_reason and failed.state_reason_code
    # A good image brings it up; a bad update reports lastUpdateStatus Failed.
    good = fc.UpdateFunctionInput(custom_container_config=_image("ok:1"))
    client.update_function("bad", fc.UpdateFunctionRequest(body=good))
    fixed = wait_until(lambda: (f := _get(client, "bad")).last_update_status == "Successful" and f)
    assert fixed.state == "Active"
    bad = fc.UpdateFunctionInput(custom_container_config=_image("broken:2"))
    client.update_function("bad", fc.UpdateFunctionRequest(body=bad))
    upd = wait_until(lambda: (f := _get(client, "bad")).last_update_status != "InProgress" and f)
    assert upd.last_update_status == "Failed" and "broken" in upd.last_update_status_reason


def test_fail_images_via_control_api(emulator, client, function_input):
    r = httpx.put(f"{emulator.url}/_emulator/config", json={"fail_images": ["nope"], "pending_seconds": 0})
    assert r.status_code == 200 and r.json() == {
        "fail_images": ["nope"],
        "pending_seconds": 0.0,
        "runtime": False,
        "start_timeout_s": DEFAULT_START_TIMEOUT_S,
        "idle_timeout_s": 600.0,
    }
    body = client.create_function(
        fc.CreateFunctionRequest(
            body=function_input(
                custom_container_config=fc.CustomContainerConfig(image="r.example.com/ns/nope:1")
            )
        )
    ).body
    assert body.state == "Failed"


def test_http_trigger_gets_its_own_listening_origin(
    emulator, client, created, function_input, http_trigger_input
):
    resp = client.create_trigger(created, fc.CreateTriggerRequest(body=http_trigger_input()))
    body = resp.body
    url = body.http_trigger.url_internet
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), url
    assert body.http_trigger.url_intranet == url
    assert body.trigger_type == "http" and body.qualifier == "LATEST"
    assert json.loads(body.trigger_config)["methods"] == ["GET", "POST", "DELETE", "OPTIONS"]
    assert url != emulator.url
    r = httpx.get(url + "/sse")
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["Code"] == "FunctionNotReady" and r.status_code == 503
    assert r.headers["x-fc-request-id"]
    # methods are enforced
    r = httpx.put(url + "/messages/?session_id=abc")
    assert r.status_code == 405 and r.json()["Code"] == "MethodNotAllowed"
    # a second trigger (other function) gets another origin
    client.create_function(fc.CreateFunctionRequest(body=function_input("other")))
    other = client.create_trigger("other", fc.CreateTriggerRequest(body=http_trigger_input())).body
    assert other.http_trigger.url_internet != url


def test_trigger_url_survives_update_and_listener_closes_on_delete(
    emulator, client, created, http_trigger_input
):
    url = _trigger_url(client, created, http_trigger_input())
    new_config = json.dumps({"authType": "anonymous", "methods": ["GET", "PUT"]})
    upd = fc.UpdateTriggerInput(trigger_config=new_config, description="changed")
    body = client.update_trigger(created, "http", fc.UpdateTriggerRequest(body=upd)).body
    assert body.http_trigger.url_internet == url
    assert body.description == "changed"
    assert httpx.put(url + "/x").status_code == 503  # PUT is now allowed, POST is not
    assert httpx.post(url + "/x").status_code == 405
    got = client.get_trigger(created, "http").body
    assert got.http_trigger.url_internet == url
    assert json.loads(got.trigger_config)["methods"] == ["GET", "PUT"]
    port = int(url.rsplit(":", 1)[1])
    client.delete_trigger(created, "http")
    with pytest.raises(httpx.TransportError):
        httpx.get(url, timeout=2)
    with socket.socket() as sock:  # the port is really released (TIME_WAIT needs SO_REUSEADDR)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()


def test_reset_closes_trigger_listeners(emulator, client, created, http_trigger_input):
    url = _trigger_url(client, created, http_trigger_input())
    assert httpx.get(url).status_code == 503
    assert httpx.post(f"{emulator.url}/_emulator/reset").json() == {"reset": True}
    with pytest.raises(httpx.TransportError):
        httpx.get(url, timeout=2)
    assert httpx.get(f"{emulator.url}/_emulator/state").json() == {"functions": {}, "triggers": {}}


def test_delete_function_and_trigger_return_204(emulator, client, created, http_trigger_input):
    client.create_trigger(created, fc.CreateTriggerRequest(body=http_trigger_input()))
    r = client.delete_trigger(created, "http")
    assert r.status_code == 204 and r.headers["x-fc-request-id"]
    r = client.delete_function(created)
    assert r.status_code == 204
    assert created not in emulator.backend.snapshot()["functions"]


def test_list_triggers(emulator, client, created, http_trigger_input):
    client.create_trigger(created, fc.CreateTriggerRequest(body=http_trigger_input("http")))
    timer = fc.CreateTriggerInput(
        trigger_name="tick",
        trigger_type="timer",
        trigger_config=json.dumps({"cronExpression": "@every 1m", "enable": True}),
    )
    body = client.create_trigger(created, fc.CreateTriggerRequest(body=timer)).body
    assert body.http_trigger is None
    page = client.list_triggers(created, fc.ListTriggersRequest(limit=1)).body
    assert [t.trigger_name for t in page.triggers] == ["http"] and page.next_token
    page2 = client.list_triggers(created, fc.ListTriggersRequest(limit=1, next_token=page.next_token)).body
    assert [t.trigger_name for t in page2.triggers] == ["tick"] and not page2.next_token


def test_list_functions_paginates(emulator, client, function_input):
    names = [f"fn-{i:02d}" for i in range(7)] + ["other-1"]
    for name in names:
        client.create_function(fc.CreateFunctionRequest(body=function_input(name)))
    seen, token, pages = [], None, 0
    while True:
        body = client.list_functions(fc.ListFunctionsRequest(prefix="fn-", limit=3, next_token=token)).body
        pages += 1
        seen += [f.function_name for f in body.functions]
        token = body.next_token
        if not token:
            break
    assert seen == sorted(n for n in names if n.startswith("fn-"))
    assert pages == 3
    everything = client.list_functions(fc.ListFunctionsRequest(limit=100)).body
    assert [f.function_name for f in everything.functions] == sorted(names)
    assert not everything.next_token
    raw = client.list_functions(fc.ListFunctionsRequest(limit=100)).to_map()["body"]
    assert "nextToken" not in raw or not raw["nextToken"]


def test_list_functions_default_limit_is_20(emulator, client, function_input):
    for i in range(21):
        client.create_function(fc.CreateFunctionRequest(body=function_input(f"f{i:02d}")))
    body = client.list_functions(fc.ListFunctionsRequest()).body
    assert len(body.functions) == 20 and body.next_token


def test_other_client_sees_same_state(emulator, client, created, make_client):
    other = make_client(emulator)
    assert other.get_function(created, fc.GetFunctionRequest()).body.function_name == created
