"""mcp-fc: the service and CLI that deploy stdio MCP servers to Alibaba Cloud Function Compute 3.0."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mcp-fc")
except PackageNotFoundError:  # pragma: no cover - a source tree without installed metadata
    __version__ = "0.1.0"
