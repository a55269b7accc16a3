"""`mcp-fc dev` behind a proxy: the worker's FC SDK calls to the local emulator must not go to the proxy."""

from __future__ import annotations

import pytest
from alibabacloud_fc20230330 import models

from deployer.cli.devstack import worker_environment
from deployer.fc.gateway import make_client
from deployer.settings import Settings
from tests.conftest import TEST_AK, TEST_SK

HOST = {
    "HTTP_PROXY": "http://127.0.0.1:9",  # discard port: nothing answers there
    "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
    "LANG": "C.UTF-8",
    "PATH": "/usr/bin",
}


def test_the_dev_worker_drops_proxies_only_with_the_local_emulator():
    local = worker_environment(HOST, local_fc=True)
    assert local == {"LANG": "C.UTF-8", "PATH": "/usr/bin"}
    assert worker_environment(HOST, local_fc=False) == HOST, "real FC may need the proxy"


@pytest.fixture
def fc(monkeypatch):
    from fc_emulator import EmulatorServer

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", TEST_AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", TEST_SK)
    with EmulatorServer(port=0, access_key_id=TEST_AK, access_key_secret=TEST_SK) as server:
        yield server


def _list_functions(fc) -> object:
    return make_client(Settings(fc_endpoint=fc.url)).list_functions(models.ListFunctionsRequest())


def test_why_the_sdk_ignores_no_proxy(fc, monkeypatch):
    for key, value in HOST.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(Exception, match="(?i)proxy"):
        _list_functions(fc)
    for key in list(HOST):
        monkeypatch.delenv(key)
    for key, value in worker_environment(HOST, local_fc=True).items():
        monkeypatch.setenv(key, value)
    assert _list_functions(fc).status_code == 200
