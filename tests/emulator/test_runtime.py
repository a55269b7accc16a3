"""The local runtime behind HTTP trigger URLs: cold start, port mapping, minimal environment, streaming,
start failures, restarts, stops (no process left behind), idle timeout and the control API.

The function is ``echo_function.py`` (stdlib HTTP server) run by the venv's ``python``; functions and triggers
are created with the real SDK. Nothing here synchronises on sleeps: the tests poll with a deadline.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alibabacloud_fc20230330 import models as fc
from alibabacloud_fc20230330.client import Client

from fc_emulator import EmulatorServer
from fc_emulator.command import map_command
from fc_emulator.environment import PASSED_HOST_VARS
from fc_emulator.launch import prune_instance_dirs
from fc_emulator.runtime import DEFAULT_IDLE_TIMEOUT_S, DEFAULT_START_TIMEOUT_S
from tests.conftest import alive

ECHO = str(Path(__file__).with_name("echo_function.py"))
AK, SK = "rt-ak", "rt-secret"


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    emulator = EmulatorServer(port=0, access_key_id=AK, access_key_secret=SK, pending_seconds=0).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def rt(server: EmulatorServer) -> EmulatorServer:
    server.reset()
    return server


@pytest.fixture
def sdk(rt: EmulatorServer, make_client) -> Client:
    return make_client(rt, AK, SK)


def echo_input(
    name: str = "echo",
    *,
    command: list[str] | None = None,
    port: int = 9000,
    timeout: int = 30,
    env: dict[str, str] | None = None,
    **overrides: Any,
) -> fc.CreateFunctionInput:
    return fc.CreateFunctionInput(
        function_name=name,
        runtime="custom-container",
        handler="index.handler",
        cpu=0.5,
        memory_size=512,
        timeout=timeout,
        environment_variables=env or {"GREETING": "hello"},
        custom_container_config=fc.CustomContainerConfig(
            image="registry.cn-hangzhou.aliyuncs.com/ns/echo:1",
            port=port,
            command=command or ["python", ECHO, "--port", str(port), "--host", "0.0.0.0"],
        ),
        **overrides,
    )


def deploy(sdk: Client, body: fc.CreateFunctionInput, **trigger_config: Any) -> str:
    sdk.create_function(fc.CreateFunctionRequest(body=body))
    config = {
        "authType": "anonymous",
        "methods": ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"],
        **trigger_config,
    }
    trigger = fc.CreateTriggerInput(
        trigger_name="http", trigger_type="http", qualifier="LATEST", trigger_config=json.dumps(config)
    )
    created = sdk.create_trigger(body.function_name, fc.CreateTriggerRequest(body=trigger)).body
    return created.http_trigger.url_internet


def instances(server: EmulatorServer) -> list[dict[str, Any]]:
    return httpx.get(f"{server.url}/_emulator/instances").json()["instances"]


def group_members(pgid: int) -> set[int]:
    members = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.add(int(entry.name))
    return members


def procs_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if marker.encode() in (entry / "cmdline").read_bytes() and alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


# command rewriting ---------------------------------------------------------------------------------------


def test_map_command_rewrites_port_and_host_before_the_separator_only():
    argv = [
        "mcp-proxy",
        "--port",
        "8080",
        "--host",
        "0.0.0.0",
        "--pass-environment",
        "--",
        "srv",
        "--port",
        "8080",
    ]
    assert map_command(argv, 8080, 40001) == (
        [
            "mcp-proxy",
            "--port",
            "40001",
            "--host",
            "127.0.0.1",
            "--pass-environment",
            "--",
            "srv",
            "--port",
            "8080",
        ],
        True,
    )
    assert map_command(["app", "--port=9000", "--host=0.0.0.0"], 9000, 5) == (
        ["app", "--port=5", "--host=127.0.0.1"],
        True,
    )
    assert map_command(["app", "-p", "9000"], 9000, 7) == (["app", "-p", "7"], True)
    # another port, the deprecated flags mcp-proxy ignores, or no flag: not mapped
    assert map_command(["app", "--port", "1234"], 9000, 7) == (["app", "--port", "1234"], False)
    assert map_command(["mcp-proxy", "--sse-port", "8080", "--sse-host", "0.0.0.0"], 8080, 7)[1] is False
    assert map_command(["python", "-c", "pass"], 9000, 7) == (["python", "-c", "pass"], False)


# cold start and proxying ---------------------------------------------------------------------------------


def test_cold_start_maps_the_port_and_reuses_the_instance(rt, sdk):
    url = deploy(sdk, echo_input())
    assert instances(rt) == []  # nothing runs before the first request
    first = httpx.get(f"{url}/pid", timeout=30)
    assert first.status_code == 200 and first.headers["x-fc-request-id"]
    pid = first.json()["pid"]
    assert httpx.get(f"{url}/pid").json()["pid"] == pid
    [inst] = instances(rt)
    assert inst["pid"] == pid and inst["functionName"] == "echo" and inst["revision"] == 1
    assert inst["containerPort"] == 9000 and inst["port"] != 9000 and inst["portMapped"]
    assert inst["command"][-4:] == ["--port", str(inst["port"]), "--host", "127.0.0.1"]
    assert inst["coldStartMs"] > 0 and os.path.exists(inst["logFile"])
    with socket.socket() as sock:  # the instance listens on loopback only
        assert sock.connect_ex(("127.0.0.1", inst["port"])) == 0


def test_the_function_sees_only_a_minimal_environment(rt, sdk, monkeypatch):
    canary = f"canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("MCPFC_TEST_CANARY", canary)
    monkeypatch.setenv("MCPFC_SECRET_KEY", canary)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", canary)
    url = deploy(sdk, echo_input(env={"GREETING": "hello", "API_TOKEN": "t0ken"}))
    env = httpx.get(f"{url}/env", timeout=30).json()
    assert canary not in json.dumps(env)
    assert "MCPFC_TEST_CANARY" not in env and "MCPFC_SECRET_KEY" not in env
    assert env["GREETING"] == "hello" and env["API_TOKEN"] == "t0ken"
    [inst] = instances(rt)
    assert env["FC_FUNCTION_NAME"] == "echo" and env["FC_REGION"] == rt.region
    assert env["FC_ACCOUNT_ID"] == rt.account_id and env["FC_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["FC_INSTANCE_ID"] == inst["instanceId"]
    assert env["PORT"] == env["FC_SERVER_PORT"] == env["FC_CUSTOM_LISTEN_PORT"] == str(inst["port"])
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(os.path.abspath(sys.executable))
    assert not any(k.startswith("ALIBABA_CLOUD") for k in env)  # no role
    allowed = {"PATH", "HOME", "TMPDIR", "PORT", "GREETING", "API_TOKEN", *PASSED_HOST_VARS}
    assert {k for k in env if not k.startswith("FC_")} <= allowed


@pytest.mark.parametrize(
    ("disable", "injected"), [(None, True), ("None", True), ("Request", True), ("Env", False), ("All", False)]
)
def test_role_credentials_are_injected_unless_disabled(rt, sdk, disable, injected):
    extra = {"disable_inject_credentials": disable} if disable else {}
    url = deploy(sdk, echo_input(role="acs:ram::1234567890123456:role/mcp", **extra))
    env = httpx.get(f"{url}/env", timeout=30).json()
    if injected:
        assert env["ALIBABA_CLOUD_ACCESS_KEY_ID"].startswith("STS.emulated")
        assert env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] and env["ALIBABA_CLOUD_SECURITY_TOKEN"]
    else:
        assert not any(k.startswith("ALIBABA_CLOUD") for k in env)


def test_request_goes_through_raw_and_the_answer_comes_back(rt, sdk):
    url = deploy(sdk, echo_input())
    r = httpx.post(
        f"{url}/request?a=1&b=%2F%20x",
        content=b'{"k": "v"}',
        headers={
            "X-Custom": "yes",
            "Authorization": "Bearer passes-for-anonymous",
            "Content-Type": "application/json",
        },
        timeout=30,
    )
    assert r.status_code == 200
    seen = r.json()
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert seen["method"] == "POST" and seen["path"] == "/request?a=1&b=%2F%20x"
    assert seen["body"] == '{"k": "v"}'
    assert headers["x-custom"] == "yes" and headers["authorization"] == "Bearer passes-for-anonymous"
    assert headers["host"] == url.removeprefix("http://")
    assert headers["x-fc-request-id"] == r.headers["x-fc-request-id"]
    assert headers["x-forwarded-for"] == "127.0.0.1"
    # the function's own answers (any status) pass through untouched
    missing = httpx.get(f"{url}/nothing/here")
    assert missing.status_code == 404 and missing.json() == {"path": "/nothing/here"}
    head = httpx.head(f"{url}/pid")
    assert head.status_code == 200 and head.headers["content-length"] == "42" and head.content == b""
    # keep-alive works across proxied requests
    with httpx.Client() as client:
        assert [client.get(f"{url}/pid").status_code for _ in range(3)] == [200, 200, 200]


def test_a_streamed_event_reaches_the_client_while_the_stream_is_open(rt, sdk):
    url = deploy(sdk, echo_input())
    httpx.get(f"{url}/pid", timeout=30)  # warm
    with httpx.stream("GET", f"{url}/stream", timeout=httpx.Timeout(10.0)) as resp:
        assert resp.headers["content-type"] == "text/event-stream"
        assert resp.headers["transfer-encoding"] == "chunked"
        lines = resp.iter_lines()
        started = time.monotonic()
        assert next(lines) == "event: first"
        assert next(lines) == "data: 1"
        first_event_s = time.monotonic() - started
        # the function holds the stream open until /release: the first event arrived before the end
        assert httpx.post(f"{url}/release", timeout=10).json() == {"released": True}
        rest = list(lines)
    assert "event: second" in rest and "data: 2" in rest
    assert first_event_s < 1.0


def test_concurrent_first_requests_start_one_instance(rt, sdk):
    url = deploy(sdk, echo_input())
    barrier = threading.Barrier(8)
    pids: list[int] = []

    def hit() -> None:
        barrier.wait()
        pids.append(httpx.get(f"{url}/pid", timeout=30).json()["pid"])

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(pids) == 8 and len(set(pids)) == 1
    assert len(instances(rt)) == 1


# start failures ------------------------------------------------------------------------------------------


def test_a_command_that_exits_at_once_is_a_quick_502_with_its_exit_code_and_output(rt, sdk):
    code = "import sys; print('starting...'); print('boom: missing config', file=sys.stderr); sys.exit(3)"
    url = deploy(sdk, echo_input(command=["python", "-c", code, "--port", "9000"]))
    started = time.monotonic()
    r = httpx.get(f"{url}/sse", timeout=30)
    elapsed = time.monotonic() - started
    assert r.status_code == 502 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["Code"] == "FunctionNotStarted" and body["RequestId"] == r.headers["x-fc-request-id"]
    assert "exited with code 3" in body["Message"] and "boom: missing config" in body["Message"]
    assert elapsed < 5, elapsed  # not the 20 s start timeout
    assert instances(rt) == []


def test_a_command_that_never_listens_is_a_502_after_the_start_timeout(rt, sdk):
    marker = f"never-listens-{uuid.uuid4().hex}"
    assert httpx.put(f"{rt.url}/_emulator/config", json={"start_timeout_s": 2}).json()["start_timeout_s"] == 2
    url = deploy(
        sdk,
        echo_input(command=["python", "-c", f"import time; time.sleep(60)  # {marker}", "--port", "9000"]),
    )
    started = time.monotonic()
    r = httpx.get(url, timeout=30)
    elapsed = time.monotonic() - started
    assert r.status_code == 502 and r.json()["Code"] == "FunctionNotStarted"
    assert "did not listen on port 9000 within 2 s" in r.json()["Message"]
    assert r.headers["x-fc-request-id"]
    assert 1.9 <= elapsed < 6, elapsed
    assert procs_with(marker) == []  # killed, not left running


def test_a_late_binding_server_gets_a_patient_start_and_a_quick_liveness_verdict(rt, sdk):
    """The health check's budget (here 1 s x 1 + 1 s) counts from its first check, once the port accepts: a
    server that binds later than that still starts (the bridge binds once its stdio server answers), so the
    failure threshold can be a quick liveness verdict instead of the start-up's patience (issue 26 #14)."""
    late = "import os, sys, time; time.sleep(3); os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    body = echo_input(command=["python", "-c", late, ECHO, "--port", "9000", "--host", "0.0.0.0"])
    body.custom_container_config.health_check_config = fc.CustomHealthCheckConfig(
        http_get_url="/healthz",
        initial_delay_seconds=0,
        period_seconds=1,
        timeout_seconds=1,
        failure_threshold=1,
    )
    url = deploy(sdk, body)
    r = httpx.get(f"{url}/pid", timeout=60)
    assert r.status_code == 200, r.text
    assert instances(rt)[0]["coldStartMs"] >= 3000


def test_the_health_check_must_pass(rt, sdk):
    health = fc.CustomHealthCheckConfig(
        http_get_url="/missing",
        initial_delay_seconds=0,
        period_seconds=1,
        timeout_seconds=1,
        failure_threshold=1,
    )
    body = echo_input()
    body.custom_container_config.health_check_config = health
    url = deploy(sdk, body)
    r = httpx.get(f"{url}/pid", timeout=30)  # limit = 0 + 1 * 1 + 1 = 2 s
    assert r.status_code == 502 and "health check GET /missing" in r.json()["Message"]
    assert "HTTP 404" in r.json()["Message"]
    sdk.update_function(
        "echo",
        fc.UpdateFunctionRequest(
            body=fc.UpdateFunctionInput(
                custom_container_config=fc.CustomContainerConfig(
                    image="registry.cn-hangzhou.aliyuncs.com/ns/echo:1",
                    port=9000,
                    command=["python", ECHO, "--port", "9000"],
                    health_check_config=fc.CustomHealthCheckConfig(http_get_url="/healthz"),
                )
            )
        ),
    )
    assert httpx.get(f"{url}/pid", timeout=30).status_code == 200


def test_an_instance_that_keeps_failing_its_health_check_is_replaced(rt, sdk, wait_until):
    body = echo_input()
    body.custom_container_config.health_check_config = fc.CustomHealthCheckConfig(
        http_get_url="/healthz", period_seconds=1, timeout_seconds=1, failure_threshold=2
    )
    url = deploy(sdk, body)
    pid = httpx.get(f"{url}/pid", timeout=30).json()["pid"]
    # healthy: checked every second, kept
    wait_until(lambda: instances(rt)[0]["healthChecks"] >= 3, what="three passed health checks")
    assert instances(rt)[0]["pid"] == pid and instances(rt)[0]["healthFailures"] == 0
    assert httpx.get(f"{url}/sick", timeout=5).json() == {"sick": True}
    wait_until(lambda: not (now := instances(rt)) or now[0]["pid"] != pid, what="the unhealthy instance gone")
    again = httpx.get(f"{url}/pid", timeout=30)
    assert again.status_code == 200 and again.json()["pid"] != pid


def test_unknown_commands_and_missing_commands_are_clear(rt, sdk):
    url = deploy(sdk, echo_input(command=["no-such-mcp-server-xyz", "--port", "9000"]))
    r = httpx.get(url, timeout=30)
    assert r.status_code == 502 and "'no-such-mcp-server-xyz' was not found on PATH" in r.json()["Message"]
    body = echo_input("imageonly")
    body.custom_container_config.command = None
    url = deploy(sdk, body)
    r = httpx.get(url, timeout=30)
    assert r.status_code == 502 and "no customContainerConfig.command" in r.json()["Message"]


def test_a_command_without_a_port_flag_runs_on_the_container_port(rt, sdk):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = deploy(sdk, echo_input(command=["python", ECHO], port=port))  # reads $PORT
    assert httpx.get(f"{url}/pid", timeout=30).status_code == 200
    [inst] = instances(rt)
    assert inst["port"] == port and not inst["portMapped"]


def test_a_command_without_a_port_flag_fails_clearly_when_its_port_is_taken(rt, sdk):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        url = deploy(sdk, echo_input(command=["python", ECHO], port=port))
        r = httpx.get(url, timeout=30)
    assert r.status_code == 502 and r.json()["Code"] == "FunctionNotStarted"
    message = r.json()["Message"]
    assert f"127.0.0.1:{port}" in message and "already taken" in message and "--port" in message


# restarts and stops --------------------------------------------------------------------------------------


def test_a_process_that_dies_later_is_restarted_on_the_next_request(rt, sdk, wait_until):
    url = deploy(sdk, echo_input())
    pid = httpx.get(f"{url}/pid", timeout=30).json()["pid"]
    assert httpx.get(f"{url}/exit?code=7").json() == {"exiting": 7}
    wait_until(lambda: not instances(rt) or not instances(rt)[0]["alive"])
    again = httpx.get(f"{url}/pid", timeout=30)
    assert again.status_code == 200 and again.json()["pid"] != pid


def test_update_function_restarts_the_instance_with_the_new_revision(rt, sdk, wait_until):
    url = deploy(sdk, echo_input())
    first = httpx.get(f"{url}/env", timeout=30).json()
    old_pid = instances(rt)[0]["pid"]
    sdk.update_function(
        "echo",
        fc.UpdateFunctionRequest(body=fc.UpdateFunctionInput(environment_variables={"GREETING": "updated"})),
    )
    wait_until(lambda: not alive(old_pid))
    second = httpx.get(f"{url}/env", timeout=30).json()
    [inst] = instances(rt)
    assert first["GREETING"] == "hello" and second["GREETING"] == "updated"
    assert inst["pid"] != old_pid and inst["revision"] == 2


def test_an_open_stream_is_cut_when_the_function_is_updated(rt, sdk):
    url = deploy(sdk, echo_input())
    with httpx.stream("GET", f"{url}/stream", timeout=httpx.Timeout(10.0)) as resp:
        lines = resp.iter_lines()
        assert next(lines) == "event: first"
        sdk.update_function("echo", fc.UpdateFunctionRequest(body=fc.UpdateFunctionInput(timeout=31)))
        with pytest.raises(httpx.RemoteProtocolError):  # the chunked stream ends without its last chunk
            list(lines)


def test_delete_trigger_and_function_leave_no_process(rt, sdk, wait_until):
    url = deploy(sdk, echo_input())
    pid = httpx.get(f"{url}/pid", timeout=30).json()["pid"]
    sdk.delete_trigger("echo", "http")
    wait_until(lambda: not alive(pid))
    assert instances(rt) == []
    # and DeleteFunction of a running one (re-created trigger) stops it before answering
    sdk.delete_function("echo")
    url = deploy(sdk, echo_input())
    pid = httpx.get(f"{url}/pid", timeout=30).json()["pid"]
    sdk.delete_trigger("echo", "http")
    sdk.delete_function("echo")
    wait_until(lambda: not alive(pid))


def test_stop_kills_the_whole_process_group(make_client, wait_until):
    marker = f"child-{uuid.uuid4().hex}"
    server = EmulatorServer(port=0, access_key_id=AK, access_key_secret=SK, pending_seconds=0).start()
    try:
        sdk = make_client(server, AK, SK)
        # a function that leaves a child behind in its process group
        command = ["sh", "-c", f'sleep 300 & exec python "$0" "$@"  # {marker}', ECHO, "--port", "9000"]
        url = deploy(sdk, echo_input(command=command))
        pid = httpx.get(f"{url}/pid", timeout=30).json()["pid"]
        members = wait_until(lambda: m if len(m := group_members(pid)) >= 2 else None)
    finally:
        server.stop()
    assert not alive(pid)
    assert [p for p in members if alive(p)] == []
    assert procs_with(marker) == []


def test_reset_and_runtime_off_stop_instances(rt, sdk):
    url = deploy(sdk, echo_input())
    pid = httpx.get(f"{url}/pid", timeout=30).json()["pid"]
    assert httpx.put(f"{rt.url}/_emulator/config", json={"runtime": False}).json()["runtime"] is False
    assert not alive(pid) and instances(rt) == []
    r = httpx.get(f"{url}/pid")
    assert r.status_code == 503 and r.json()["Code"] == "FunctionNotReady"
    assert "disabled" in r.json()["Message"]
    httpx.put(f"{rt.url}/_emulator/config", json={"runtime": True})
    pid = httpx.get(f"{url}/pid", timeout=30).json()["pid"]
    assert httpx.post(f"{rt.url}/_emulator/reset").json() == {"reset": True}
    assert not alive(pid) and instances(rt) == []


def test_idle_instances_are_stopped(rt, sdk, wait_until):
    httpx.put(f"{rt.url}/_emulator/config", json={"idle_timeout_s": 0.3})
    url = deploy(sdk, echo_input())
    pid = httpx.get(f"{url}/pid", timeout=30).json()["pid"]
    wait_until(lambda: instances(rt) == [] and not alive(pid))
    assert httpx.get(f"{url}/pid", timeout=30).json()["pid"] != pid  # cold start again


def test_an_open_stream_keeps_its_instance_from_idling(rt, sdk):
    url = deploy(sdk, echo_input())
    with httpx.stream("GET", f"{url}/stream", timeout=httpx.Timeout(10.0)) as resp:
        lines = resp.iter_lines()
        assert next(lines) == "event: first"
        httpx.put(f"{rt.url}/_emulator/config", json={"idle_timeout_s": 0.05})
        assert rt.dataplane.instances.reap() == []  # one request in flight: not idle
        httpx.post(f"{url}/release", timeout=10)
        assert "event: second" in list(lines)


def test_the_function_timeout_cuts_a_stream(rt, sdk):
    url = deploy(sdk, echo_input(timeout=1))
    httpx.get(f"{url}/pid", timeout=30)
    started = time.monotonic()
    with httpx.stream("GET", f"{url}/stream", timeout=httpx.Timeout(10.0)) as resp:
        lines = resp.iter_lines()
        assert next(lines) == "event: first"
        with pytest.raises(httpx.RemoteProtocolError):
            list(lines)
    assert 0.9 <= time.monotonic() - started < 5


# control API ---------------------------------------------------------------------------------------------


def test_runtime_config_through_the_control_api(rt):
    config = httpx.get(f"{rt.url}/_emulator/config").json()
    assert config["runtime"] is True
    assert (
        config["start_timeout_s"] == DEFAULT_START_TIMEOUT_S
        and config["idle_timeout_s"] == DEFAULT_IDLE_TIMEOUT_S
    )
    for bad in ({"start_timeout_s": 0}, {"idle_timeout_s": "x"}, {"runtime": "yes"}, {"nope": 1}):
        r = httpx.put(f"{rt.url}/_emulator/config", json=bad)
        assert r.status_code == 400 and r.json()["Code"] == "InvalidArgument", bad
    assert httpx.get(f"{rt.url}/_emulator/config").json() == config
    assert httpx.delete(f"{rt.url}/_emulator/instances").json() == {"instances": []}


def test_server_arguments_set_the_runtime_defaults():
    server = EmulatorServer(start_timeout_s=3, idle_timeout_s=60)
    assert server.dataplane.get_config() == {"runtime": True, "start_timeout_s": 3.0, "idle_timeout_s": 60.0}
    server.dataplane.configure(start_timeout_s=9)
    assert server.backend.configure(idle_timeout_s=5)["idle_timeout_s"] == 5.0  # one config, both layers
    assert server.backend.get_config()["start_timeout_s"] == 9.0
    server.reset()
    assert server.backend.get_config() == {
        "pending_seconds": 1.0,
        "fail_images": [],
        "runtime": True,
        "start_timeout_s": 3.0,
        "idle_timeout_s": 60.0,
    }


def test_instance_logs_live_next_to_the_state_file(tmp_path, make_client):
    state = tmp_path / "fc-state.json"
    with EmulatorServer(
        port=0, access_key_id=AK, access_key_secret=SK, pending_seconds=0, state_file=state
    ) as server:
        sdk = make_client(server, AK, SK)
        url = deploy(sdk, echo_input(command=["python", ECHO, "--port", "9000"]))
        assert httpx.get(f"{url}/pid", timeout=30).status_code == 200
        [inst] = instances(server)
        log = Path(inst["logFile"])
        assert log.parent.parent == tmp_path / "fc-instances"
        assert "echo-function listening on 127.0.0.1:" in log.read_text()
    assert log.exists()  # kept after stop, for inspection


def test_old_instance_directories_are_pruned(tmp_path):
    for i in range(5):
        (tmp_path / f"fn-{i}").mkdir()
        os.utime(tmp_path / f"fn-{i}", (1000 + i, 1000 + i))
    prune_instance_dirs(str(tmp_path), 2, keep={str(tmp_path / "fn-0")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fn-0", "fn-3", "fn-4"]


def test_serverwatch_records_the_servers_exit_code_and_stderr(tmp_path):
    """The program the emulator puts in front of a bridge's stdio server passes its code through and records
    it with the server's stderr (a bridge reports only its own code)."""
    import json as _json
    import subprocess as _subprocess
    import sys as _sys

    from fc_emulator.command import SERVER_WATCH, watch_server
    from fc_emulator.instance import read_server_exit

    argv, watched = watch_server(["bridge", "--port", "1", "--", "srv", "-x"], str(tmp_path))
    assert watched and argv[:4] == ["bridge", "--port", "1", "--"] and argv[-3:] == ["--", "srv", "-x"]
    assert watch_server(["server", "--port", "1"], str(tmp_path)) == (["server", "--port", "1"], False)

    code = "import sys; sys.stdout.write('out'); print('fatal: config missing', file=sys.stderr); sys.exit(3)"
    done = _subprocess.run(
        [_sys.executable, "-I", SERVER_WATCH, str(tmp_path), "--", _sys.executable, "-c", code],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 3 and done.stdout == b"out"
    assert b"fatal: config missing" in done.stderr and b"exited with code 3" in done.stderr
    assert (tmp_path / "server.log").read_text() == "fatal: config missing\n"
    assert read_server_exit(str(tmp_path))["code"] == 3

    missing = _subprocess.run(
        [_sys.executable, "-I", SERVER_WATCH, str(tmp_path), "--", "no-such-mcp-server-here"],
        capture_output=True,
        timeout=60,
    )
    assert missing.returncode == 127 and b"'no-such-mcp-server-here' was not found on PATH" in missing.stderr
    last = _json.loads((tmp_path / "server-exit").read_text().splitlines()[-1])
    assert last["code"] == 127 and last["command"] == "no-such-mcp-server-here"
