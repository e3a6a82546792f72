"""A graph for the observability tests: a model call, a tool call and a subgraph, on the fake model.

``agent`` asks the scripted model, which calls ``lookup`` (a read tool) once and then answers;
``inner`` is a compiled subgraph whose ``leaf`` node nests under it in a trace.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Checkpointer

from nodes.common.permissions import declare
from nodes.models.fake import FakeChatModel, tool_call


@tool
def lookup(query: str) -> str:
    """Look something up."""
    return f"found {query}"


LOOKUP = declare(lookup, "read")


async def agent(state: MessagesState) -> dict[str, Any]:
    answered = isinstance(state["messages"][-1], ToolMessage)
    model = FakeChatModel(replies=["done"] if answered else [tool_call("lookup", {"query": "the plan"})])
    return {"messages": [await model.ainvoke(state["messages"])]}


def route(state: MessagesState) -> Literal["tools", "inner"]:
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else "inner"


def leaf(state: MessagesState) -> dict[str, Any]:
    return {"messages": [AIMessage(content="leaf visited")]}


def build_traced(checkpointer: Checkpointer = None) -> Any:
    inner = StateGraph(MessagesState)
    inner.add_node("leaf", leaf)
    inner.add_edge(START, "leaf")
    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([LOOKUP]))
    builder.add_node("inner", inner.compile())
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route)
    builder.add_edge("tools", "agent")
    builder.add_edge("inner", END)
    return builder.compile(checkpointer=checkpointer, name="traced")
