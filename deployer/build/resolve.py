"""Resolving and pinning a package command: the exact version and a lock file with hashes.

npm: `npm install --package-lock-only --ignore-scripts --save-exact SPEC` in an empty project (a
`package-lock.json` with each package's sha512 `integrity`); PyPI: `uv pip compile --generate-hashes` (a
requirements file with every wheel's sha256). A redeploy installs from the lock it kept (`npm ci`,
`uv pip install --require-hashes`) unless the user asks to upgrade.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployer.build.target import Target
from deployer.build.tools import Output, run_tool
from deployer.errors import BuildError
from schemas.package import Ecosystem, PackageCommand

#: An empty project for npm to resolve into (private: npm never publishes it).
NPM_PROJECT = {"name": "mcp-fc-server", "version": "0.0.0", "private": True}
NPM_FLAGS = ["--ignore-scripts", "--no-audit", "--no-fund", "--install-links", "--save-exact"]
PYPI_LOCK = "requirements.lock"


@dataclass(frozen=True)
class Lock:
    """A resolved package: its exact version and the lock file(s) that reproduce the install."""

    ecosystem: Ecosystem
    spec: str
    name: str
    version: str
    files: Mapping[str, str] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        h = hashlib.sha256(self.ecosystem.value.encode())
        for path in sorted(self.files):
            h.update(b"\0" + path.encode() + b"\0" + self.files[path].encode())
        return h.hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "ecosystem": self.ecosystem.value,
            "spec": self.spec,
            "name": self.name,
            "version": self.version,
            "files": dict(self.files),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Lock:
        return cls(
            Ecosystem(data["ecosystem"]),
            str(data["spec"]),
            str(data["name"]),
            str(data["version"]),
            dict(data.get("files") or {}),
        )


@dataclass(frozen=True)
class Tools:
    """How to run npm and uv for a build: executables, environment, limits, where output goes."""

    npm: str
    uv: str
    env: Mapping[str, str]
    timeout_s: float
    output: Output
    secrets: tuple[str, ...]
    target: Target
    install_scripts: bool = False

    def run(self, argv: list[str], cwd: Path, what: str, stdin: str | None = None) -> str:
        return run_tool(
            argv,
            cwd=cwd,
            env=self.env,
            timeout_s=self.timeout_s,
            output=self.output,
            secrets=self.secrets,
            what=what,
            stdin=stdin,
        )


def _npm_lock(tools: Tools, cmd: PackageCommand) -> Lock:
    with tempfile.TemporaryDirectory(prefix="mcpfc-resolve-") as tmp:
        work = Path(tmp)
        (work / "package.json").write_text(json.dumps(NPM_PROJECT))
        flags = [f for f in NPM_FLAGS if tools.install_scripts is False or f != "--ignore-scripts"]
        tools.run(
            [tools.npm, "install", "--package-lock-only", *flags, *tools.target.npm_args, cmd.spec],
            work,
            f"npm could not resolve {cmd.spec}",
        )
        manifest = json.loads((work / "package.json").read_text())
        lock_text = (work / "package-lock.json").read_text()
        for value in (manifest.get("dependencies") or {}).values():
            # npm writes a local folder or tarball relative to this directory; the install runs elsewhere
            if value.startswith("file:") and not value.startswith("file:/"):
                absolute = f"file:{(work / value[5:]).resolve()}"
                lock_text = lock_text.replace(json.dumps(value), json.dumps(absolute))
                manifest["dependencies"] = {
                    k: absolute if v == value else v for k, v in manifest["dependencies"].items()
                }
    deps = manifest.get("dependencies") or {}
    if len(deps) != 1:
        raise BuildError(f"npm resolved {cmd.spec} to {sorted(deps)}, not one package")
    name = next(iter(deps))
    entry = (json.loads(lock_text).get("packages") or {}).get(f"node_modules/{name}") or {}
    version = str(entry.get("version") or deps[name])
    files = {
        "package.json": json.dumps(manifest, indent=2, sort_keys=True) + "\n",
        "package-lock.json": lock_text,
    }
    return Lock(Ecosystem.npm, cmd.spec, name, version, files)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pypi_lock(tools: Tools, cmd: PackageCommand) -> Lock:
    with tempfile.TemporaryDirectory(prefix="mcpfc-resolve-") as tmp:
        lock_text = tools.run(
            [
                tools.uv,
                "pip",
                "compile",
                "--generate-hashes",
                "--no-header",
                "--quiet",
                *tools.target.uv_args,
                "-",
            ],
            Path(tmp),
            f"uv could not resolve {cmd.spec}",
            stdin=cmd.spec + "\n",
        )
    name = cmd.name or cmd.program
    found = re.search(rf"^{re.escape(_normalise(name))}==(\S+)", lock_text, re.MULTILINE | re.IGNORECASE)
    if found is None:  # a local path: the version is read from what gets installed
        named = re.search(r"^([A-Za-z0-9._-]+) @ ", lock_text, re.MULTILINE)
        return Lock(
            Ecosystem.pypi, cmd.spec, named.group(1) if named else name, "local", {PYPI_LOCK: lock_text}
        )
    return Lock(Ecosystem.pypi, cmd.spec, _normalise(name), found.group(1), {PYPI_LOCK: lock_text + "\n"})


def resolve(tools: Tools, cmd: PackageCommand) -> Lock:
    """Pin `cmd`'s package: one npm / uv resolution against the registry (or the local path)."""
    if cmd.ecosystem == Ecosystem.npm:
        return _npm_lock(tools, cmd)
    return _pypi_lock(tools, cmd)
