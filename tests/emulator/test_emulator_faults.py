"""Fault injection seen through the real SDK, the control API, and concurrency under injected latency."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from alibabacloud_fc20230330 import models as fc
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException, ThrottlingException
from darabonba.exceptions import UnretryableException

from fc_emulator.faults import FaultInjector
from fc_emulator.runtime import DEFAULT_START_TIMEOUT_S


def test_throttling_raises_throttling_exception_with_retry_after(emulator, client, created):
    emulator.faults.configure({"GetFunction": {"throttle_rate": 1.0, "retry_after": 3}})
    with pytest.raises(ThrottlingException) as info:
        client.get_function(created, fc.GetFunctionRequest())
    assert info.value.retry_after == 3
    assert info.value.status_code == 429 and info.value.code == "Throttling"
    # other operations are untouched
    assert client.list_functions(fc.ListFunctionsRequest()).status_code == 200


def test_error_rate_one_is_server_exception(emulator, client, function_input):
    emulator.faults.configure({"*": {"error_rate": 1.0}})
    with pytest.raises(ServerException) as info:
        client.create_function(fc.CreateFunctionRequest(body=function_input()))
    assert info.value.status_code == 500 and info.value.code == "InternalServerError"
    assert emulator.backend.snapshot()["functions"] == {}  # an injected error does not run the call


def test_custom_error_status_and_code(emulator, client, created):
    emulator.faults.configure(
        {"GetFunction": {"error_rate": 1.0, "error_status": 409, "error_code": "ConcurrentUpdateError"}}
    )
    with pytest.raises(ClientException) as info:
        client.get_function(created, fc.GetFunctionRequest())
    assert (info.value.status_code, info.value.code) == (409, "ConcurrentUpdateError")


def test_lost_response_commits_and_raises_transport_error(emulator, client, function_input):
    emulator.faults.configure({"CreateFunction": {"lose_response_rate": 1.0}})
    with pytest.raises(UnretryableException) as info:
        client.create_function(fc.CreateFunctionRequest(body=function_input()))
    assert not hasattr(info.value, "status_code") or getattr(info.value, "status_code", None) is None
    # the change committed: a retry of the create sees the conflict, the function is readable
    emulator.faults.clear()
    assert client.get_function("mcp-weather", fc.GetFunctionRequest()).body.function_name == "mcp-weather"
    with pytest.raises(ClientException) as conflict:
        client.create_function(fc.CreateFunctionRequest(body=function_input()))
    assert conflict.value.code == "FunctionAlreadyExists"


def test_lost_response_with_async_client(emulator, make_client, function_input):
    import asyncio

    emulator.faults.configure({"CreateFunction": {"lose_response_rate": 1.0, "count": 1}})
    with pytest.raises(UnretryableException):
        request = fc.CreateFunctionRequest(body=function_input())
        asyncio.run(make_client(emulator).create_function_async(request))
    assert "mcp-weather" in emulator.backend.snapshot()["functions"]


def test_latency_is_observed(emulator, client, created):
    emulator.faults.configure({"GetFunction": {"latency_ms": 150}})
    start = time.monotonic()
    client.get_function(created, fc.GetFunctionRequest())
    assert time.monotonic() - start >= 0.15
    stats = emulator.faults.stats()
    assert stats["faults"]["GetFunction"]["latency"] == 1


def test_count_limits_faults_then_wildcard_applies(emulator, client, created):
    emulator.faults.configure(
        {"GetFunction": {"error_rate": 1.0, "count": 2}, "*": {"throttle_rate": 1.0, "count": 1}}
    )
    for _ in range(2):
        with pytest.raises(ServerException):
            client.get_function(created, fc.GetFunctionRequest())
    with pytest.raises(ThrottlingException):  # GetFunction's rule lapsed: '*' applies (once)
        client.get_function(created, fc.GetFunctionRequest())
    assert client.get_function(created, fc.GetFunctionRequest()).status_code == 200
    config = emulator.faults.get_config()
    assert config["GetFunction"]["count"] == 0 and config["*"]["count"] == 0


def test_seeded_rules_are_reproducible():
    def run() -> list[bool]:
        injector = FaultInjector(["GetFunction"])
        injector.configure({"GetFunction": {"error_rate": 0.5, "seed": 7}})
        return [injector.plan("GetFunction").error is not None for _ in range(40)]

    first = run()
    assert first == run()
    assert 5 < sum(first) < 35  # it really is random-ish, not all or nothing


def test_fault_control_api_round_trip_and_validation(emulator):
    base = f"{emulator.url}/_emulator/faults"
    rules = {
        "CreateFunction": {"latency_ms": 100, "error_rate": 0.1},
        "*": {"throttle_rate": 0.2, "retry_after": 2},
    }
    r = httpx.put(base, json=rules)
    assert r.status_code == 200
    got = httpx.get(base).json()
    assert got["CreateFunction"]["latency_ms"] == 100 and got["CreateFunction"]["error_rate"] == 0.1
    assert got["*"]["retry_after"] == 2 and got["*"]["error_status"] == 500
    for bad in (
        {"CreateFunktion": {}},
        {"*": {"error_rate": 2}},
        {"*": {"latency": 1}},
        {"*": {"count": -1}},
        {"*": "fast"},
        ["not", "an", "object"],
    ):
        r = httpx.put(base, json=bad)
        assert r.status_code == 400 and r.json()["Code"] == "InvalidArgument", bad
    assert httpx.get(base).json() == got  # a rejected PUT changes nothing
    assert httpx.delete(base).json() == {}
    assert httpx.get(base).json() == {}


def test_stats_count_calls_and_faults(emulator, client, created):
    emulator.faults.reset_stats()
    emulator.faults.configure({"GetFunction": {"throttle_rate": 1.0, "count": 1}})
    with pytest.raises(ThrottlingException):
        client.get_function(created, fc.GetFunctionRequest())
    client.get_function(created, fc.GetFunctionRequest())
    client.list_functions(fc.ListFunctionsRequest())
    stats = httpx.get(f"{emulator.url}/_emulator/stats").json()
    assert stats["calls"] == {"GetFunction": 2, "ListFunctions": 1}
    assert stats["faults"] == {"GetFunction": {"throttle": 1}}
    assert stats["total_calls"] == 3 and stats["total_faults"] == 1


def test_reset_clears_state_faults_stats_and_config(emulator, client, created, http_trigger_input):
    client.create_trigger(created, fc.CreateTriggerRequest(body=http_trigger_input()))
    emulator.faults.configure({"*": {"latency_ms": 1}})
    httpx.put(f"{emulator.url}/_emulator/config", json={"pending_seconds": 9, "fail_images": ["x"]})
    assert httpx.post(f"{emulator.url}/_emulator/reset").status_code == 200
    assert httpx.get(f"{emulator.url}/_emulator/state").json() == {"functions": {}, "triggers": {}}
    assert httpx.get(f"{emulator.url}/_emulator/faults").json() == {}
    assert httpx.get(f"{emulator.url}/_emulator/stats").json()["total_calls"] == 0
    assert httpx.get(f"{emulator.url}/_emulator/config").json() == {
        "pending_seconds": 0.3,
        "fail_images": [],
        "runtime": False,
        "start_timeout_s": DEFAULT_START_TIMEOUT_S,
        "idle_timeout_s": 600.0,
    }
    with pytest.raises(ClientException):
        client.get_function(created, fc.GetFunctionRequest())


def test_control_api_misc(emulator):
    health = httpx.get(f"{emulator.url}/_emulator/healthz").json()
    assert health["status"] == "ok" and health["endpoint"] == emulator.endpoint
    assert health["accessKeyId"] == emulator.access_key_id and "secret" not in str(health).lower()
    r = httpx.put(f"{emulator.url}/_emulator/config", json={"pending": 1})
    assert r.status_code == 400 and r.json()["Code"] == "InvalidArgument"
    r = httpx.put(f"{emulator.url}/_emulator/config", json={"pending_seconds": -1})
    assert r.status_code == 400
    r = httpx.get(f"{emulator.url}/_emulator/nothing")
    assert r.status_code == 404 and r.json()["Code"] == "PathNotSupported"


def test_latency_sleeps_outside_the_backend_lock(emulator, make_client, function_input):
    """24 concurrent creates with 200 ms latency each finish far faster than 24 x 200 ms."""
    emulator.faults.configure({"*": {"latency_ms": 200}})
    local = threading.local()

    def create(i: int) -> str:
        if not hasattr(local, "client"):
            local.client = make_client(emulator)
        request = fc.CreateFunctionRequest(body=function_input(f"c-{i:02d}"))
        return local.client.create_function(request).body.function_name

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=24) as pool:
        names = list(pool.map(create, range(24)))
    elapsed = time.monotonic() - start
    assert sorted(names) == [f"c-{i:02d}" for i in range(24)]
    assert len(emulator.backend.snapshot()["functions"]) == 24
    assert 0.2 <= elapsed < 2.4, elapsed  # serialised sleeping would take >= 4.8 s
