"""Every third-party module the product imports comes from a distribution pyproject.toml declares (not one
that happens to be installed as somebody else's dependency), and no import reaches into a private module
of another package (a leading underscore: `typer._click` moved between releases)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("deployer", "tasks", "schemas", "fc_emulator")
#: The bridge is its own distribution (bridge/pyproject.toml) and is checked against its own declarations.
BRIDGE = ("mcp_fc_bridge",)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(pyproject: Path = REPO / "pyproject.toml") -> set[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    specs = list(project["dependencies"])
    specs += project.get("optional-dependencies", {}).get("local", [])  # what `mcp-fc dev` runs
    return {_canonical(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0]) for spec in specs}


def _imports(packages: tuple[str, ...] = PACKAGES, root: Path = REPO) -> dict[str, list[str]]:
    """Top-level module → the `file:line` of each absolute import of it (imports inside functions too)."""
    found: dict[str, list[str]] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    found.setdefault(name, []).append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def _undeclared(imports: dict[str, list[str]], own: tuple[str, ...], declared: set[str]) -> dict:
    owners = importlib.metadata.packages_distributions()
    undeclared = {}
    for module, where in imports.items():
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top in own or top == "__future__":
            continue
        dists = {_canonical(d) for d in owners.get(top, [top])}
        if not dists & declared:
            undeclared[top] = (sorted(dists), where[:2])
    return undeclared


def test_every_imported_distribution_is_declared() -> None:
    undeclared = _undeclared(_imports(), PACKAGES, _declared())
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_the_bridge_declares_what_it_imports_in_its_own_pyproject() -> None:
    undeclared = _undeclared(
        _imports(BRIDGE, REPO / "bridge"), BRIDGE, _declared(REPO / "bridge" / "pyproject.toml")
    )
    assert not undeclared, f"imported but not declared in bridge/pyproject.toml: {undeclared}"


def test_no_import_of_another_package_s_private_module() -> None:
    private = {
        module: where
        for module, where in _imports().items()
        if module.split(".")[0] not in PACKAGES and any(p.startswith("_") for p in module.split(".")[1:])
    }
    assert not private, f"private modules imported: {private}"
