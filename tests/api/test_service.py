"""GET /v1/service: the default region, FC's regions, and whether FC is the local emulator."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from deployer.api import create_app
from deployer.settings import LOCAL_IMAGE
from schemas.limits import FC_REGIONS

from .conftest import bearer, make_settings, new_key


@pytest.mark.parametrize(
    ("endpoint", "local"),
    [
        ("http://127.0.0.1:8931", True),
        ("http://localhost:8931", True),
        ("https://1234567890.cn-hangzhou.fc.aliyuncs.com", False),
        (None, False),
    ],
)
def test_service_says_whether_fc_is_the_local_emulator(tmp_path, endpoint, local):
    settings = make_settings(tmp_path, fc_endpoint=endpoint, region="cn-beijing")
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/service").status_code == 401, "authenticated like every /v1 route"
        info = client.get("/v1/service", headers=bearer(new_key(settings)[1])).json()
    assert info["fc_local"] is local
    assert info["default_image"] == (LOCAL_IMAGE if local else None)
    assert info["region"] == "cn-beijing" and set(info["regions"]) == FC_REGIONS
