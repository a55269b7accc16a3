"""A stdio MCP server without an SDK: `python schema_tool_server.py TOOLS.json`. Its tools (a JSON list of
MCP tool definitions) are read from the file at every tools/list, so a test changes what it lists by
rewriting the file, or by deploying it with another file."""

import json
import sys

TOOLS = sys.argv[1]


def send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    if not line.strip():
        continue
    msg = json.loads(line)
    ident, method = msg.get("id"), msg.get("method")
    if ident is None:  # a notification (initialized, cancelled): nothing to answer
        continue
    if method == "initialize":
        version = (msg.get("params") or {}).get("protocolVersion") or "2025-06-18"
        result = {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "schema-tools", "version": "1"},
        }
    elif method == "tools/list":
        with open(TOOLS, encoding="utf-8") as fh:
            result = {"tools": json.load(fh)}
    elif method == "ping":
        result = {}
    else:
        send({"jsonrpc": "2.0", "id": ident, "error": {"code": -32601, "message": f"no method {method}"}})
        continue
    send({"jsonrpc": "2.0", "id": ident, "result": result})
