"""runtime/Dockerfile installs the bridge distribution (bridge/) alone into the image, next to only `uvicorn`
and `anyio`: the package must import nothing else of mcp-fc (nor the MCP SDK: it is a relay of plain
JSON-RPC, issue 24), and only relatively within itself."""

import ast
from pathlib import Path

import mcp_fc_bridge

ALLOWED = {"uvicorn", "anyio", "uvloop"}


def test_the_bridge_imports_only_itself_the_sdk_and_the_standard_library():
    import sys

    root = Path(mcp_fc_bridge.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    continue  # relative: inside the package
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in ALLOWED or top in sys.stdlib_module_names or top == "__future__", (
                    path.name,
                    name,
                )


def test_the_runtime_image_installs_the_bridge_distribution_with_exact_pins():
    """The image pip-installs bridge/ (no copied source, no hand-written launcher) with constraints.txt, whose
    every line is an exact pin; the ranges in bridge/pyproject.toml admit those versions."""
    repo = Path(mcp_fc_bridge.__file__).parents[2]
    dockerfile = (repo / "runtime" / "Dockerfile").read_text()
    assert "COPY bridge/ " in dockerfile
    assert "pip install --no-cache-dir -c /tmp/mcp-fc-bridge/constraints.txt /tmp/mcp-fc-bridge" in dockerfile
    assert "printf" not in dockerfile and "site-packages" not in dockerfile
    pins = [
        line
        for line in (repo / "bridge" / "constraints.txt").read_text().splitlines()
        if line and line[0] != "#"
    ]
    assert pins and all("==" in line and not set(line) & set("<>~*") for line in pins), pins
    assert "uvicorn==0.55.0" in pins and not any(line.startswith("mcp") for line in pins)
