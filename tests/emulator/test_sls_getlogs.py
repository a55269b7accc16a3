"""The emulator's Simple Log Service GetLogs, called with the official SLS SDK (alibabacloud-sls20201230):
the cloud path of `mcp-fc logs`. The lines are what a function's instance really printed."""

from __future__ import annotations

import hashlib
import json
import sys
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest
from alibabacloud_fc20230330 import models as fc
from alibabacloud_sls20201230 import models as sls_models
from alibabacloud_sls20201230.client import Client as SLSClient
from alibabacloud_tea_openapi import models as open_api
from Tea.exceptions import TeaException

from fc_emulator import EmulatorServer
from fc_emulator import sls as emulator_sls
from fc_emulator.logstore import LogStore

ECHO = str(Path(__file__).with_name("echo_function.py"))
AK, SK = "sls-ak", "sls-secret"


@pytest.fixture(scope="module")
def server():
    emulator = EmulatorServer(port=0, access_key_id=AK, access_key_secret=SK, pending_seconds=0).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def rt(server):
    server.reset()
    return server


def sls_client(server: EmulatorServer, key: str = AK, secret: str = SK) -> SLSClient:
    # SLS sends to {project}.{endpoint}; a loopback address cannot carry that subdomain, so the emulator
    # is the HTTP proxy too and reads the project from the absolute-form request, as SLS reads Host.
    return SLSClient(
        open_api.Config(
            access_key_id=key,
            access_key_secret=secret,
            endpoint=server.endpoint,
            protocol="http",
            http_proxy=server.url,
        )
    )


def get_logs(client: SLSClient, project: str, logstore: str, **body):
    request = sls_models.GetLogsRequest(**{"from_": 0, "to": 2**31 - 1, **body})
    return client.get_logs(project, logstore, request)


def deploy_echo(server: EmulatorServer, name: str = "echo", log: dict | None = None) -> str:
    from alibabacloud_fc20230330.client import Client

    sdk = Client(
        open_api.Config(access_key_id=AK, access_key_secret=SK, endpoint=server.endpoint, protocol="http")
    )
    body = fc.CreateFunctionInput(
        function_name=name,
        runtime="custom-container",
        handler="index.handler",
        memory_size=512,
        timeout=30,
        custom_container_config=fc.CustomContainerConfig(
            image="registry.cn-hangzhou.aliyuncs.com/ns/echo:1",
            port=9000,
            command=[sys.executable, ECHO, "--port", "9000", "--host", "0.0.0.0"],
        ),
        log_config=fc.LogConfig(**log) if log else None,
    )
    sdk.create_function(fc.CreateFunctionRequest(body=body))
    trigger = fc.CreateTriggerInput(
        trigger_name="http",
        trigger_type="http",
        qualifier="LATEST",
        trigger_config=json.dumps({"authType": "anonymous", "methods": ["GET", "POST"]}),
    )
    return sdk.create_trigger(name, fc.CreateTriggerRequest(body=trigger)).body.http_trigger.url_internet


def test_getlogs_returns_what_the_instance_wrote_to_stderr(rt, wait_until):
    url = deploy_echo(rt, log={"project": "my-proj", "logstore": "mcp-logs"})
    assert httpx.get(f"{url}/pid?marker=seen-by-sls", timeout=30).status_code == 200
    [instance] = httpx.get(f"{rt.url}/_emulator/instances").json()["instances"]
    client = sls_client(rt)

    def found(project, logstore):
        data = get_logs(client, project, logstore, query='functionName: "echo"').body.data
        return [d for d in data if "seen-by-sls" in d["message"]]

    # echo_function.py logs each request on stderr; it reaches SLS a moment after the answer
    [log] = wait_until(lambda: found("my-proj", "mcp-logs"), what="the request line in SLS")
    assert log["stream"] == "stderr" and log["instanceId"] == instance["instanceId"]
    assert log["functionName"] == "echo" and log["qualifier"] == "LATEST"
    assert int(log["__time__"]) > 0 and "__time_ns_part__" in log
    # every function's output is also in the emulator's own project
    assert found("fc-emulator", "function-logs")


def test_the_answer_has_sls_meta_and_headers(rt):
    rt.logs.append("fn", "one", instance_id="c-1", stream="stdout")
    response = get_logs(sls_client(rt), "fc-emulator", "function-logs", query="*")
    assert response.status_code == 200
    assert response.headers["x-log-progress"] == "Complete" and response.headers["x-log-requestid"]
    assert response.body.meta.count == 1 and response.body.meta.progress == "Complete"


def test_query_paging_and_reverse(rt):
    for i in range(5):
        rt.logs.append("fn", f"line {i}", instance_id=f"c-{i % 2}", stream="stdout")
    rt.logs.append("other", "line x", instance_id="c-9", stream="stdout")
    client = sls_client(rt)

    def messages(**body):
        return [d["message"] for d in get_logs(client, "fc-emulator", "function-logs", **body).body.data]

    assert messages(query="functionName: fn") == [f"line {i}" for i in range(5)]
    assert messages(query="functionName: fn", line=2, offset=1) == ["line 1", "line 2"]
    assert messages(query="functionName: fn", reverse=True, line=2) == ["line 4", "line 3"]
    assert messages(query='functionName: fn and instanceId: "c-1"') == ["line 1", "line 3"]
    assert messages(query="functionName: fn and 3") == ["line 3"]
    assert messages(query="functionName: nobody") == []


def test_unknown_projects_and_logstores_are_sls_errors(rt):
    client = sls_client(rt)
    with pytest.raises(TeaException) as err:
        get_logs(client, "no-such-project", "function-logs")
    assert err.value.code == "ProjectNotExist"
    with pytest.raises(TeaException) as err:
        get_logs(client, "fc-emulator", "no-such-store")
    assert err.value.code == "LogStoreNotExist"
    with pytest.raises(TeaException) as err:
        get_logs(client, "fc-emulator", "function-logs", query="a or b")
    assert err.value.code == "ParameterInvalid"


def test_a_wrong_secret_or_unknown_key_is_refused(rt):
    with pytest.raises(TeaException) as err:
        get_logs(sls_client(rt, secret="wrong"), "fc-emulator", "function-logs")
    assert err.value.code == "SignatureNotMatch"
    with pytest.raises(TeaException) as err:
        get_logs(sls_client(rt, key="nobody"), "fc-emulator", "function-logs")
    assert err.value.code == "Unauthorized"


def _signed(server, body: bytes, *, date: str | None = None, md5: str | None = None):
    headers = {
        "content-type": "application/json",
        "content-md5": md5 or hashlib.md5(body).hexdigest().upper(),
        "date": date or formatdate(usegmt=True),
        "x-log-apiversion": "0.6.0",
        "x-log-bodyrawsize": str(len(body)),
        "x-log-signaturemethod": "hmac-sha256",
        "host": f"fc-emulator.{server.endpoint}",
    }
    path = "/logstores/function-logs/logs"
    text = emulator_sls.string_to_sign("POST", path, "", headers)
    headers["authorization"] = f"LOG {AK}:{emulator_sls.signature(SK, text)}"
    return path, headers


def test_the_signature_covers_the_body_the_date_and_the_headers(rt):
    body = json.dumps({"from": 0, "to": 2**31 - 1}).encode()
    path, headers = _signed(rt, body)
    assert httpx.post(rt.url + path, content=body, headers=headers).status_code == 200

    tampered = json.dumps({"from": 0, "to": 1}).encode()
    answer = httpx.post(
        rt.url + path, content=tampered, headers={**headers, "x-log-bodyrawsize": str(len(tampered))}
    )
    assert answer.status_code == 400 and answer.json()["errorCode"] == "InvalidContentMD5"

    path, stale = _signed(rt, body, date="Mon, 01 Jan 2024 00:00:00 GMT")
    answer = httpx.post(rt.url + path, content=body, headers=stale)
    assert answer.json()["errorCode"] == "RequestTimeExpired"

    answer = httpx.post(rt.url + path, content=body, headers={**headers, "x-log-extra": "unsigned"})
    assert answer.status_code == 401 and answer.json()["errorCode"] == "SignatureNotMatch"


def test_the_store_is_bounded_per_function_and_in_functions():
    store = LogStore(lines_per_function=3, max_functions=2)
    for i in range(5):
        store.append("a", f"a{i}", instance_id="c", stream="stdout")
    assert [r.message for r in store.records()] == ["a2", "a3", "a4"]
    store.append("b", "b0", instance_id="c", stream="stdout")
    store.append("c", "c0", instance_id="c", stream="stdout")
    assert {r.function for r in store.records()} == {"b", "c"}
    times = [r.time_ns for r in store.records()]
    assert times == sorted(set(times))  # strictly increasing, so a cursor is exact
