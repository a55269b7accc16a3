"""Server commands mcp-fc can package without an image (issue 23): `npx [-y] PKG[@V] ARGS` and
`uvx [--from SPEC] PKG[==V] ARGS`.

Pure parsing, shared by the request's validation (an image-less deploy needs one of these), the CLI and the
worker's build (deployer/build). Anything else (other npx/uvx flags, `node server.js`, a shell line) is not
a package command: on Alibaba Cloud it needs an image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum


class Ecosystem(StrEnum):
    npm = "npm"
    pypi = "pypi"


#: npm's package name rule (lowercase, optional @scope/), from validate-npm-package-name.
NPM_NAME_RE = re.compile(r"^(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$")
#: PEP 508 names (case-insensitive), optionally with extras.
PYPI_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:\[[A-Za-z0-9,._-]+\])?$")
_NPX_YES = frozenset({"-y", "--yes"})


@dataclass(frozen=True)
class PackageCommand:
    """What to install and run: `spec` goes to npm / uv as written (a version range, a dist-tag, a local
    folder or tarball), `program` names the executable the package provides, `args` follow it."""

    ecosystem: Ecosystem
    #: the package's name (npm: with its scope; PyPI: as written, extras dropped), or None for a local path
    name: str | None
    #: what the user asked for, as npm / uv take it: `@scope/pkg@^1`, `mcp-server-time==2026.10.19`, `./pkg`
    spec: str
    #: the executable (npx: the package's bin; uvx: PKG, which --from may install from another spec)
    program: str
    args: list[str] = field(default_factory=list)

    @property
    def pinned(self) -> bool:
        """The user wrote an exact version (npm `@1.2.3`, PyPI `==1.2.3`)."""
        if self.ecosystem == Ecosystem.npm:
            _, _, version = _split_npm(self.spec)
            return bool(re.fullmatch(r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?", version or ""))
        return "==" in self.spec and "*" not in self.spec


def _is_path(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "file:")) or spec.endswith((".tgz", ".tar.gz", ".whl"))


def _split_npm(spec: str) -> tuple[str, str, str | None]:
    """`(name, '@', version)` of an npm spec; the version is None without one."""
    at = spec.find("@", 1)
    if at == -1:
        return spec, "", None
    return spec[:at], "@", spec[at + 1 :]


def _npx(argv: list[str]) -> PackageCommand | None:
    rest = argv[1:]
    while rest and rest[0] in _NPX_YES:
        rest = rest[1:]
    if not rest or rest[0].startswith("-"):
        return None  # other npx flags (--package, -c) change what runs: not packaged
    spec, args = rest[0], rest[1:]
    if _is_path(spec):
        return PackageCommand(Ecosystem.npm, None, spec, program=spec, args=args)
    name, _, version = _split_npm(spec)
    if not NPM_NAME_RE.fullmatch(name) or version == "":
        return None
    return PackageCommand(Ecosystem.npm, name, spec, program=name.rsplit("/", 1)[-1], args=args)


def _pypi_name(spec: str) -> str | None:
    name = re.split(r"[=<>!~;@ ]", spec, maxsplit=1)[0]
    return name.split("[", 1)[0] if PYPI_NAME_RE.fullmatch(name) else None


def _uvx(argv: list[str]) -> PackageCommand | None:
    rest = argv[1:]
    source: str | None = None
    if rest[:1] == ["--from"] and len(rest) >= 2:
        source, rest = rest[1], rest[2:]
    elif rest and rest[0].startswith("--from="):
        source, rest = rest[0].split("=", 1)[1], rest[1:]
    if not rest or rest[0].startswith("-"):
        return None  # other uvx flags (--with, --python) are not packaged
    program, args = rest[0], rest[1:]
    if source is None:
        # `uvx pkg@1.2` is uv's spelling of `pkg==1.2`
        program, _, version = program.partition("@")
        source = f"{program}=={version}" if version else program
    if _is_path(source):
        return PackageCommand(Ecosystem.pypi, None, source, program=program, args=args)
    name = _pypi_name(source)
    if name is None or not PYPI_NAME_RE.fullmatch(program.split("[", 1)[0]):
        return None
    return PackageCommand(Ecosystem.pypi, name, source, program=program.split("[", 1)[0], args=args)


def parse_package_command(argv: list[str]) -> PackageCommand | None:
    """The package an `npx` / `uvx` command runs, or None when the command is anything else."""
    if not argv:
        return None
    program = argv[0].rsplit("/", 1)[-1]
    if program == "npx":
        return _npx(list(argv))
    if program == "uvx":
        return _uvx(list(argv))
    return None


PACKAGE_COMMANDS = "`npx [-y] PKG[@VERSION] ARGS...` or `uvx [--from SPEC] PKG[==VERSION] ARGS...`"
