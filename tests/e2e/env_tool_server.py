"""A stdio MCP server (official `mcp` SDK) whose one tool reads an environment variable:
    python env_tool_server.py
so a test sees what environment the bridge handed the server."""

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("env-tool")


@server.tool(description="the value of an environment variable, or null")
def env(name: str) -> str | None:
    return os.environ.get(name)


if __name__ == "__main__":
    server.run("stdio")
