"""Our own MCP test server for the official conformance suite's server scenarios (issue 24 #4), on the
low-level `mcp` 2.x SDK server so that every result is exactly the JSON the scenarios expect:

    python everything_server.py stdio                  # behind mcp-fc-bridge, or deployed
    python everything_server.py http --port PORT       # the suite talks to it directly

The suite (`@modelcontextprotocol/conformance` 0.1.16) calls fixed names: the tools, resources and prompts
below are the ones its scenarios name, each answering what the scenario checks (read from the scenarios'
own descriptions and checks). It is written for this project, not taken from the suite's repository.

Over HTTP it runs the SDK's streamable HTTP with sessions and, on loopback, its DNS-rebinding protection:
what a careful HTTP MCP server does, so a bridge in front of the stdio build is measured against that.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import warnings
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.message import ServerMessageMetadata

# Logging, sampling and elicitation are deprecated in 2026-07-28 but are what the handshake-era scenarios
# test; the SDK's runtime warnings about serving them would only add noise to the server's stderr.
warnings.simplefilter("ignore", MCPDeprecationWarning)

# A 1x1 red PNG and a minimal WAV (44-byte header, one silent 8-bit sample), base64.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
WAV = "UklGRiUAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQEAAACA"

LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
# One level for the process: over stdio the one client is the bridge; over HTTP the suite runs one scenario
# at a time.
state: dict[str, Any] = {"level": "debug", "subscribed": set()}

NO_ARGS: dict[str, Any] = {"type": "object", "properties": {}}
JSON_SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}


def _string_arg(name: str, description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {"type": "string", "description": description}},
        "required": [name],
    }


TOOLS: list[dict[str, Any]] = [
    {"name": "test_simple_text", "description": "Returns one text block", "inputSchema": NO_ARGS},
    {"name": "test_image_content", "description": "Returns a 1x1 PNG", "inputSchema": NO_ARGS},
    {"name": "test_audio_content", "description": "Returns a tiny WAV", "inputSchema": NO_ARGS},
    {
        "name": "test_embedded_resource",
        "description": "Returns an embedded text resource",
        "inputSchema": NO_ARGS,
    },
    {
        "name": "test_multiple_content_types",
        "description": "Returns text, image and resource",
        "inputSchema": NO_ARGS,
    },
    {
        "name": "test_tool_with_logging",
        "description": "Logs three info messages while it runs",
        "inputSchema": NO_ARGS,
    },
    {
        "name": "test_tool_with_progress",
        "description": "Reports progress 0, 50, 100 of 100",
        "inputSchema": NO_ARGS,
    },
    {"name": "test_error_handling", "description": "Always fails with isError", "inputSchema": NO_ARGS},
    {
        "name": "test_sampling",
        "description": "Asks the client's LLM",
        "inputSchema": _string_arg("prompt", "for the LLM"),
    },
    {
        "name": "test_elicitation",
        "description": "Asks the user",
        "inputSchema": _string_arg("message", "for the user"),
    },
    {
        "name": "test_elicitation_sep1034_defaults",
        "description": "Elicits a form whose every primitive field has a default",
        "inputSchema": NO_ARGS,
    },
    {
        "name": "test_elicitation_sep1330_enums",
        "description": "Elicits a form with the five enum shapes",
        "inputSchema": NO_ARGS,
    },
    {
        "name": "json_schema_2020_12_tool",
        "description": "Takes a JSON Schema 2020-12 input",
        "inputSchema": JSON_SCHEMA_2020_12,
    },
    {
        "name": "test_reconnection",
        "description": "For the SSE polling scenario: answers at once",
        "inputSchema": NO_ARGS,
    },
]

SEP1034_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "default": "John Doe"},
        "age": {"type": "integer", "default": 30},
        "score": {"type": "number", "default": 95.5},
        "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
        "verified": {"type": "boolean", "default": True},
    },
}
SEP1330_SCHEMA = {
    "type": "object",
    "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {
            "type": "string",
            "oneOf": [
                {"const": f"value{i}", "title": f"{t} Option"} for i, t in enumerate(("First", "Second"), 1)
            ],
        },
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {
            "type": "array",
            "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
        },
        "titledMulti": {
            "type": "array",
            "items": {
                "anyOf": [
                    {"const": f"value{i}", "title": f"{t} Choice"}
                    for i, t in enumerate(("First", "Second"), 1)
                ]
            },
        },
    },
}
ELICITATION_SCHEMA = {
    "type": "object",
    "properties": {
        "username": {"type": "string", "description": "User's response"},
        "email": {"type": "string", "description": "User's email address"},
    },
    "required": ["username", "email"],
}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def result(*content: dict[str, Any], error: bool = False) -> dict[str, Any]:
    return {"content": list(content), "isError": error}


async def log(ctx: Any, level: str, message: str) -> None:
    if LEVELS.index(level) >= LEVELS.index(state["level"]):
        params = types.LoggingMessageNotificationParams(level=level, logger="everything", data=message)  # type: ignore[arg-type]
        notification = types.LoggingMessageNotification(params=params)
        await ctx.session.send_notification(notification, related_request_id=ctx.request_id)


async def ask(ctx: Any, request: Any, answer_type: type, capability: types.ClientCapabilities) -> Any:
    """A server -> client request on the calling request's stream, or None if the client cannot take it."""
    if not ctx.session.check_client_capability(capability):
        return None
    return await ctx.session.send_request(
        request, answer_type, metadata=ServerMessageMetadata(related_request_id=ctx.request_id)
    )


async def elicit(ctx: Any, message: str, schema: dict[str, Any]) -> dict[str, Any]:
    request = types.ElicitRequest(
        params=types.ElicitRequestFormParams(message=message, requested_schema=schema)
    )
    capability = types.ClientCapabilities(elicitation=types.ElicitationCapability())
    answer = await ask(ctx, request, types.ElicitResult, capability)
    if answer is None:
        return result(text("The client does not support elicitation"), error=True)
    return result(
        text(f"Elicitation completed: action={answer.action}, content={json.dumps(answer.content)}")
    )


async def sample(ctx: Any, prompt: str) -> dict[str, Any]:
    message = types.SamplingMessage(role="user", content=types.TextContent(text=prompt))
    request = types.CreateMessageRequest(
        params=types.CreateMessageRequestParams(messages=[message], max_tokens=100)
    )
    capability = types.ClientCapabilities(sampling=types.SamplingCapability())
    answer = await ask(ctx, request, types.CreateMessageResult, capability)
    if answer is None:
        return result(text("The client does not support sampling"), error=True)
    reply = answer.content.text if isinstance(answer.content, types.TextContent) else str(answer.content)
    return result(text(f"LLM response: {reply}"))


IMAGE_BLOCK = {"type": "image", "data": PNG, "mimeType": "image/png"}
# What the content tools answer, always the same.
FIXED_RESULTS = {
    "test_simple_text": result(text("This is a simple text response for testing.")),
    "test_image_content": result(IMAGE_BLOCK),
    "test_audio_content": result({"type": "audio", "data": WAV, "mimeType": "audio/wav"}),
    "test_embedded_resource": result(
        {
            "type": "resource",
            "resource": {
                "uri": "test://embedded-resource",
                "mimeType": "text/plain",
                "text": "This is an embedded resource content.",
            },
        }
    ),
    "test_multiple_content_types": result(
        text("Multiple content types test:"),
        IMAGE_BLOCK,
        {
            "type": "resource",
            "resource": {
                "uri": "test://mixed-content-resource",
                "mimeType": "application/json",
                "text": '{"test":"data","value":123}',
            },
        },
    ),
    "test_error_handling": result(text("This tool intentionally returns an error for testing"), error=True),
    # The polling scenario wants this tool to close its SSE stream mid-call and the client to resume with
    # Last-Event-ID; that needs an event store, which this server does not keep, so it answers at once.
    "test_reconnection": result(text("Reconnection test completed")),
}


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> dict[str, Any]:
    args = params.arguments or {}
    if params.name in FIXED_RESULTS:
        return copy.deepcopy(FIXED_RESULTS[params.name])
    match params.name:
        case "test_tool_with_logging":
            # The scenario waits for three log lines; the pauses let each leave before the next.
            for i, message in enumerate(
                ("Tool execution started", "Tool processing data", "Tool execution completed")
            ):
                if i:
                    await anyio.sleep(0.05)
                await log(ctx, "info", message)
            return result(text("Logging test completed"))
        case "test_tool_with_progress":
            for i, progress in enumerate((0, 50, 100)):
                if i:
                    await anyio.sleep(0.05)
                await ctx.session.report_progress(progress, 100)
            token = ((ctx.params or {}).get("_meta") or {}).get("progressToken")
            return result(text(f"Progress test completed (progressToken {token!r})"))
        case "test_sampling":
            return await sample(ctx, str(args.get("prompt", "")))
        case "test_elicitation":
            return await elicit(ctx, str(args.get("message", "")), ELICITATION_SCHEMA)
        case "test_elicitation_sep1034_defaults":
            return await elicit(ctx, "Please review the defaults", SEP1034_SCHEMA)
        case "test_elicitation_sep1330_enums":
            return await elicit(ctx, "Please choose", SEP1330_SCHEMA)
        case "json_schema_2020_12_tool":
            return result(text(f"Received: {json.dumps(args, sort_keys=True)}"))
    raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")


RESOURCES = [
    {
        "uri": "test://static-text",
        "name": "static-text",
        "description": "A fixed text",
        "mimeType": "text/plain",
    },
    {
        "uri": "test://static-binary",
        "name": "static-binary",
        "description": "A 1x1 PNG",
        "mimeType": "image/png",
    },
    {
        "uri": "test://watched-resource",
        "name": "watched-resource",
        "description": "Subscribable",
        "mimeType": "text/plain",
    },
]
TEMPLATE = {
    "uriTemplate": "test://template/{id}/data",
    "name": "template-data",
    "description": "Data for an id",
    "mimeType": "application/json",
}


async def read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> dict[str, Any]:
    uri = str(params.uri)
    if uri == "test://static-text":
        content = {"mimeType": "text/plain", "text": "This is the content of the static text resource."}
    elif uri == "test://static-binary":
        content = {"mimeType": "image/png", "blob": PNG}
    elif uri == "test://watched-resource":
        content = {"mimeType": "text/plain", "text": "A resource clients may subscribe to."}
    elif uri.startswith("test://template/") and uri.endswith("/data"):
        item = uri.removeprefix("test://template/").removesuffix("/data")
        data = {"id": item, "templateTest": True, "data": f"Data for ID: {item}"}
        content = {"mimeType": "application/json", "text": json.dumps(data, separators=(",", ":"))}
    else:
        raise MCPError(types.INVALID_PARAMS, f"Resource not found: {uri}")
    return {"contents": [{"uri": uri, **content}]}


PROMPTS = [
    {"name": "test_simple_prompt", "description": "No arguments"},
    {
        "name": "test_prompt_with_arguments",
        "description": "Two arguments",
        "arguments": [
            {"name": "arg1", "description": "First test argument", "required": True},
            {"name": "arg2", "description": "Second test argument", "required": True},
        ],
    },
    {
        "name": "test_prompt_with_embedded_resource",
        "description": "Embeds a resource",
        "arguments": [
            {"name": "resourceUri", "description": "URI of the resource to embed", "required": True}
        ],
    },
    {"name": "test_prompt_with_image", "description": "Carries an image"},
]


def user(content: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": content}


async def get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> dict[str, Any]:
    args = params.arguments or {}
    match params.name:
        case "test_simple_prompt":
            return {"messages": [user(text("This is a simple prompt for testing."))]}
        case "test_prompt_with_arguments":
            arg1, arg2 = args.get("arg1", ""), args.get("arg2", "")
            return {"messages": [user(text(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"))]}
        case "test_prompt_with_embedded_resource":
            resource = {
                "uri": args.get("resourceUri", ""),
                "mimeType": "text/plain",
                "text": "Embedded resource content for testing.",
            }
            return {
                "messages": [
                    user({"type": "resource", "resource": resource}),
                    user(text("Please process the embedded resource above.")),
                ]
            }
        case "test_prompt_with_image":
            return {"messages": [user(IMAGE_BLOCK), user(text("Please analyze the image above."))]}
    raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {params.name}")


COMPLETIONS = {"arg1": ["paris", "park", "party", "test", "testing"], "arg2": ["alpha", "beta", "gamma"]}


async def complete(ctx: Any, params: types.CompleteRequestParams) -> dict[str, Any]:
    found = [v for v in COMPLETIONS.get(params.argument.name, []) if v.startswith(params.argument.value)]
    return {"completion": {"values": found, "total": len(found), "hasMore": False}}


async def set_level(ctx: Any, params: types.SetLevelRequestParams) -> dict[str, Any]:
    state["level"] = params.level
    return {}


async def subscribe(ctx: Any, params: types.SubscribeRequestParams) -> dict[str, Any]:
    state["subscribed"].add(str(params.uri))
    return {}


async def unsubscribe(ctx: Any, params: types.UnsubscribeRequestParams) -> dict[str, Any]:
    state["subscribed"].discard(str(params.uri))
    return {}


def build() -> Server:
    def listed(key: str, items: list[dict[str, Any]]) -> Any:
        async def handler(ctx: Any, params: Any) -> dict[str, Any]:
            return {key: items}

        return handler

    server: Server = Server("mcp-fc-conformance-everything", version="1.0.0")
    for method, key, items in (
        ("tools/list", "tools", TOOLS),
        ("resources/list", "resources", RESOURCES),
        ("resources/templates/list", "resourceTemplates", [TEMPLATE]),
        ("prompts/list", "prompts", PROMPTS),
    ):
        server.add_request_handler(method, types.PaginatedRequestParams, listed(key, items))
    server.add_request_handler("tools/call", types.CallToolRequestParams, call_tool)
    server.add_request_handler("resources/read", types.ReadResourceRequestParams, read_resource)
    server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
    server.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)
    server.add_request_handler("prompts/get", types.GetPromptRequestParams, get_prompt)
    server.add_request_handler("completion/complete", types.CompleteRequestParams, complete)
    server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
    return server


async def serve_stdio(server: Server) -> None:
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    server = build()
    if args.transport == "stdio":
        anyio.run(serve_stdio, server)
        return
    import uvicorn

    app = server.streamable_http_app(host=args.host)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
