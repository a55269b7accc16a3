"""An image-less DeployRequest (issue 23): only a package command goes without an image."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas import DeployRequest, RedeployRequest


def rules(exc: ValidationError) -> set[str]:
    return {e["type"] for e in exc.errors()}


def test_a_package_command_needs_no_image():
    req = DeployRequest(name="time", command=["uvx", "mcp-server-time"])
    assert req.image is None and req.package is not None and req.package.spec == "mcp-server-time"
    assert (
        DeployRequest(name="x", image="registry.cn-hangzhou.aliyuncs.com/a/b:1", command=["uvx", "y"]).package
        is None
    )


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"command": ["node", "server.js"]}, "image_required"),
        ({"command": ["npx", "-y", "pkg"], "proxy": "none"}, "proxy_needs_image"),
        ({"command": ["npx", "-y", "pkg"], "acr_instance_id": "cri-abc123"}, "acr_without_image"),
    ],
)
def test_anything_else_needs_an_image(fields, rule):
    with pytest.raises(ValidationError) as info:
        DeployRequest(name="x", **fields)
    assert rule in rules(info.value)


def test_upgrade_applies_to_one_redeploy():
    current = DeployRequest(name="t", command=["uvx", "mcp-server-time"])
    upgraded = RedeployRequest(upgrade=True).apply_to(current)
    assert upgraded.upgrade is True
    assert RedeployRequest(description="x").apply_to(upgraded).upgrade is False
