"""Personal assistant (seed 000): a router hands each request to one of five specialists.

START → memory ─┬→ END                 (an explicit "remember that …" / "forget …", acknowledged)
                └→ router ─┬→ content_writer → END
                           ├→ coder → END
                           ├→ image_generator ⇄ image_tools        (hand_off → router)
                           ├→ document_analyst ⇄ analyst_tools     (hand_off → router)
                           └→ workspace_agent → workspace_approval → workspace_tools → workspace_agent
                                                                   (hand_off → router)

The workspace agent also has the tools of the MCP servers in LOOM_MCP_SERVERS (``services.mcp``);
workspace_approval asks a human about destructive calls (an interrupt), the tool gate enforces the decision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer

from nodes.assistant.router import hand_off, make_router
from nodes.common.agent import after_agent, make_agent
from nodes.common.approval import make_approval_node, make_tool_gate
from nodes.common.dispatch import chart_calls, image_calls, workspace_calls
from nodes.common.memory import after_memory, make_memory_step
from nodes.models import TRANSIENT_RETRY, ModelProvider, settings_models
from nodes.tools.charts import create_chart
from nodes.tools.errors import tool_error_message
from nodes.tools.images import generate_image
from nodes.tools.workspace import WORKSPACE_TOOLS
from services.mcp import mcp_tools
from state.assistant import AssistantInput, AssistantOutput, AssistantState
from state.common import RunContext

WRITER = "You are a professional content writer. Write clear, structured, engaging prose in Markdown."
CODER = "You are a senior software engineer. Answer with correct, idiomatic code and a short explanation."
IMAGE = (
    "You create images with the generate_image tool. Pass a vivid prompt, then give the image's link. "
    "If the tool says the image is a stand-in, say so."
)
ANALYST = (
    "You analyse data. Call create_chart with the user's label/value pairs as `data`, or a workspace CSV as "
    "`csv_file`, then report the statistics it returns and the chart's link. Never invent numbers."
)
WORKSPACE = (
    "You search the user's own files, emails, calendar and messages with the search tools; use several when "
    "the request spans sources. Report only what the tools return, with dates and senders."
)


def build_graph(
    models: ModelProvider = settings_models, checkpointer: Checkpointer = None, store: BaseStore | None = None
) -> CompiledStateGraph[AssistantState, RunContext, AssistantInput, AssistantOutput]:
    builder = StateGraph(
        AssistantState, context_schema=RunContext, input_schema=AssistantInput, output_schema=AssistantOutput
    )
    specialist_tools = {
        "image_generator": ("image_tools", IMAGE, [generate_image], image_calls),
        "document_analyst": ("analyst_tools", ANALYST, [create_chart], chart_calls),
        "workspace_agent": ("workspace_tools", WORKSPACE, WORKSPACE_TOOLS, workspace_calls),
    }
    builder.add_node("router", make_router(models), retry_policy=TRANSIENT_RETRY)
    builder.add_node("content_writer", make_agent("content_writer", WRITER, models), retry_policy=TRANSIENT_RETRY)
    builder.add_node("coder", make_agent("coder", CODER, models), retry_policy=TRANSIENT_RETRY)
    builder.add_node("memory", make_memory_step())
    builder.add_edge(START, "memory")
    builder.add_conditional_edges("memory", after_memory, {"continue": "router", END: END})
    builder.add_edge("content_writer", END)
    builder.add_edge("coder", END)
    for name, (tools_node, instructions, tools, dispatch) in specialist_tools.items():
        found = mcp_tools if name == "workspace_agent" else None
        agent = make_agent(name, instructions, models, [*tools, hand_off], dispatch, answers_user=True, found=found)
        builder.add_node(name, agent, retry_policy=TRANSIENT_RETRY)
        gate, agate = make_tool_gate(tools, every(tools), found) if found else (None, None)
        tool_node = ToolNode(tools, handle_tool_errors=tool_error_message, wrap_tool_call=gate, awrap_tool_call=agate)
        builder.add_node(tools_node, tool_node, retry_policy=TRANSIENT_RETRY)
        first = tools_node
        if found:
            first = "workspace_approval"
            builder.add_node(first, make_approval_node(tools, every(tools), found=found))
            builder.add_edge(first, tools_node)
        builder.add_conditional_edges(name, after_agent, {"tools": first, "router": "router", END: END})
        builder.add_edge(tools_node, name)
    return builder.compile(checkpointer=checkpointer, store=store, name="assistant")


def every(tools: list[BaseTool]) -> Callable[[Any], set[str]]:
    """The agent of a tool node may call all of its tools (a specialist has its node to itself)."""
    return lambda _state: {t.name for t in tools}


graph = build_graph()
