"""A registry URL's credentials never reach the events or the error (they are npm's / uv's to use)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydantic import SecretStr

from deployer.build.builder import make_tools
from deployer.build.resolve import resolve
from deployer.errors import BuildError
from deployer.settings import Settings
from schemas.package import parse_package_command

TOKEN = "s3cr3t-registry-token"


@pytest.mark.parametrize(
    ("field", "argv"),
    [("build_npm_registry", ["npx", "-y", "left-pad"]), ("build_pypi_index_url", ["uvx", "left-pad"])],
)
def test_registry_credentials_are_masked_in_output_and_errors(tmp_path: Path, field: str, argv: list[str]):
    # port 9 on loopback: nothing listens, so the tool fails at once and says where it tried to connect
    url = f"http://mcpfc:{TOKEN}@127.0.0.1:9/simple/"
    settings = Settings(data_dir=tmp_path, build_target="host", build_timeout_s=60, **{field: SecretStr(url)})
    lines: list[str] = []
    tools = make_tools(settings, lines.append, tmp_path)
    assert TOKEN in " ".join(tools.env.values())  # the tool itself gets it
    tools = dataclasses.replace(
        tools, env={**tools.env, "npm_config_fetch_retries": "0", "UV_HTTP_RETRIES": "0"}
    )  # fail at once
    cmd = parse_package_command(argv)
    assert cmd is not None
    with pytest.raises(BuildError) as info:
        resolve(tools, cmd)
    assert TOKEN not in info.value.message and TOKEN not in "\n".join(lines)
    said = info.value.message + "\n".join(lines)
    assert "ECONNREFUSED" in said or "Connection refused" in said  # the tool's own words
