"""What a build installs for: Function Compute's layers (linux x86_64, Python 3.12, Node.js 22) or, for
the local emulator, this machine's platform and Python (a host with Python 3.11 has no 3.12 to stand in for
FC's Python312 layer). The layer ARNs and PATH entries are awesome-fc/awesome-layers' (docs/decisions.md)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from schemas.package import Ecosystem

#: FC's official layers for a code package (awesome-layers docs/Python312/README.md, docs/Nodejs22/README.md):
#: Python312/1 is the only official Python layer the bridge runs on (uvicorn 0.55 needs Python >= 3.11) and
#: runs on custom.debian12 only; Nodejs22/3 runs on custom.debian11/12.
PYTHON_LAYER = ("Python312", 1, "/opt/python3.12/bin")
NODE_LAYER = ("Nodejs22", 3, "/opt/nodejs22/bin")
RUNTIME = "custom.debian12"
#: The layers' interpreters, by absolute path: the custom runtime's image has interpreters of its own
#: (custom.debian12's Python 3.11, by third-party notes), never the ones we built for.
PYTHON = f"{PYTHON_LAYER[2]}/python3"
NODE = f"{NODE_LAYER[2]}/node"
#: Where FC unpacks the code package.
CODE_DIR = "/code"
BASE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin"


@dataclass(frozen=True)
class Target:
    """`fc`: `--python-version 3.12 --python-platform x86_64-manylinux_2_28 --only-binary :all:`, npm for
    linux/x64; `host`: this interpreter and platform."""

    name: str
    python_version: str

    @property
    def uv_args(self) -> list[str]:
        if self.name == "fc":
            return [
                "--python-version",
                self.python_version,
                "--python-platform",
                "x86_64-manylinux_2_28",
                "--only-binary",
                ":all:",
            ]
        return ["--python", sys.executable]

    @property
    def npm_args(self) -> list[str]:
        return ["--os=linux", "--cpu=x64"] if self.name == "fc" else []

    def describe(self) -> str:
        if self.name == "fc":
            return "linux x86_64, Python 3.12 (FC's Python312 layer)"
        return f"this machine ({sys.platform}, Python {self.python_version}) for the local emulator"


def target_for(name: str) -> Target:
    if name == "fc":
        return Target("fc", "3.12")
    return Target("host", f"{sys.version_info.major}.{sys.version_info.minor}")


def layer_arns(ecosystem: Ecosystem, region: str) -> list[str]:
    """The official layers a package needs, in FC's order (a smaller index wins on a clash; none clash)."""
    layers = [NODE_LAYER, PYTHON_LAYER] if ecosystem == Ecosystem.npm else [PYTHON_LAYER]
    return [f"acs:fc:{region}:official:layers/{name}/versions/{version}" for name, version, _ in layers]


def layer_path(ecosystem: Ecosystem) -> str:
    """PATH with the layers' bin at the front, as each layer's README asks (FC sets it only in the console)."""
    bins = [NODE_LAYER[2], PYTHON_LAYER[2]] if ecosystem == Ecosystem.npm else [PYTHON_LAYER[2]]
    return ":".join([*bins, BASE_PATH])
