"""The assistant's workspace agent with the tools of a real MCP server (tests/fixtures/mcp_server.py).

The model is the scripted OpenAI server; the MCP server runs in its own process, started through
the official SDK's transports by langchain-mcp-adapters as LOOM_MCP_SERVERS configures it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from graphs import assistant, plan_execute
from loom.processes import PROJECT_ROOT, ServerProcess
from services.mcp import mcp_tools
from state.common import RunContext
from tests.fixtures import openai_server as scripted_model
from tests.fixtures.env import SetEnv
from tests.fixtures.openai_server import ScriptedOpenAI, call, last_is_tool, structured, text, tools_offered

ROUTE = structured({"label": "workspace_agent", "reason": "the user's notes"}, when="RouteChoice", repeat=True)


@pytest.fixture
def stdio_server(set_env: SetEnv, journal: Path, openai_server: ScriptedOpenAI) -> None:
    command = {"transport": "stdio", "command": sys.executable, "args": ["-m", "tests.fixtures.mcp_server", "stdio"]}
    server = {**command, "cwd": str(PROJECT_ROOT), "env": {"MCP_TEST_JOURNAL": str(journal)}}
    set_env(LOOM_MCP_SERVERS=json.dumps({"notes": {**server, "tools": {"read_note": "read"}}}))
    set_env(LOOM_DIRECT_TOOL_DISPATCH="false")


@pytest.fixture
def http_server(set_env: SetEnv, mcp_http_server: ServerProcess, openai_server: ScriptedOpenAI) -> ServerProcess:
    server = {"transport": "streamable_http", "url": f"{mcp_http_server.url}/mcp", "tools": {"read_note": "read"}}
    set_env(LOOM_MCP_SERVERS=json.dumps({"notes": server}), LOOM_DIRECT_TOOL_DISPATCH="false")
    return mcp_http_server


def config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


async def run(
    graph: CompiledStateGraph[Any, Any, Any, Any], thread: str, payload: Any, context: RunContext | None = None
) -> dict[str, Any]:
    """One run (a user message or a resume); the thread's state after it."""
    await graph.ainvoke(payload, config(thread), context=context or RunContext(user_id="demo"))
    snapshot = await graph.aget_state(config(thread))
    return {**snapshot.values, "interrupts": [i.value for i in snapshot.interrupts]}


def tool_results(state: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in state["messages"] if isinstance(m, ToolMessage)]


def ask(words: str) -> dict[str, Any]:
    return {"messages": [HumanMessage(words)]}


@pytest.mark.usefixtures("stdio_server")
async def test_permissions_come_from_the_server_entry_and_default_to_destructive() -> None:
    levels = {tool.name: (tool.metadata or {})["permission"] for tool in await mcp_tools()}
    assert levels == {"read_note": "read", "delete_note": "destructive", "stall": "destructive"}


@pytest.mark.usefixtures("stdio_server")
async def test_the_workspace_agent_reads_through_an_mcp_tool_over_stdio(
    openai_server: ScriptedOpenAI, checkpointer: BaseCheckpointSaver[str]
) -> None:
    openai_server.add(
        ROUTE,
        call("read_note", {"title": "groceries"}, when=tools_offered("read_note", "delete_note", "search_files")),
        text("You need milk, eggs and bread.", when=last_is_tool),
    )
    state = await run(assistant.build_graph(checkpointer=checkpointer), "t1", ask("What is on my groceries note?"))
    (result,) = tool_results(state)
    assert result.name == "read_note" and "milk, eggs, bread" in result.text and result.status == "success"
    assert state["messages"][-1].text == "You need milk, eggs and bread." and not state["interrupts"]
    assert not openai_server.unused and not openai_server.rejected


@pytest.mark.usefixtures("http_server")
async def test_a_destructive_mcp_tool_runs_only_once_a_human_approves(
    openai_server: ScriptedOpenAI, checkpointer: BaseCheckpointSaver[str], journal: Path
) -> None:
    graph = assistant.build_graph(checkpointer=checkpointer)
    for thread in ("approved", "rejected"):
        openai_server.add(ROUTE, call("delete_note", {"title": thread}, when=tools_offered("delete_note")))
        state = await run(graph, thread, ask(f"Delete my {thread} note."))
        (request,) = state["interrupts"]
        assert request["action_requests"] == [
            {
                "name": "delete_note",
                "args": {"title": thread},
                "description": "Delete one of the user's notes for good.",
            }
        ]
        assert request["tool_calls"][0]["permission"] == "destructive" and not journal.exists()
    openai_server.add(text("Deleted.", when=last_is_tool), text("I did not delete it.", when=last_is_tool))
    approved = await run(graph, "approved", Command(resume={"decisions": [{"type": "approve"}]}))
    assert journal.read_text() == "approved\n" and "deleted approved" in tool_results(approved)[0].text
    reject = {"decisions": [{"type": "reject", "message": "keep it"}]}
    rejected = await run(graph, "rejected", Command(resume=reject))
    assert journal.read_text() == "approved\n"
    assert tool_results(rejected)[0].text.startswith("REJECTED by the human approver: keep it.")
    assert rejected["messages"][-1].text == "I did not delete it." and not openai_server.unused


async def test_a_killed_mcp_server_fails_only_its_tool_call(
    http_server: ServerProcess, openai_server: ScriptedOpenAI, checkpointer: BaseCheckpointSaver[str], journal: Path
) -> None:
    openai_server.add(
        ROUTE,
        call("read_note", {"title": "ideas"}, when=tools_offered("read_note")),
        call("delete_note", {"title": "ideas"}, when=last_is_tool),
        text("The notes server is down; nothing was deleted.", when=last_is_tool),
    )
    graph = assistant.build_graph(checkpointer=checkpointer)
    state = await run(graph, "t1", ask("Read my ideas note, then delete it."))
    assert "an MCP server for the shop" in tool_results(state)[0].text and state["interrupts"]
    http_server.kill()  # SIGKILL mid-run, while the run waits for the approval
    state = await run(graph, "t1", Command(resume={"decisions": [{"type": "approve"}]}))
    failed = tool_results(state)[-1]
    assert failed.status == "error" and not journal.exists()
    assert "The MCP server 'notes' failed while running delete_note" in failed.text
    seen = openai_server.requests[-1]["messages"][-1]
    assert seen["role"] == "tool" and "The MCP server 'notes' failed" in json.dumps(seen)
    assert state["messages"][-1].text == "The notes server is down; nothing was deleted."


@pytest.mark.usefixtures("http_server")
async def test_a_plan_uses_mcp_tools_and_a_destructive_step_waits_for_approval(
    openai_server: ScriptedOpenAI, checkpointer: BaseCheckpointSaver[str], journal: Path
) -> None:
    read = {"id": "step_1", "description": "Read it", "tool": "read_note", "arguments": {"title": "groceries"}}
    delete = {"id": "step_2", "description": "Delete it", "tool": "delete_note", "arguments": {"title": "groceries"}}
    plan = {"steps": [{**read, "depends_on": []}, {**delete, "depends_on": ["step_1"]}]}
    openai_server.add(
        structured(plan, when=scripted_model.schema_named("Plan")),
        text(
            "Your note said milk, eggs, bread; it is deleted.",
            when=scripted_model.system_says("You answer the user's request"),
        ),
    )
    graph = plan_execute.build_graph(checkpointer=checkpointer)
    context = RunContext(user_id="demo", permissions=("read", "write", "destructive"))
    paused = await run(graph, "plan", ask("Read my groceries note, then delete it."), context)
    (request,) = paused["interrupts"]
    assert request["type"] == "plan_approval" and not journal.exists()
    assert [(s["id"], s["tool"], s["permission"]) for s in request["steps_to_approve"]] == [
        ("step_2", "delete_note", "destructive")
    ]
    done = await run(graph, "plan", Command(resume={"decisions": [{"type": "approve"}]}), context)
    assert journal.read_text() == "groceries\n" and "milk, eggs, bread" in json.dumps(done["results"]["step_1"])
    assert done["messages"][-1].text == "Your note said milk, eggs, bread; it is deleted."
    assert not openai_server.unused and not openai_server.rejected
