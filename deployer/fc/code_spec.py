"""An image-less deployment's function fields: a code package on FC's `custom.debian12` runtime with the
official layers (issue 23). Pure, like deployer/fc/spec.py, which calls :func:`code_fields` when a request has
no image; the worker's build (deployer/build) hands in a :class:`CodePackage`.

    runtime               custom.debian12 (Python312/1 runs there only)
    handler               index.handler (FC requires one; a custom runtime ignores it)
    code                  {zipFile: base64, checksum}; left out of an update when FC's codeChecksum already
                          equals the package's (devsapp/fc3 skips the upload the same way)
    layers                Nodejs22/3 (npm servers) and Python312/1, checked with GetLayerVersionByArn first
    environmentVariables  PATH with the layers' bin in front (FC sets it only in the console), HOME and caches
                          in /tmp (the only directory known writable), then the user's env
    customRuntimeConfig   command [python3], args [-I /code/mcp-fc/bridge.py --port 8080 --host 0.0.0.0 ...
                          -- <server entry> <args>], port 8080, the health check on the bridge's /status
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alibabacloud_fc20230330 import models as fc

#: FC's official layers for a code package (awesome-layers docs/Python312/README.md, docs/Nodejs22/README.md):
#: Python312/1 is the only official Python layer the bridge runs on (uvicorn 0.55 needs Python >= 3.11) and
#: runs on custom.debian12 only; Nodejs22/3 runs on custom.debian11/12.
PYTHON_LAYER = ("Python312", 1, "/opt/python3.12/bin")
NODE_LAYER = ("Nodejs22", 3, "/opt/nodejs22/bin")
#: The layers' interpreters by absolute path (deployer/build builds for them): the runtime's image has
#: interpreters of its own (custom.debian12's Python 3.11, by third-party notes), never the ones we built for.
PYTHON = f"{PYTHON_LAYER[2]}/python3"
NODE = f"{NODE_LAYER[2]}/node"
#: Where FC unpacks the code package.
CODE_DIR = "/code"
BRIDGE_LAUNCHER = f"{CODE_DIR}/mcp-fc/bridge.py"
CODE_RUNTIME = "custom.debian12"
BASE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin"
#: What an instance may write: /tmp only is known (FC 1.0's documentation); npm's and Python's defaults
#: would write under HOME or beside the code.
RUNTIME_ENV = {
    "HOME": "/tmp",
    "npm_config_cache": "/tmp/.npm",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def _layers(ecosystem: str) -> list[tuple[str, int, str]]:
    return [NODE_LAYER, PYTHON_LAYER] if ecosystem == "npm" else [PYTHON_LAYER]


def layer_arns(ecosystem: str, region: str) -> list[str]:
    """The official layers a package needs, in FC's order (a smaller index wins on a clash; none clash)."""
    return [f"acs:fc:{region}:official:layers/{n}/versions/{v}" for n, v, _ in _layers(ecosystem)]


def layer_path(ecosystem: str) -> str:
    """PATH with the layers' bin in front, as each layer's README asks (FC sets it only in the console)."""
    return ":".join([*(bin_dir for _, _, bin_dir in _layers(ecosystem)), BASE_PATH])


@dataclass(frozen=True)
class CodePackage:
    """A built package as the spec needs it. `zip_base64` None: send no code (FC has this checksum)."""

    entry: list[str]
    checksum: str
    layers: list[str]
    path: str
    zip_base64: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)


def code_location(package: CodePackage) -> fc.InputCodeLocation | None:
    if package.zip_base64 is None:
        return None
    return fc.InputCodeLocation(zip_file=package.zip_base64, checksum=package.checksum)


def code_environment(package: CodePackage, user_env: dict[str, str]) -> dict[str, str]:
    """The layers' PATH and /tmp for HOME and caches, under the user's own env (which may override them)."""
    return {"PATH": package.path, **RUNTIME_ENV, **package.extra_env, **user_env}


def runtime_config(
    package: CodePackage,
    bridge_args: list[str],
    server_args: list[str],
    health: fc.CustomHealthCheckConfig | None,
) -> fc.CustomRuntimeConfig:
    """`python3 -I /code/mcp-fc/bridge.py <bridge flags> -- <entry> <args>`: args are never empty (FC
    answers 400 to `args: []`, alibabacloud-fc-mcp-server index.ts:94)."""
    return fc.CustomRuntimeConfig(
        command=[PYTHON],
        args=["-I", BRIDGE_LAUNCHER, *bridge_args, "--", *package.entry, *server_args],
        port=8080,
        health_check_config=health,
    )
