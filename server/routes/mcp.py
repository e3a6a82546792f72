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

import mcp_types as types
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from server.assistants import AssistantRow, all_visible
from server.auth import Caller, CurrentCaller, metadata_match
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


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[None]:
    """The MCP server for ``app``'s lifetime (its SDK session manager needs a task group of its own)."""
    server: Server[Any] = Server("Loom", version="0.1.0", on_list_tools=list_tools, on_call_tool=call_tool)
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
    structured content (``isError`` for a run that failed). Input the graph refuses is a JSON-RPC error
    (-32602) naming the field. Authenticated as every route (401/403 before MCP); stateless (no MCP
    session, so no GET stream): POST only.
    """
    del caller  # authenticated here (request.state.caller), read again by the handlers below
    if not request.headers.get("content-type", "").lower().startswith("application/json"):
        raise ApiError(415, "unsupported_media_type", "content-type: MCP messages are JSON (application/json)")
    return _Delegated(request.app.state.mcp)


def _context(ctx: Any) -> tuple[Services, Caller]:
    request: Request = ctx.request
    return request.app.state.services, request.state.caller


async def _tools(loom: Services, caller: Caller) -> dict[str, AssistantRow]:
    """The caller's assistants by tool name; a name taken by an older assistant gets the id's start."""
    filters = await caller.authorize("assistants", "search", {})
    rows = metadata_match(await all_visible(loom.sessions, caller.identity, list(loom.graphs)), None, filters)
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
        name=name, title=row.name, description=description, input_schema={**schema, "properties": properties}
    )


async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    """Every assistant the caller can see, as a tool."""
    loom, caller = _context(ctx)
    return types.ListToolsResult(tools=[_tool(name, row, loom) for name, row in (await _tools(loom, caller)).items()])


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    """Run the tool's assistant to its end on a new thread (or the one named) and answer its final values."""
    loom, caller = _context(ctx)
    row = (await _tools(loom, caller)).get(params.name)
    if row is None:
        raise MCPError(INVALID_PARAMS, f"no tool {params.name!r}; tools/list names the assistants you can run")
    arguments = dict(params.arguments or {})
    thread_id = arguments.pop(THREAD_ARGUMENT, None)
    if thread_id is not None and not isinstance(thread_id, str):
        raise MCPError(INVALID_PARAMS, f"{THREAD_ARGUMENT}: a thread id (a string)")
    try:
        body = RunCreate(assistant_id=row.assistant_id, input=arguments, if_not_exists="create")
        run = await admission.admit(loom.manager, caller, thread_id, await loom.prepare(caller.identity, body), None)
    except ValidationError as invalid:
        raise MCPError(INVALID_PARAMS, f"arguments: {invalid.errors()[0]['msg']}") from invalid
    except ApiError as refused:
        code = INVALID_PARAMS if refused.status < 429 else INTERNAL_ERROR
        raise MCPError(code, refused.message, {"status": refused.status, "code": refused.code}) from refused
    answer = await records.final_answer(loom.manager, run.run_id, run.status)
    values = json.loads(answer.text) if isinstance(answer, JsonText) else jsonable_encoder(answer)
    text = json.dumps(values)
    failed = isinstance(values, dict) and "__error__" in values
    structured = values if isinstance(values, dict) else {"result": values}
    return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=structured, is_error=failed)
