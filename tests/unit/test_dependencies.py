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
PACKAGES = ("deployer", "tasks", "schemas")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    specs += project["optional-dependencies"].get("local", [])  # what `mcp-fc dev` runs
    return {_canonical(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0]) for spec in specs}


def _imports() -> dict[str, list[str]]:
    """Top-level module → the `file:line` of each absolute import of it (imports inside functions too)."""
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
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


def test_every_imported_distribution_is_declared() -> None:
    declared = _declared()
    owners = importlib.metadata.packages_distributions()
    undeclared = {}
    for module, where in _imports().items():
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top in PACKAGES or top == "__future__":
            continue
        dists = {_canonical(d) for d in owners.get(top, [top])}
        if not dists & declared:
            undeclared[top] = (sorted(dists), where[:2])
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_no_import_of_another_package_s_private_module() -> None:
    private = {
        module: where
        for module, where in _imports().items()
        if module.split(".")[0] not in PACKAGES and any(p.startswith("_") for p in module.split(".")[1:])
    }
    assert not private, f"private modules imported: {private}"
