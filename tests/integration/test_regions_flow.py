"""A deploy goes to its requested region (issue 16 #1), through the real API, worker and emulator."""

from __future__ import annotations

import secrets
from typing import Any

from tests.integration.conftest import Stack, stack_factory  # noqa: F401 - fixture


def image_in(region: str) -> str:
    """An ACR image in the function's own region: FC pulls only from there (another region is a 422)."""
    return f"registry.{region}.aliyuncs.com/mcp-fc/mcp-server-time:1.0"


def test_deploys_land_in_their_own_regions(stack_factory: Any) -> None:  # noqa: F811
    stack: Stack = stack_factory(probe=False)
    names = {
        region: f"reg-{region[:2]}-{secrets.token_hex(2)}" for region in ("ap-southeast-1", "cn-hangzhou")
    }
    with stack.http() as http:
        ids = {
            region: http.post(
                "/v1/deployments",
                json={
                    "name": name,
                    "image": image_in(region),
                    "command": ["srv"],
                    "auth": {"type": "anonymous"},
                    "region": region,
                },
            ).json()["id"]
            for region, name in names.items()
        }
    for region, dep_id in ids.items():
        dep = stack.wait_for(dep_id, {"succeeded", "failed"})
        assert dep["status"] == "succeeded", dep
        assert dep["region"] == region
        arn = dep["result"]["function_result"]["body"]["functionArn"]
        assert arn.startswith(f"acs:fc:{region}:"), arn
        assert dep["urls"]["mcp"]
    # What FC (the emulator) itself holds: each function in its region only.
    functions = stack.fc.backend.snapshot()["functions"]
    for region, name in names.items():
        assert functions[name]["functionArn"].startswith(f"acs:fc:{region}:")
