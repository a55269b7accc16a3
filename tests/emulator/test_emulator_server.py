"""Server lifecycle: state_file persistence across restarts, credentials, the ``run()`` entry point."""

from __future__ import annotations

import io
import json
import socket
import threading

import httpx
import pytest
from alibabacloud_fc20230330 import models as fc
from alibabacloud_tea_openapi.exceptions import ClientException

from fc_emulator import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, EmulatorServer, run


def test_state_file_round_trip(tmp_path, make_client, function_input, http_trigger_input, wait_until):
    state = tmp_path / "fc-state.json"
    with EmulatorServer(
        port=0,
        access_key_id="ak",
        access_key_secret="sk",
        pending_seconds=0.1,
        state_file=state,
        runtime=False,
    ) as first:
        client = make_client(first, "ak", "sk")
        created = client.create_function(fc.CreateFunctionRequest(body=function_input())).body
        trigger = client.create_trigger(
            "mcp-weather", fc.CreateTriggerRequest(body=http_trigger_input())
        ).body
        client.create_function(fc.CreateFunctionRequest(body=function_input("gone")))
        client.delete_function("gone")
        client.update_function(
            "mcp-weather", fc.UpdateFunctionRequest(body=fc.UpdateFunctionInput(timeout=42))
        )
        url = trigger.http_trigger.url_internet
        assert httpx.get(url).status_code == 503
    saved = json.loads(state.read_text())
    assert [f["name"] for f in saved["functions"]] == ["mcp-weather"]
    with pytest.raises(httpx.TransportError):  # stopped: the trigger port is closed
        httpx.get(url, timeout=2)

    with EmulatorServer(
        port=0,
        access_key_id="ak",
        access_key_secret="sk",
        pending_seconds=0.1,
        state_file=state,
        runtime=False,
    ) as second:
        client = make_client(second, "ak", "sk")
        got = wait_until(
            lambda: (
                (f := client.get_function("mcp-weather", fc.GetFunctionRequest()).body).last_update_status
                == "Successful"
                and f
            )
        )
        assert got.function_id == created.function_id
        assert got.created_time == created.created_time
        assert got.timeout == 42 and got.state == "Active"
        with pytest.raises(ClientException):
            client.get_function("gone", fc.GetFunctionRequest())
        again = client.get_trigger("mcp-weather", "http").body
        assert again.trigger_id == trigger.trigger_id
        assert again.http_trigger.url_internet == url  # same port re-bound
        assert httpx.get(url).json()["Code"] == "FunctionNotReady"


def test_state_file_rebinds_another_port_when_taken(
    tmp_path, make_client, function_input, http_trigger_input
):
    state = tmp_path / "state.json"
    with EmulatorServer(
        port=0, access_key_id="ak", access_key_secret="sk", state_file=state, runtime=False
    ) as first:
        client = make_client(first, "ak", "sk")
        client.create_function(fc.CreateFunctionRequest(body=function_input()))
        url = client.create_trigger(
            "mcp-weather", fc.CreateTriggerRequest(body=http_trigger_input())
        ).body.http_trigger.url_internet
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        with EmulatorServer(
            port=0, access_key_id="ak", access_key_secret="sk", state_file=state, runtime=False
        ) as second:
            got = make_client(second, "ak", "sk").get_trigger("mcp-weather", "http").body
            new_url = got.http_trigger.url_internet
            assert new_url != url
            assert httpx.get(new_url).status_code == 503


def test_credentials_from_environment_then_defaults(monkeypatch):
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "env-ak")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "env-sk")
    server = EmulatorServer()
    assert (server.access_key_id, server.access_key_secret) == ("env-ak", "env-sk")
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_ID")
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    server = EmulatorServer()
    assert server.access_key_id == DEFAULT_ACCESS_KEY_ID
    assert server.access_key_secret == DEFAULT_ACCESS_KEY_SECRET
    assert (DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET) == ("mcpfc-local", "mcpfc-local-secret")
    with pytest.raises(ValueError):
        EmulatorServer(access_key_id="only-id")


def test_run_prints_endpoint_and_key_id_but_not_secret(monkeypatch, make_client):
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", raising=False)
    out, stop = io.StringIO(), threading.Event()
    thread = threading.Thread(target=run, kwargs={"port": 0, "out": out, "stop_event": stop}, daemon=True)
    thread.start()
    try:
        line = _wait_for_line(out)
        assert DEFAULT_ACCESS_KEY_ID in line and DEFAULT_ACCESS_KEY_SECRET not in line
        endpoint = line.split("http://", 1)[1].split(" ", 1)[0]
        health = httpx.get(f"http://{endpoint}/_emulator/healthz").json()
        assert health["accessKeyId"] == DEFAULT_ACCESS_KEY_ID
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert out.getvalue().count("\n") == 1


def _wait_for_line(out: io.StringIO, timeout: float = 5.0) -> str:
    import time

    deadline = time.monotonic() + timeout
    while "\n" not in out.getvalue():
        assert time.monotonic() < deadline, "run() printed nothing"
        time.sleep(0.01)
    return out.getvalue().splitlines()[0]


def test_stop_cuts_keep_alive_connections_and_frees_the_port(make_client):
    server = EmulatorServer(port=0, access_key_id="ak", access_key_secret="sk").start()
    port = server.port
    with httpx.Client() as http:  # a pooled keep-alive connection
        assert http.get(f"{server.url}/_emulator/healthz").status_code == 200
        server.stop()
        with pytest.raises(httpx.TransportError):
            http.get(f"http://127.0.0.1:{port}/_emulator/healthz", timeout=2)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_context_manager_and_repr():
    with EmulatorServer(port=0, access_key_id="ak", access_key_secret="s3cr3t-value") as server:
        assert server.endpoint == f"127.0.0.1:{server.port}"
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert "s3cr3t-value" not in repr(server) and server.url in repr(server)
        with pytest.raises(RuntimeError):
            server.start()
    with pytest.raises(RuntimeError):
        _ = EmulatorServer(access_key_id="ak", access_key_secret="sk").port


def test_restart_of_the_same_object_keeps_functions_and_trigger_urls(
    make_client, function_input, http_trigger_input
):
    server = EmulatorServer(port=0, access_key_id="ak", access_key_secret="sk", runtime=False).start()
    try:
        client = make_client(server, "ak", "sk")
        client.create_function(fc.CreateFunctionRequest(body=function_input()))
        url = client.create_trigger(
            "mcp-weather", fc.CreateTriggerRequest(body=http_trigger_input())
        ).body.http_trigger.url_internet
        server.stop()
        with pytest.raises(httpx.TransportError):
            httpx.get(url, timeout=2)
        server.start()
        client = make_client(server, "ak", "sk")
        assert client.get_trigger("mcp-weather", "http").body.http_trigger.url_internet == url
        assert httpx.get(url).status_code == 503
    finally:
        server.stop()
