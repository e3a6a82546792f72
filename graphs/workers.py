"""Researcher, writer and reviewer: small ReAct agents, each compiled as a subgraph with its own tools.

    START → brief → agent ⇄ tools
                      └→ report → END

The supervisor and pipeline graphs add these as nodes, so a worker's events stream under its own
namespace and its tool-calling conversation stays inside it: the parent sees only the report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode

from nodes.common.agent import make_agent
from nodes.models import TRANSIENT_RETRY, ModelProvider
from nodes.team.workers import make_brief, make_report
from nodes.tools.drafts import check_draft
from nodes.tools.errors import tool_error_message
from nodes.tools.knowledge import get_passage, research_tools, search_knowledge_base
from state.common import RunContext
from state.team import Worker, WorkerInput, WorkerOutput, WorkerState

INSTRUCTIONS: dict[Worker, str] = {
    "researcher": (
        "You are a researcher. Search for passages relevant to the goal, then write concise research notes: "
        "the key facts, each followed by the cite marker of the passage it comes from, e.g. [file.md#2]. "
        "Use only what the tools returned."
    ),
    "writer": (
        "You are a writer. Write clear, well-structured Markdown that answers the goal, using the research notes "
        "and passages given. Put the passage's cite marker, e.g. [file.md#2], right after each claim it supports. "
        "Never invent markers. Answer with the piece itself."
    ),
    "reviewer": (
        "You are a strict reviewer. Call check_draft to verify the draft's citations, then list what is wrong "
        "or missing as short, concrete fixes. Say APPROVED only if the draft answers the goal and every "
        "citation is real."
    ),
}

WORKER_TOOLS: dict[Worker, Callable[[], list[BaseTool]]] = {
    "researcher": research_tools,
    "writer": lambda: [get_passage],
    "reviewer": lambda: [check_draft, search_knowledge_base],
}


def after_agent(state: WorkerState) -> Literal["tools", "report"]:
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else "report"


def build_worker(
    worker: Worker, models: ModelProvider
) -> CompiledStateGraph[WorkerState, RunContext, WorkerInput, WorkerOutput]:
    """One worker; its tools are read from settings now, so web search appears only when configured."""
    tools = WORKER_TOOLS[worker]()
    builder = StateGraph(WorkerState, context_schema=RunContext, input_schema=WorkerInput, output_schema=WorkerOutput)
    builder.add_node("brief", make_brief(worker))
    builder.add_node("agent", make_agent(worker, INSTRUCTIONS[worker], models, tools), retry_policy=TRANSIENT_RETRY)
    builder.add_node("tools", ToolNode(tools, handle_tool_errors=tool_error_message), retry_policy=TRANSIENT_RETRY)
    builder.add_node("report", make_report(worker))
    builder.add_edge(START, "brief")
    builder.add_edge("brief", "agent")
    builder.add_conditional_edges("agent", after_agent, ["tools", "report"])
    builder.add_edge("tools", "agent")
    builder.add_edge("report", END)
    return builder.compile(name=worker)
