"""The house rules that keep the tree readable (issue 22), checked on every run:

- the rooms exist where shared/reference/layout.md and CONTRIBUTING.md say;
- no production module over 600 lines and no function over 60, unless its docstring says why
  ("Over 600 lines because ..." / "Over 60 lines because ...");
- the import contracts in pyproject.toml hold (`lint-imports`, as .ci/run runs it) and keep the rules that
  layout.md lists, so a contract cannot be dropped quietly to make a change pass.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRODUCTION = ["schemas", "deployer", "tasks", "fc_emulator", "bridge/mcp_fc_bridge"]
ROOMS = ["cli", "api", "auth", "store", "ops", "build", "fc"]
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    found = []
    for top in PRODUCTION:
        found += [p for p in (REPO / top).rglob("*.py") if "migrations" not in p.parts]
    return sorted(found)


def test_the_rooms_are_where_the_layout_says() -> None:
    for room in ROOMS:
        assert (REPO / "deployer" / room / "__init__.py").is_file(), room
    assert (REPO / "fc_emulator" / "__init__.py").is_file()
    assert (REPO / "bridge" / "pyproject.toml").is_file() and (REPO / "bridge" / "mcp_fc_bridge").is_dir()
    assert not (REPO / "deployer" / "emulator").exists() and not (REPO / "deployer" / "bridge").exists()


def test_no_module_over_600_lines_without_a_reason() -> None:
    over = []
    for path in _modules():
        text = path.read_text()
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES and "Over 600 lines because" not in (
            ast.get_docstring(ast.parse(text)) or ""
        ):
            over.append(f"{path.relative_to(REPO)}: {lines}")
    assert not over, over


def test_no_function_over_60_lines_without_a_reason() -> None:
    over = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                reason = "Over 60 lines because" in (ast.get_docstring(node) or "")
                if length > MAX_FUNCTION_LINES and not reason:
                    over.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {length}")
    assert not over, over


def test_the_import_contracts_hold_and_keep_the_layout_rules() -> None:
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    assert layers == [f"deployer.{room}" for room in ROOMS]
    forbidden = {
        c["name"]: (c["source_modules"], c["forbidden_modules"])
        for c in contracts
        if c["type"] == "forbidden"
    }
    rules = [(s, f) for sources, targets in forbidden.values() for s in sources for f in targets]
    for rule in [
        ("schemas", "deployer"),
        ("deployer", "tasks"),
        ("tasks", "deployer.api"),
        ("tasks", "deployer.cli"),
        ("fc_emulator", "deployer"),
        ("fc_emulator", "schemas"),
        ("mcp_fc_bridge", "deployer"),
        ("deployer.api", "fc_emulator"),
        ("tasks", "fc_emulator"),
    ]:
        assert rule in rules, rule
    acyclic = next(c for c in contracts if c["type"] == "acyclic_siblings")
    assert set(acyclic["ancestors"]) >= {"deployer", "tasks", "fc_emulator", "mcp_fc_bridge"}
    linted = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert linted.returncode == 0, linted.stdout[-4000:]
