"""Fixtures for the FC emulator tests: one real server per session, reset before every test, and the REAL
SDK client (``alibabacloud_fc20230330``) pointed at it over plain HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from alibabacloud_fc20230330 import models as fc
from alibabacloud_fc20230330.client import Client
from alibabacloud_tea_openapi import models as om

from fc_emulator import EmulatorServer
from tests.conftest import wait_until as _wait_until

ACCESS_KEY_ID = "test-ak"
ACCESS_KEY_SECRET = "test-secret"
PENDING_SECONDS = 0.3


def _make_client(
    server: EmulatorServer,
    access_key_id: str = ACCESS_KEY_ID,
    access_key_secret: str = ACCESS_KEY_SECRET,
    **config: Any,
) -> Client:
    return Client(
        om.Config(
            access_key_id=access_key_id,
            access_key_secret=access_key_secret,
            endpoint=server.endpoint,
            protocol="http",
            **config,
        )
    )


def _function_input(name: str = "mcp-weather", **overrides: Any) -> fc.CreateFunctionInput:
    """A realistic MCP SSE custom-container function (as the deployer builds it)."""
    values: dict[str, Any] = dict(
        function_name=name,
        runtime="custom-container",
        handler="index.handler",
        cpu=0.5,
        memory_size=1024,
        disk_size=512,
        timeout=600,
        instance_concurrency=20,
        environment_variables={"MCP_TRANSPORT": "sse"},
        custom_container_config=fc.CustomContainerConfig(
            image="registry.cn-hangzhou.aliyuncs.com/ns/mcp-weather:1.0",
            port=8080,
            command=["mcp-proxy", "--port", "8080", "--host", "0.0.0.0", "--", "mcp-server-time"],
            health_check_config=fc.CustomHealthCheckConfig(http_get_url="/healthz"),
        ),
        session_affinity="MCP_SSE",
        session_affinity_config=json.dumps({"sseEndpointPath": "/sse", "sessionConcurrencyPerInstance": 20}),
        internet_access=True,
    )
    values.update(overrides)
    return fc.CreateFunctionInput(**values)


def _http_trigger_input(
    name: str = "http", methods: list[str] | None = None, **config: Any
) -> fc.CreateTriggerInput:
    trigger_config = {
        "authType": "anonymous",
        "methods": methods or ["GET", "POST", "DELETE", "OPTIONS"],
        "disableURLInternet": False,
        **config,
    }
    return fc.CreateTriggerInput(
        trigger_name=name, trigger_type="http", qualifier="LATEST", trigger_config=json.dumps(trigger_config)
    )


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[EmulatorServer]:
    # The API-level tests never need a function process: trigger URLs answer 503 FunctionNotReady.
    # The local runtime has its own servers (test_runtime.py, test_trigger_auth.py).
    server = EmulatorServer(
        port=0,
        access_key_id=ACCESS_KEY_ID,
        access_key_secret=ACCESS_KEY_SECRET,
        pending_seconds=PENDING_SECONDS,
        runtime=False,
    ).start()
    yield server
    server.stop()


@pytest.fixture
def emulator(emulator_session: EmulatorServer) -> EmulatorServer:
    """The shared emulator, wiped (state, faults, counters, config) before the test."""
    emulator_session.reset()
    return emulator_session


@pytest.fixture
def client(emulator: EmulatorServer) -> Client:
    return _make_client(emulator)


@pytest.fixture
def created(client: Client) -> str:
    """A created function named ``mcp-weather``."""
    client.create_function(fc.CreateFunctionRequest(body=_function_input()))
    return "mcp-weather"


# helpers as fixtures (a test module importing ``conftest`` would clash with other conftest.py files)


@pytest.fixture
def make_client() -> Callable[..., Client]:
    """``make_client(server, access_key_id=..., access_key_secret=..., **Config kwargs)``."""
    return _make_client


@pytest.fixture
def function_input() -> Callable[..., fc.CreateFunctionInput]:
    """``function_input(name="mcp-weather", **CreateFunctionInput overrides)``."""
    return _function_input


@pytest.fixture
def http_trigger_input() -> Callable[..., fc.CreateTriggerInput]:
    """``http_trigger_input(name="http", methods=None, **triggerConfig keys)``."""
    return _http_trigger_input


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """``wait_until(predicate, timeout=10.0)``: poll with a deadline (no fixed sleeps)."""
    return _wait_until
