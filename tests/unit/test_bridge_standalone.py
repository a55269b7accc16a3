"""runtime/Dockerfile copies deployer/bridge alone into the image as `mcp_fc_bridge`, next to only `mcp` and
`uvicorn`: the package must import nothing else of mcp-fc, and only relatively within itself."""

import ast
from pathlib import Path

import deployer.bridge

ALLOWED = {"mcp", "mcp_types", "uvicorn", "anyio", "starlette", "pydantic"}


def test_the_bridge_imports_only_itself_the_sdk_and_the_standard_library():
    import sys

    root = Path(deployer.bridge.__file__).parent
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


def test_the_dockerfile_installs_the_bridge_with_pinned_dependencies():
    dockerfile = (Path(deployer.bridge.__file__).parents[2] / "runtime" / "Dockerfile").read_text()
    assert "COPY deployer/bridge/" in dockerfile and "mcp_fc_bridge" in dockerfile
    assert "ARG MCP_VERSION=2.3.0" in dockerfile and '"mcp==${MCP_VERSION}"' in dockerfile
