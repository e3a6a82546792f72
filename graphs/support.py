"""Customer support (seed 002): triage → specialist → escalation, one thread per support request.

    START → memory ─┬→ END   ("remember that …", "forget …": acknowledged, no model call)
                    └→ intake ─┬→ triage ─┬→ technical | billing | general ─┬→ finish → END
                               │          └→ escalate → escalation ─────────┤
                               ├→ current agent (follow-up turns)           ├→ approval → tools (destructive: interrupt)
                               └→ escalate (urgent, repeated, angry wording) └→ tools → back to the agent, or escalate
    Command(goto="resolve") → resolve → END     (a resolution recorded through /support reaches the state)

Tools carry permission levels (seed 003): read runs freely, write needs the run's grant, destructive
waits for a human's approval; every write is idempotent per (thread, tool call).
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer

from nodes.common.approval import make_approval_node, make_tool_gate
from nodes.common.memory import after_memory, make_memory_step
from nodes.models import TRANSIENT_RETRY, ModelProvider, settings_models
from nodes.support.agents import (
    Dispatcher,
    after_tools,
    billing_calls,
    escalate,
    finish,
    intake,
    make_specialist,
    make_triage,
    record_approval,
    resolve,
    route_after_agent,
    technical_calls,
)
from nodes.support.triage import escalate as escalate_tool
from nodes.tools.accounts import ACCOUNT_TOOLS, READ_TOOLS, update_contact_details
from nodes.tools.errors import tool_error_message
from state.common import RunContext
from state.support import Agent, SupportInput, SupportOutput, SupportState

ANSWER_FROM_DATA = "Answer from the account data your tools return; never invent amounts, dates or statuses."
TECHNICAL = (
    "You are a technical support specialist. Check service status and the customer's account before answering, "
    "give step-by-step troubleshooting, and call escalate if the issue is beyond your scope. " + ANSWER_FROM_DATA
)
BILLING = (
    "You are a billing specialist: payments, invoices, subscriptions, plan changes and refunds. Look up the account "
    "and invoices first and explain charges clearly. Refunds and cancellations need a human's approval, which the "
    "system asks for when you call the tool. Call escalate for complex financial issues. " + ANSWER_FROM_DATA
)
GENERAL = "You are a friendly general support agent for product questions and how-tos. " + ANSWER_FROM_DATA
ESCALATION = (
    "You are a senior support specialist handling an escalated case. Take ownership, be empathetic, use the tools "
    "to resolve the issue decisively, and say what happens next. " + ANSWER_FROM_DATA
)

AGENT_TOOLS = {
    "technical": READ_TOOLS,
    "billing": ACCOUNT_TOOLS,
    "general": [*READ_TOOLS, update_contact_details],
    "escalation": ACCOUNT_TOOLS,
}


def allowed_tools(state: SupportState) -> set[str]:
    """The tools the agent now holding the request may call; any other name is an unknown tool to it."""
    agent = state["request"]["current_agent"] or "general"
    return {t.name for t in AGENT_TOOLS[agent]}


def build_graph(
    models: ModelProvider = settings_models, checkpointer: Checkpointer = None, store: BaseStore | None = None
) -> CompiledStateGraph[SupportState, RunContext, SupportInput, SupportOutput]:
    builder = StateGraph(
        SupportState, context_schema=RunContext, input_schema=SupportInput, output_schema=SupportOutput
    )
    specialists: dict[Agent, tuple[str, Dispatcher | None]] = {
        "technical": (TECHNICAL, technical_calls),
        "billing": (BILLING, billing_calls),
        "general": (GENERAL, None),
        "escalation": (ESCALATION, None),
    }
    builder.add_node("intake", intake)
    builder.add_node("triage", make_triage(models), retry_policy=TRANSIENT_RETRY)
    after_agent = route_after_agent(ACCOUNT_TOOLS)
    for agent, (instructions, dispatch) in specialists.items():
        tools = AGENT_TOOLS[agent] if agent == "escalation" else [*AGENT_TOOLS[agent], escalate_tool]
        builder.add_node(
            agent, make_specialist(agent, instructions, models, tools, dispatch), retry_policy=TRANSIENT_RETRY
        )
        builder.add_conditional_edges(agent, after_agent)
    gate, agate = make_tool_gate(ACCOUNT_TOOLS, allowed_tools)
    builder.add_node("escalate", escalate)
    builder.add_node("approval", make_approval_node(ACCOUNT_TOOLS, allowed_tools, record_approval))
    builder.add_node(
        "tools",
        ToolNode(ACCOUNT_TOOLS, handle_tool_errors=tool_error_message, wrap_tool_call=gate, awrap_tool_call=agate),
    )
    builder.add_node("finish", finish)
    builder.add_node("resolve", resolve)
    builder.add_node("memory", make_memory_step())
    builder.add_edge(START, "memory")
    builder.add_conditional_edges("memory", after_memory, {"continue": "intake", END: END})
    builder.add_edge("approval", "tools")
    builder.add_conditional_edges("tools", after_tools)
    builder.add_edge("finish", END)
    builder.add_edge("resolve", END)
    return builder.compile(checkpointer=checkpointer, store=store, name="support")


graph = build_graph()
