"""One image-less build, start to end: pin (or reuse the deployment's lock), look in the cache, else
install, assemble and zip; refuse a package FC would refuse (its 100 MB, on the base64 text). The worker
(tasks/build_steps.py) calls :func:`build` from the `build` queue and records what it says in the events."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployer.build import package, zipfile_det
from deployer.build.cache import BuildCache
from deployer.build.resolve import Lock, Tools, resolve
from deployer.build.target import target_for
from deployer.build.tools import Output, find_tool, tool_environment, url_secrets
from deployer.errors import BuildError
from deployer.settings import Settings
from schemas.package import PackageCommand

#: Bumped when the tree's layout or the launchers change: a cached package of another layout is not reused.
LAYOUT = 1


@dataclass
class Built:
    lock: Lock
    zip_path: Path
    manifest: dict[str, Any]
    cached: bool


def make_tools(settings: Settings, output: Output, home: Path, install_scripts: bool = False) -> Tools:
    tool_cache = settings.effective_build_tool_cache_dir
    extra = {
        "npm_config_cache": str(tool_cache / "npm"),
        "npm_config_update_notifier": "false",
        "UV_CACHE_DIR": str(tool_cache / "uv"),
        "UV_NO_CONFIG": "1",  # no uv.toml of the worker's user changes what is resolved
        # The host's trust store, as pip and npm (NODE_EXTRA_CA_CERTS) use it: uv's own bundled roots fail
        # behind a TLS-inspecting proxy whose CA the host trusts.
        "UV_SYSTEM_CERTS": "1",
    }
    secrets: list[str] = []
    if settings.build_npm_registry:
        url = settings.build_npm_registry.get_secret_value()
        extra["npm_config_registry"] = url
        secrets += [url, *url_secrets(url)]
    if settings.build_pypi_index_url:
        url = settings.build_pypi_index_url.get_secret_value()
        extra["UV_DEFAULT_INDEX"] = url
        secrets += [url, *url_secrets(url)]
    return Tools(
        npm=find_tool("npm") if shutil.which("npm") else "npm",
        uv=find_tool("uv"),
        env=tool_environment(extra, home),
        timeout_s=settings.build_timeout_s,
        output=output,
        secrets=tuple(secrets),
        target=target_for(settings.effective_build_target),
        install_scripts=install_scripts,
    )


def cache_key(tools: Tools, lock: Lock) -> str:
    import hashlib

    parts = [
        str(LAYOUT),
        tools.target.name,
        tools.target.python_version,
        lock.hash,
        package.bridge_key(tools),
    ]
    parts.append("scripts" if tools.install_scripts else "no-scripts")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]


def pin(tools: Tools, cmd: PackageCommand, previous: Lock | None, upgrade: bool) -> tuple[Lock, Lock | None]:
    """`(lock to build, the previous lock when it was replaced)`: the deployment's own lock when it is for the
    same spec and no upgrade was asked for; else a new resolution."""
    if (
        previous is not None
        and previous.spec == cmd.spec
        and previous.ecosystem == cmd.ecosystem
        and not upgrade
    ):
        return previous, None
    return resolve(tools, cmd), previous


def build(settings: Settings, tools: Tools, cmd: PackageCommand, lock: Lock) -> Built:
    cache = BuildCache(settings.effective_build_cache_dir, settings.build_cache_max_bytes)
    key = cache_key(tools, lock)
    hit = cache.get(key)
    if hit is not None:
        return Built(lock, hit[0], hit[1], cached=True)
    bridge = package.install_bridge(tools, settings.effective_build_tool_cache_dir)
    with tempfile.TemporaryDirectory(prefix="mcpfc-build-", dir=cache.root) as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        manifest = package.assemble(tools, lock, cmd, tree, bridge)
        out = Path(tmp) / "code.zip"
        try:
            zipfile_det.write_zip(tree, out)
        except zipfile_det.SymlinkRefused as exc:
            raise BuildError(f"the package cannot be zipped for FC: {exc}") from None
        data = out.read_bytes()
        manifest.update(code_size=len(data), code_checksum=zipfile_det.checksum(data), key=key, cache_key=key)
        encoded = zipfile_det.base64_size(len(data))
        if encoded > settings.build_max_code_b64_bytes:
            raise BuildError(
                f"the code package is too large for Function Compute: {len(data)} bytes zipped, {encoded} "
                f"as base64, over the limit of {settings.build_max_code_b64_bytes} bytes (FC: 100 MB for "
                "code sent through the API, counted here on the base64 text)",
                code="CodeTooLarge",
            )
        path = cache.put(key, out, manifest)
    return Built(lock, path, manifest, cached=False)
