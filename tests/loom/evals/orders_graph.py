"""A small customer-service graph for the experiment tests: every decision is a model call, so a scripted
model decides which node goes wrong. ``classify`` labels the request (one word) and notes who the run acts
for, a refund stops in
``approve`` for a human, anything else goes to ``answer``, which may call ``lookup_order``."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from langchain_core.messages import AIMessage, AnyMessage, SystemMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from typing_extensions import TypedDict

from nodes.models import model_for, settings_models
from state.common import RunContext


class OrdersState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    label: NotRequired[Literal["order", "refund", "other"]]
    user: NotRequired[str]


@tool
def lookup_order(order_id: str) -> str:
    """The shipping status of an order."""
    return f"order {order_id}: shipped on Monday"


async def classify(state: OrdersState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    model = await model_for(settings_models, "router")
    reply = await model.ainvoke([SystemMessage("Classify: answer order, refund or other."), *state["messages"]])
    label = reply.text.strip().lower()
    return {"label": label if label in ("order", "refund") else "other", "user": runtime.context.user_id}


def after_classify(state: OrdersState) -> Literal["approve", "answer"]:
    return "approve" if state.get("label") == "refund" else "answer"


async def approve(state: OrdersState) -> dict[str, Any]:
    decision = interrupt({"action": "refund"})
    return {"messages": [AIMessage(f"Refund {decision}.")]}


async def answer(state: OrdersState) -> dict[str, Any]:
    model = (await model_for(settings_models, "writer")).bind_tools([lookup_order])
    return {"messages": [await model.ainvoke([SystemMessage("Answer the customer."), *state["messages"]])]}


def after_answer(state: OrdersState) -> Literal["tools", "__end__"]:
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else END


builder = StateGraph(OrdersState, context_schema=RunContext)
builder.add_node("classify", classify)
builder.add_node("approve", approve)
builder.add_node("answer", answer)
builder.add_node("tools", ToolNode([lookup_order]))
builder.add_edge(START, "classify")
builder.add_conditional_edges("classify", after_classify)
builder.add_conditional_edges("answer", after_answer)
builder.add_edge("tools", "answer")
builder.add_edge("approve", END)
graph = builder.compile()
