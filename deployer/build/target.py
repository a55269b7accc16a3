"""What a build installs for: Function Compute's layers (linux x86_64, Python 3.12, Node.js 22) or, for
the local emulator, this machine's platform and Python (a host with Python 3.11 has no 3.12 to stand in for
FC's Python312 layer). The layer ARNs and PATH entries are awesome-fc/awesome-layers' (docs/decisions.md)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from deployer.fc.code_spec import CODE_DIR, NODE, PYTHON, layer_arns, layer_path  # noqa: F401 - re-exported


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
