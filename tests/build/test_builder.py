"""Image-less builds with the real npm and uv (deployer/build), on local fixture packages made here: a
package whose install fails and one too large fail with the tool's own words before anything reaches FC;
an unchanged lock builds nothing the second time; a kept lock is reused and `upgrade` moves it. npm's and
uv's downloads (the bridge's wheels) are cached under ~/.cache/mcp-fc-tests/build (MCPFC_TEST_BUILD_CACHE)
between runs."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from deployer.build.builder import build, make_tools, pin
from deployer.build.resolve import Lock
from deployer.errors import BuildError
from deployer.settings import Settings
from schemas.package import parse_package_command
from tests.integration.conftest import BUILD_CACHE

pytestmark = pytest.mark.xdist_group("build")


def settings_for(tmp_path: Path, **overrides) -> Settings:
    return Settings(
        data_dir=tmp_path,
        build_target="host",
        build_cache_dir=tmp_path / "packages",
        build_tool_cache_dir=BUILD_CACHE / "tools",
        **overrides,
    )


def npm_fixture(root: Path, version: str = "1.0.0", extra: bytes = b"") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    manifest = {"name": "mcp-fc-fixture", "version": version, "bin": {"mcp-fc-fixture": "./bin/server.js"}}
    (root / "package.json").write_text(json.dumps(manifest))
    (root / "bin").mkdir(exist_ok=True)
    (root / "bin" / "server.js").write_text("#!/usr/bin/env node\nimport('./lib.mjs')\n")
    (root / "bin" / "lib.mjs").write_text("process.stdin.resume()\n")
    if extra:
        (root / "blob.bin").write_bytes(extra)
    return root


def run(settings: Settings, argv: list[str], tmp_path: Path, previous: Lock | None = None, upgrade=False):
    lines: list[str] = []
    tools = make_tools(settings, lines.append, tmp_path)
    cmd = parse_package_command(argv)
    assert cmd is not None
    lock, replaced = pin(tools, cmd, previous, upgrade)
    return build(settings, tools, cmd, lock), replaced, lines


def test_a_local_npm_package_builds_runs_by_its_bin_target_and_the_same_lock_builds_nothing_again(tmp_path):
    pkg = npm_fixture(tmp_path / "pkg")
    settings = settings_for(tmp_path)
    built, _, _ = run(settings, ["npx", "-y", str(pkg)], tmp_path)
    assert not built.cached and built.manifest["package"] == "mcp-fc-fixture"
    assert built.manifest["version"] == "1.0.0"
    assert built.manifest["entry"] == [
        "/opt/nodejs22/bin/node",
        "/code/node_modules/mcp-fc-fixture/bin/server.js",
    ]
    with zipfile.ZipFile(built.zip_path) as zf:
        names = zf.namelist()
    assert (
        "package-lock.json" in names
        and "mcp-fc/bridge.py" in names
        and "bridge/mcp_fc_bridge/app.py" in names
    )
    assert "node_modules/mcp-fc-fixture/bin/lib.mjs" in names
    assert not any("/.bin/" in n for n in names)

    again, _, _ = run(settings, ["npx", "-y", str(pkg)], tmp_path, previous=built.lock)
    assert again.cached and again.manifest["code_checksum"] == built.manifest["code_checksum"]


def test_a_kept_lock_is_reused_and_upgrade_resolves_again(tmp_path):
    pkg = npm_fixture(tmp_path / "pkg")
    settings = settings_for(tmp_path)
    first, _, _ = run(settings, ["npx", "-y", str(pkg)], tmp_path)
    npm_fixture(tmp_path / "pkg", version="1.1.0")  # a newer release of the same package
    kept, replaced, _ = run(settings, ["npx", "-y", str(pkg)], tmp_path, previous=first.lock)
    assert replaced is None and kept.lock == first.lock and kept.cached
    moved, replaced, _ = run(settings, ["npx", "-y", str(pkg)], tmp_path, previous=first.lock, upgrade=True)
    assert replaced == first.lock and moved.manifest["version"] == "1.1.0"


def test_a_package_too_large_for_fc_fails_before_any_cloud_call(tmp_path):
    pkg = npm_fixture(tmp_path / "pkg", extra=bytes(range(256)) * 4096)
    settings = settings_for(tmp_path, build_max_code_b64_bytes=1024 * 1024)
    with pytest.raises(BuildError) as info:
        run(settings, ["npx", "-y", str(pkg)], tmp_path)
    assert info.value.code == "CodeTooLarge" and "too large for Function Compute" in info.value.message
    assert list((tmp_path / "packages").glob("*.zip")) == []  # nothing kept half-made


def test_a_python_package_whose_install_fails_says_uvs_own_words(tmp_path):
    pkg = tmp_path / "broken"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "mcp-fc-broken"\nversion = "0.1.0"\ndynamic = ["readme"]\n'
    )
    (pkg / "setup.py").write_text("raise SystemExit('mcp-fc fixture: this package cannot be built')\n")
    with pytest.raises(BuildError) as info:
        run(settings_for(tmp_path), ["uvx", "--from", str(pkg), "broken"], tmp_path)
    assert "mcp-fc fixture: this package cannot be built" in info.value.message


def test_a_package_that_does_not_exist_says_npms_own_words(tmp_path):
    pkg = tmp_path / "missing.tgz"
    with pytest.raises(BuildError) as info:
        run(settings_for(tmp_path), ["npx", "-y", str(pkg)], tmp_path)
    assert "npm could not resolve" in info.value.message and "ENOENT" in info.value.message
