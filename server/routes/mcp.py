"""MCP at ``/mcp``: every assistant the caller can see as a tool, over Streamable HTTP (the official ``mcp`` SDK).

A tool is named after its assistant, described by it (or its graph's docstring) and takes the graph's input
schema, plus an optional ``thread_id``: the thread to run on (made if missing); without it each call runs on a
new thread. A call runs the assistant as ``/runs/wait`` does (``Services.prepare``, ``admission.admit``,
``records.final_answer``) and answers its final values as JSON. The caller is authenticated as for every other
route (API key or the project's ``auth.path``) before the SDK sees the request; ``http.disable_mcp`` in
``langgraph.json`` leaves the route out. Stateless (no MCP session between requests), answering JSON.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from server.auth import Caller, CurrentCaller
from server.data import assistants
from server.data.assistants import AssistantRow
from server.deps import Services, graph_description
from server.engine import admission, records
from server.engine.wire import JsonText
from server.errors import ApiError
from server.graph_schemas import input_jsonschema
from server.openapi import ERROR_REF
from server.schemas import RunCreate

router = APIRouter(tags=["mcp"])
THREAD_ARGUMENT = "thread_id"
TOOL_NAME = re.compile(r"[^A-Za-z0-9_.-]")


class ToolRefused(Exception):
    """A call the assistant cannot take (an unknown tool, arguments its graph refuses): an ``isError`` result
    whose text names what is wrong, as the MCP spec asks for input errors, so a model can correct itself."""


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[None]:
    """The MCP server for ``app``'s lifetime (its SDK session manager needs a task group of its own)."""
    server: Server[Any, Request] = Server("Loom", version="0.1.0")

    def current() -> tuple[Services, Caller]:
        request = server.request_context.request
        assert request is not None, "the Streamable HTTP transport hands each message its request"
        return request.app.state.services, request.state.caller

    @server.list_tools()  # type: ignore[no-untyped-call]  # the SDK's decorator is untyped
    async def list_tools() -> list[types.Tool]:
        return await tools_of(*current())

    @server.call_tool(validate_input=False)  # the graph's own check names the field (``Services.prepare``)
    async def call(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        return await call_tool(*current(), name, arguments)

    manager = StreamableHTTPSessionManager(server, json_response=True, stateless=True)
    async with manager.run():
        app.state.mcp = manager
        yield


class _Delegated(Response):
    """The answer written by the MCP SDK's ASGI app: the request is handed to it as it came."""

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        super().__init__()
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.manager.handle_request(scope, receive, send)


JSON_RPC_ERROR = {
    "type": "object",
    "required": ["jsonrpc", "error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"]}},
    "description": "A JSON-RPC error from the MCP transport: {jsonrpc, id, error: {code, message}}",
}
MCP_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "A JSON-RPC response", "content": {"application/json": {"schema": {"type": "object"}}}},
    202: {"description": "A notification or response accepted"},
    **{
        status: {"description": description, "content": {"application/json": {"schema": JSON_RPC_ERROR}}}
        for status, description in (
            (400, "Not a JSON-RPC message, or an unknown protocol version"),
            (404, "An unknown MCP session (this server keeps none)"),
            (406, "The client does not accept JSON"),
        )
    },
    415: {"description": "The body is not JSON", "content": {"application/json": {"schema": {"$ref": ERROR_REF}}}},
}


JSON_RPC_MESSAGE = {
    "type": "object",
    "required": ["jsonrpc", "method"],
    "properties": {"jsonrpc": {"const": "2.0"}, "id": {}, "method": {"type": "string"}, "params": {"type": "object"}},
}
BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": JSON_RPC_MESSAGE}}}}


@router.post("/mcp", responses=MCP_ANSWERS, response_class=Response, openapi_extra=BODY)
async def mcp(request: Request, caller: CurrentCaller) -> Response:
    """The Model Context Protocol (Streamable HTTP): every assistant the caller can see is a tool.

    ``tools/list`` names each assistant (its description, its graph's input schema plus an optional
    ``thread_id``); ``tools/call`` runs it as ``/runs/wait`` and answers its final values as JSON text and
    structured content (``isError`` for a run that failed). Input the graph refuses is an ``isError`` result
    naming the field (as the MCP spec asks, so a model can correct itself). Authenticated as every route
    (401/403 before MCP); stateless (no MCP session, so no GET stream): POST only.
    """
    del caller  # authenticated here (request.state.caller), read again by the handlers below
    if not request.headers.get("content-type", "").lower().startswith("application/json"):
        raise ApiError(415, "unsupported_media_type", "content-type: MCP messages are JSON (application/json)")
    return _Delegated(request.app.state.mcp)


async def _tools(loom: Services, caller: Caller) -> dict[str, AssistantRow]:
    """The caller's assistants by tool name; a name taken by an older assistant gets the id's start."""
    filters = await caller.authorize("assistants", "search", {})
    rows = await assistants.matching(loom.sessions, caller.identity, loom.graphs, filters, order=("created_at", "asc"))
    tools: dict[str, AssistantRow] = {}
    for row in rows:
        name = TOOL_NAME.sub("_", row.name)[:100] or row.graph_id
        tools[name if name not in tools else f"{name}-{row.assistant_id[:8]}"] = row
    return tools


def _tool(name: str, row: AssistantRow, loom: Services) -> types.Tool:
    schema = input_jsonschema(row.graph_id, loom.graphs[row.graph_id]) or {"type": "object"}
    thread = {"type": "string", "description": "The thread to run on (made if missing); default: a new thread"}
    properties = {**schema.get("properties", {}), THREAD_ARGUMENT: thread}
    description = row.description or graph_description(row.graph_id) or f"The {row.graph_id} graph"
    return types.Tool(
        name=name, title=row.name, description=description, inputSchema={**schema, "properties": properties}
    )


async def tools_of(loom: Services, caller: Caller) -> list[types.Tool]:
    """Every assistant the caller can see, as a tool."""
    return [_tool(name, row, loom) for name, row in (await _tools(loom, caller)).items()]


async def call_tool(loom: Services, caller: Caller, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    """Run the tool's assistant to its end on a new thread (or the one named) and answer its final values."""
    row = (await _tools(loom, caller)).get(name)
    if row is None:
        raise ToolRefused(f"no tool {name!r}; tools/list names the assistants you can run")
    arguments = dict(arguments)
    thread_id = arguments.pop(THREAD_ARGUMENT, None)
    if thread_id is not None and not isinstance(thread_id, str):
        raise ToolRefused(f"{THREAD_ARGUMENT}: a thread id (a string)")
    try:
        body = RunCreate(assistant_id=row.assistant_id, input=arguments, if_not_exists="create")
        prepared = await loom.prepare(caller.identity, body, thread_id is None)
        run = await admission.admit(loom.manager, caller, thread_id, prepared, None)
    except ValidationError as invalid:
        raise ToolRefused(f"arguments: {invalid.errors()[0]['msg']}") from invalid
    except ApiError as refused:
        raise ToolRefused(f"{refused.status} {refused.code}: {refused.message}") from refused
    answer = await records.final_answer(loom.manager, run.run_id, run.status)
    values = json.loads(answer.text) if isinstance(answer, JsonText) else jsonable_encoder(answer)
    failed = isinstance(values, dict) and "__error__" in values
    structured = values if isinstance(values, dict) else {"result": values}
    text = types.TextContent(type="text", text=json.dumps(values))
    return types.CallToolResult(content=[text], structuredContent=structured, isError=failed)
