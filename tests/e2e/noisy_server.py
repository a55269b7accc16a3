"""A stdio MCP server that says things on stderr (official `mcp` SDK):
    python noisy_server.py MARKER
At start it writes MARKER and the value of $API_TOKEN to stderr (a server printing its environment, which
`mcp-fc logs` must scrub); each tool call writes "called MARKER"."""

import os
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("noisy")


def shout() -> str:
    print(f"called {sys.argv[1]}", file=sys.stderr, flush=True)
    return sys.argv[1]


server.add_tool(shout, name="shout", description="writes a line to stderr")

if __name__ == "__main__":
    print(f"starting {sys.argv[1]} with token {os.environ.get('API_TOKEN')}", file=sys.stderr, flush=True)
    server.run("stdio")
