"""``/mcp``: Loom's assistants as MCP tools, driven by the official MCP client over Streamable HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from loom.processes import LoomServer
from tests.fixtures.servers import serving
from tests.server.live import ALICE, BOB, KEYS

pytestmark = pytest.mark.live
HELLO = {"messages": [{"role": "user", "content": "hello from mcp"}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    """Loom's own graphs, two users."""
    with serving(tmp_path_factory.mktemp("mcp"), fixtures=False, LOOM_API_KEYS=json.dumps(KEYS)) as live:
        yield live


@asynccontextmanager
async def mcp_client(server: LoomServer, headers: dict[str, str]) -> AsyncIterator[ClientSession]:
    """The official client, as any MCP host connects: the server's ``/mcp`` URL and the user's API key."""
    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def test_every_visible_assistant_is_a_tool_and_another_users_are_not(server: LoomServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=BOB, timeout=30) as bob:
        made = await bob.post("/assistants", json={"graph_id": "assistant", "name": "bob's helper"})
        assert made.status_code == 200, made.text
    async with mcp_client(server, ALICE) as alice:
        tools = {tool.name: tool for tool in (await alice.list_tools()).tools}
    assert {"assistant", "support", "supervisor", "pipeline"} <= set(tools)
    assert not any("bob" in name for name in tools), "bob's assistant is bob's"
    support = tools["support"]
    assert support.description and "support" in support.description.lower()
    assert support.inputSchema["type"] == "object"
    assert {"messages", "thread_id"} <= set(support.inputSchema["properties"])
    async with mcp_client(server, BOB) as bob_client:
        assert "bob_s_helper" in {tool.name for tool in (await bob_client.list_tools()).tools}


async def test_a_call_runs_the_assistant_and_answers_its_output(server: LoomServer) -> None:
    async with mcp_client(server, ALICE) as alice:
        answered = await alice.call_tool("assistant", HELLO)
        support = await alice.call_tool("support", {**HELLO, "thread_id": "mcp-support-thread"})
    assert not answered.isError, answered
    assert "hello from mcp" in json.dumps(answered.structuredContent)
    assert not support.isError, support
    assert json.loads(support.content[0].text)["messages"]  # type: ignore[union-attr]
    async with httpx.AsyncClient(base_url=server.url, headers=ALICE, timeout=30) as http:
        thread = await http.get("/threads/mcp-support-thread")
    assert thread.status_code == 200, "the named thread was made, the caller's own"
    assert thread.json()["values"]["messages"]


async def test_a_bad_argument_is_an_error_result_naming_it(server: LoomServer) -> None:
    """As the MCP spec asks for input errors: a tool result with ``isError``, its text naming the field."""
    async with mcp_client(server, ALICE) as alice:
        refused = await alice.call_tool("assistant", {"no_such_field": 1})
        unknown = await alice.call_tool("no_such_tool", HELLO)
        assert (await alice.list_tools()).tools, "the server still answers"
    assert refused.isError and "no_such_field" in refused.content[0].text  # type: ignore[union-attr]
    assert unknown.isError and "no_such_tool" in unknown.content[0].text  # type: ignore[union-attr]


async def test_mcp_needs_the_api_key(server: LoomServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anonymous:
        refused = await anonymous.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert refused.status_code == 401


def test_http_disable_mcp_leaves_the_route_out(tmp_path: Path) -> None:
    project = tmp_path / "langgraph.json"
    graphs = {"assistant": str(Path(__file__).parents[2] / "graphs" / "assistant.py") + ":graph"}
    project.write_text(json.dumps({"graphs": graphs, "http": {"disable_mcp": True}}))
    with serving(tmp_path / "data", fixtures=False, project=project) as live:
        answer = httpx.post(f"{live.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30)
    assert answer.status_code == 404


async def test_mcp_authenticates_through_the_projects_auth(tmp_path: Path) -> None:
    """A project's ``auth.path`` decides who calls and which assistants they see, as for every route."""
    project = Path(__file__).parents[1] / "data" / "projects" / "guarded" / "langgraph.json"
    with serving(tmp_path / "data", fixtures=False, project=project) as live:
        async with mcp_client(live, {"authorization": "Bearer token-a"}) as a:
            seen_by_a = {tool.name for tool in (await a.list_tools()).tools}
        async with mcp_client(live, {"authorization": "Bearer token-b"}) as b:
            seen_by_b = (await b.list_tools()).tools
        unknown = httpx.post(
            f"{live.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"authorization": "Bearer token-z"}, timeout=30,
        )  # fmt: skip
    assert len(seen_by_a) == 2, seen_by_a  # the project's echo and whoami graphs
    assert seen_by_b == [], "the project's assistants handler filters them out for b"
    assert unknown.status_code == 401
