"""services/mcp.py against the real test MCP server: cached tool lists, a server that is down or slow."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from pydantic import ValidationError

from loom.processes import ServerProcess, free_port
from loom.settings import McpServer, Settings
from services.mcp import McpToolbox


class Clock:
    """A clock the test moves by hand, so the TTL passes without waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def toolbox(url: str, clock: Clock, call_timeout: float = 30) -> McpToolbox:
    server = McpServer.model_validate({"transport": "streamable_http", "url": url, "permission": "read"})
    return McpToolbox({"notes": server}, list_timeout=30, call_timeout=call_timeout, ttl=60, clock=clock)


async def call(box: McpToolbox, name: str, args: dict[str, Any]) -> ToolMessage:
    tool = {tool.name: tool for tool in await box.tools()}[name]
    result = await tool.ainvoke({"name": name, "args": args, "id": "call-1", "type": "tool_call"})
    assert isinstance(result, ToolMessage)
    return result


def test_a_url_that_is_not_http_is_refused_naming_the_server() -> None:
    servers = json.dumps({"files": {"transport": "streamable_http", "url": "file:///etc/passwd"}})
    with pytest.raises(ValidationError) as refused:
        Settings.model_validate({"mcp_servers": json.loads(servers)})
    assert "mcp_servers.files" in str(refused.value) and "an http:// or https:// URL" in str(refused.value)


async def test_lists_are_reused_for_the_ttl_and_kept_while_the_server_is_down(mcp_http_server: ServerProcess) -> None:
    clock = Clock()
    box = toolbox(f"{mcp_http_server.url}/mcp", clock)
    first = await box.tools()
    assert {tool.name for tool in first} == {"read_note", "delete_note", "stall"}
    mcp_http_server.kill()
    assert await box.tools() == first  # within the TTL: the server is not asked
    clock.now = 61
    assert await box.tools() == first  # listing failed: the last list stays, the call says what is wrong
    failed = await call(box, "read_note", {"title": "groceries"})
    assert failed.status == "error" and "The MCP server 'notes' failed while running read_note" in failed.text


async def test_a_server_that_never_listened_has_no_tools() -> None:
    assert await toolbox(f"http://127.0.0.1:{free_port()}/mcp", Clock()).tools() == []


async def test_a_slow_tool_call_ends_at_the_call_timeout(mcp_http_server: ServerProcess) -> None:
    box = toolbox(f"{mcp_http_server.url}/mcp", Clock(), call_timeout=1)
    answered = await call(box, "read_note", {"title": "groceries"})
    assert answered.status == "success" and "milk, eggs, bread" in answered.text
    stalled = await call(box, "stall", {})
    assert stalled.status == "error" and "failed while running stall: no answer within 1 s" in stalled.text
