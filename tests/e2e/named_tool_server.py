"""A stdio MCP server with one tool whose name is given on the command line (official `mcp` SDK):
    python named_tool_server.py TOOL_NAME
Two releases with different names let a test see, through one URL, which version serves."""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("named-tool")


def _tool() -> str:
    return sys.argv[1]


server.add_tool(_tool, name=sys.argv[1], description="says its own name")

if __name__ == "__main__":
    server.run("stdio")
