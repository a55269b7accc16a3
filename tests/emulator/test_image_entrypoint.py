"""The container's process as a container runtime builds it, from the function's entrypoint and command
and the image's ENTRYPOINT and CMD (registered through ``/_emulator/images``, since nothing is pulled).

FC appends ``customContainerConfig.command`` to the image's ENTRYPOINT unless ``entrypoint`` is set
(fc3-fidelity-audit.md row 22), so an image whose ENTRYPOINT is not a pass-through garbles a bare command.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import httpx
import pytest
from alibabacloud_fc20230330 import models as fc

from fc_emulator import EmulatorServer
from fc_emulator.command import container_argv, split_init

ECHO = str(Path(__file__).with_name("echo_function.py"))
AK, SK = "img-ak", "img-secret"
IMAGE = "registry.cn-hangzhou.aliyuncs.com/ns/echo:1"


def test_container_argv_follows_docker_semantics():
    image = {"entrypoint": ["catatonit", "--", "mcp-proxy"], "cmd": ["--help"]}
    # a bare command is appended to the image's ENTRYPOINT: garbled
    assert container_argv({"command": ["mcp-proxy", "--port", "8080"]}, image) == [
        "catatonit", "--", "mcp-proxy", "mcp-proxy", "--port", "8080",
    ]  # fmt: skip
    # an explicit entrypoint replaces the image's ENTRYPOINT and CMD
    assert container_argv({"entrypoint": ["tini", "--"], "command": ["mcp-proxy", "-x"]}, image) == [
        "tini", "--", "mcp-proxy", "-x",
    ]  # fmt: skip
    # nothing given: the image's own ENTRYPOINT and CMD
    assert container_argv({}, image) == ["catatonit", "--", "mcp-proxy", "--help"]
    assert container_argv({"command": ["srv"]}, None) == ["srv"]


def test_split_init_finds_the_program_behind_an_init():
    assert split_init(["tini", "--", "mcp-proxy", "--port", "1"]) == (
        ["tini", "--"],
        ["mcp-proxy", "--port", "1"],
    )
    assert split_init(["tini", "-s", "-p", "SIGKILL", "--", "a"]) == (
        ["tini", "-s", "-p", "SIGKILL", "--"],
        ["a"],
    )
    assert split_init(["/usr/bin/dumb-init", "-r", "15:2", "srv", "-v"]) == (
        ["/usr/bin/dumb-init", "-r", "15:2"],
        ["srv", "-v"],
    )
    assert split_init(["catatonit", "--"]) == (["catatonit", "--"], [])
    assert split_init(["python", "--", "x"]) == ([], ["python", "--", "x"])


@pytest.fixture(scope="module")
def server():
    emulator = EmulatorServer(port=0, access_key_id=AK, access_key_secret=SK, pending_seconds=0).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def sdk(server: EmulatorServer, make_client):
    server.reset()
    return make_client(server, AK, SK)


def deploy(sdk, name: str, container: fc.CustomContainerConfig) -> str:
    sdk.create_function(
        fc.CreateFunctionRequest(
            body=fc.CreateFunctionInput(
                function_name=name,
                runtime="custom-container",
                handler="index.handler",
                cpu=0.5,
                memory_size=512,
                timeout=30,
                custom_container_config=container,
            )
        )
    )
    config = {"authType": "anonymous", "methods": ["GET"]}
    trigger = fc.CreateTriggerInput(
        trigger_name="http", trigger_type="http", qualifier="LATEST", trigger_config=json.dumps(config)
    )
    return sdk.create_trigger(name, fc.CreateTriggerRequest(body=trigger)).body.http_trigger.url_internet


def register(server: EmulatorServer, images: dict) -> dict:
    r = httpx.put(f"{server.url}/_emulator/images", json=images)
    assert r.status_code == 200, r.text
    return r.json()


def test_images_through_the_control_api(server, sdk):
    assert httpx.get(f"{server.url}/_emulator/images").json() == {"images": {}}
    images = {IMAGE: {"entrypoint": ["catatonit", "--", "mcp-proxy"]}}
    assert register(server, images) == {"images": images}
    assert httpx.get(f"{server.url}/_emulator/images").json() == {"images": images}
    for bad in ([], {IMAGE: {"entrypoint": "tini"}}, {IMAGE: {"user": "root"}}):
        r = httpx.put(f"{server.url}/_emulator/images", json=bad)
        assert r.status_code == 400 and r.json()["Code"] == "InvalidArgument", bad
    server.reset()
    assert httpx.get(f"{server.url}/_emulator/images").json() == {"images": {}}


def test_an_explicit_entrypoint_runs_the_command_whatever_the_image_entrypoint(server, sdk):
    # the image's ENTRYPOINT would turn `python echo.py` into `python python echo.py`
    register(server, {IMAGE: {"entrypoint": ["catatonit", "--", sys.executable]}})
    command = [sys.executable, ECHO, "--port", "9000", "--host", "0.0.0.0"]
    bare = deploy(sdk, "bare", fc.CustomContainerConfig(image=IMAGE, port=9000, command=command))
    garbled = httpx.get(f"{bare}/pid", timeout=30)
    assert garbled.status_code == 502 and garbled.json()["Code"] == "FunctionNotStarted"
    assert f"command: catatonit -- {sys.executable} {sys.executable} {ECHO}" in garbled.json()["Message"]

    explicit = fc.CustomContainerConfig(image=IMAGE, port=9000, entrypoint=["tini", "--"], command=command)
    url = deploy(sdk, "explicit", explicit)
    assert httpx.get(f"{url}/pid", timeout=30).status_code == 200
    [inst] = [i for i in httpx.get(f"{server.url}/_emulator/instances").json()["instances"]]
    assert inst["init"] == ["tini", "--"] and inst["command"][:2] == [sys.executable, ECHO]
    assert inst["initStandIn"] is (shutil.which("tini") is None)
