"""Installing a locked package and the bridge into a code package's tree, and its entry point.

The tree (unpacked by FC at /code):

    mcp-fc/bridge.py        puts bridge/ on sys.path and runs mcp_fc_bridge (started with `python3 -I`, so
                            nothing of the server's reaches the bridge)
    mcp-fc/server.py        PyPI: puts server/ on sys.path and calls the console script's entry point
    mcp-fc/build.json       what was built (ecosystem, package, version, lock hash, target)
    mcp-fc/requirements.lock  PyPI: the lock, with hashes
    bridge/                 mcp_fc_bridge and its pinned dependencies (bridge/constraints.txt)
    server/                 PyPI: the server and its dependencies (`uv pip install --target`)
    package.json, package-lock.json, node_modules/   npm: `npm ci --omit=dev`

The server runs by its resolved entry point: `node /code/node_modules/PKG/BIN` or
`python3 -I /code/mcp-fc/server.py`; never npx or uvx (npx goes to the registry for a dist-tag even when
the package is installed, and from another cwd it does not find it), never a `.bin` link (flattened, an ESM
server's relative imports break) or a console script (its shebang names the build machine's Python).
"""

from __future__ import annotations

import configparser
import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

from deployer.build.resolve import PYPI_LOCK, Lock, Tools
from deployer.build.target import CODE_DIR, NODE, PYTHON
from deployer.errors import BuildError, ConfigError
from schemas.package import Ecosystem, PackageCommand

BRIDGE_LAUNCHER = """\
# mcp-fc: run the bridge from bridge/ (written by mcp-fc's build; run with python3 -I)
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bridge"))
from mcp_fc_bridge import main
main()
"""
SERVER_LAUNCHER = """\
# mcp-fc: run {program!r}, the console script of {dist}, from server/ (run with python3 -I)
import importlib, os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "server"))
sys.argv[0] = {program!r}
target = importlib.import_module({module!r})
for part in {attrs!r}:
    target = getattr(target, part)
sys.exit(target())
"""


def bridge_sources() -> tuple[Path, Path]:
    """`(the mcp_fc_bridge package dir, bridge/constraints.txt)` of the installed bridge."""
    spec = importlib.util.find_spec("mcp_fc_bridge")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "image-less deploys need mcp-fc-bridge installed beside the worker (pip install ./bridge)"
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    constraints = package.parent / "constraints.txt"
    if not constraints.is_file():
        raise ConfigError(
            f"no bridge/constraints.txt beside {package}: install the bridge from its source tree"
        )
    return package, constraints


def bridge_key(tools: Tools) -> str:
    package, constraints = bridge_sources()
    h = hashlib.sha256(tools.target.name.encode() + tools.target.python_version.encode())
    h.update(constraints.read_bytes())
    for path in sorted(package.glob("*.py")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:32]


def _uv_install_into(
    tools: Tools, target: Path, requirements: Path, flags: list[str], failure: str, *, cwd: Path | None = None
) -> None:
    """Exactly the pinned requirements, for the build's target platform, into a directory of their own."""
    argv = [tools.uv, "pip", "install", "--quiet", "--target", str(target), "--no-deps", *flags]
    tools.run([*argv, *tools.target.uv_args, "-r", str(requirements)], cwd or target, failure)


def install_bridge(tools: Tools, cache: Path) -> Path:
    """The bridge's tree for the target, installed once per (bridge, constraints, target) into `cache`."""
    key = bridge_key(tools)
    done = cache / "bridge" / key
    if done.is_dir():
        return done
    package, constraints = bridge_sources()
    staging = cache / "bridge" / f".{key}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _uv_install_into(tools, staging, constraints, [], "uv could not install the bridge's dependencies")
    shutil.copytree(package, staging / "mcp_fc_bridge", ignore=shutil.ignore_patterns("__pycache__"))
    try:
        staging.rename(done)
    except OSError:  # another build put it there first
        shutil.rmtree(staging, ignore_errors=True)
    return done


def _install_npm(tools: Tools, lock: Lock, tree: Path) -> None:
    for name, text in lock.files.items():
        (tree / name).write_text(text)
    flags = ["--omit=dev", "--no-audit", "--no-fund", "--install-links"]
    if not tools.install_scripts:
        flags.append("--ignore-scripts")
    tools.run([tools.npm, "ci", *flags, *tools.target.npm_args], tree, f"npm could not install {lock.spec}")


def _install_pypi(tools: Tools, lock: Lock, tree: Path) -> None:
    (tree / "mcp-fc").mkdir(exist_ok=True)
    lock_file = tree / "mcp-fc" / PYPI_LOCK
    lock_file.write_text(lock.files[PYPI_LOCK])
    hashes = ["--require-hashes"] if lock.version != "local" else []  # a local folder has no hash
    _uv_install_into(tools, tree / "server", lock_file, hashes, f"uv could not install {lock.spec}", cwd=tree)


def fix_shebangs(site: Path) -> None:
    """Console scripts name the build machine's Python in their shebang: point them at the layer's."""
    for script in sorted((site / "bin").glob("*")) if (site / "bin").is_dir() else []:
        data = script.read_bytes()
        if script.is_file() and data.startswith(b"#!") and b"python" in data.split(b"\n", 1)[0]:
            script.write_bytes(f"#!{PYTHON}".encode() + data[data.index(b"\n") :] if b"\n" in data else b"")


def install(tools: Tools, lock: Lock, tree: Path) -> None:
    if lock.ecosystem == Ecosystem.npm:
        _install_npm(tools, lock, tree)
    else:
        _install_pypi(tools, lock, tree)
        fix_shebangs(tree / "server")


def npm_entry(tree: Path, lock: Lock, program: str) -> list[str]:
    """`node /code/node_modules/PKG/<bin target>`: the package's `bin` (the one named like the package, or
    its only one)."""
    manifest_path = tree / "node_modules" / lock.name / "package.json"
    manifest = json.loads(manifest_path.read_text())
    bins = manifest.get("bin")
    if isinstance(bins, str):
        bins = {lock.name.rsplit("/", 1)[-1]: bins}
    bins = bins or {}
    target = bins.get(program) or bins.get(lock.name.rsplit("/", 1)[-1])
    if target is None and len(bins) == 1:
        target = next(iter(bins.values()))
    if target is None:
        raise BuildError(
            f"{lock.name}@{manifest.get('version')} has no command to run (its package.json `bin` is {bins})"
        )
    return [NODE, f"{CODE_DIR}/node_modules/{lock.name}/{target.removeprefix('./')}"]


def _console_scripts(site: Path) -> dict[str, tuple[str, str, str]]:
    """`{script: (distribution, version, module:attr)}` of every installed distribution."""
    found: dict[str, tuple[str, str, str]] = {}
    for dist in sorted(site.glob("*.dist-info")):
        entry_points = dist / "entry_points.txt"
        if not entry_points.is_file():
            continue
        parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(entry_points.read_text())
        name, _, version = dist.name.removesuffix(".dist-info").rpartition("-")
        for script, value in (
            parser["console_scripts"].items() if parser.has_section("console_scripts") else []
        ):
            found[script] = (name, version, value.split("[", 1)[0].strip())
    return found


def pypi_entry(tree: Path, program: str) -> tuple[list[str], str, str]:
    """`(argv, distribution, version)`: the launcher that calls `program`'s entry point."""
    scripts = _console_scripts(tree / "server")
    if program not in scripts:
        raise BuildError(
            f"no installed package provides the command {program!r} (found: {sorted(scripts) or 'none'})"
        )
    dist, version, value = scripts[program]
    module, _, attrs = value.partition(":")
    launcher = SERVER_LAUNCHER.format(
        program=program, dist=dist, module=module, attrs=attrs.split(".") if attrs else []
    )
    (tree / "mcp-fc" / "server.py").write_text(launcher)
    return [PYTHON, "-I", f"{CODE_DIR}/mcp-fc/server.py"], dist, version


def assemble(tools: Tools, lock: Lock, cmd: PackageCommand, tree: Path, bridge: Path) -> dict[str, object]:
    """Install into `tree` and write the launchers; returns the build manifest (with `entry`, the server's
    argv before the user's arguments)."""
    (tree / "mcp-fc").mkdir(parents=True, exist_ok=True)
    install(tools, lock, tree)
    shutil.copytree(bridge, tree / "bridge", ignore=shutil.ignore_patterns("__pycache__", ".lock"))
    fix_shebangs(tree / "bridge")
    (tree / "mcp-fc" / "bridge.py").write_text(BRIDGE_LAUNCHER)
    version = lock.version
    if lock.ecosystem == Ecosystem.npm:
        entry = npm_entry(tree, lock, cmd.program)
        name = lock.name
    else:
        entry, dist, installed = pypi_entry(tree, cmd.program)
        # a local folder's name and version are known only once it is installed
        name, version = (dist, installed) if lock.version == "local" else (lock.name, version)
    manifest = {
        "ecosystem": lock.ecosystem.value,
        "package": name,
        "version": version,
        "spec": lock.spec,
        "lock_hash": lock.hash,
        "target": tools.target.name,
        "python": tools.target.python_version,
        "entry": entry,
    }
    (tree / "mcp-fc" / "build.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
