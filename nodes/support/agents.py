"""The support graph's nodes: intake, triage, the specialists, escalation and the turn record.

Each node keeps the graph state's request record and the ``support_requests`` table in step, so
the API and analytics see a request change as the conversation runs.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.config import get_config, get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Command

from loom.settings import get_settings
from loom.threads import public_thread_id
from nodes.common.agent import messages_this_turn, quoted_results, this_conversation, tool_rounds_this_turn
from nodes.common.approval import call_id, invalid_calls_this_turn, pending_approvals
from nodes.common.memory import memory_prompt
from nodes.common.routing import last_human_text
from nodes.models import ModelProvider, call_model, model_for
from nodes.support.triage import (
    escalated_priority,
    escalation_reason,
    request_brief,
    tool_replies,
    triage_calls_for_escalation,
    triage_request,
    wording_cue,
)
from services.stores.support import get_support_store, parse_time
from services.webhooks import notify
from state.common import RunContext
from state.support import Agent, Approval, SupportRequest, SupportState, Turn

Dispatcher = Callable[[str], list[ToolCall]]
ACTIONS: dict[str, tuple[re.Pattern[str], str]] = {
    "issue_refund": (re.compile(r"\brefund", re.I), "issue a refund"),
    "cancel_subscription": (re.compile(r"\bcancel", re.I), "cancel the subscription"),
    "change_plan": (
        re.compile(r"\b(upgrade|downgrade|change (my |the )?plan|switch (my |the )?plan)", re.I),
        "change the plan",
    ),
    "update_contact_details": (
        re.compile(r"\b(update|change) (my |the )?(e-?mail|phone|contact)", re.I),
        "update the contact details",
    ),
}
"""What a customer may ask a specialist to do, by the tool that does it: the cue in their words and the action."""
CONFIGURE_A_MODEL = (
    "Configure a model that can (OPENAI_API_KEY, or LOOM_MODEL=openai:<model> with OPENAI_BASE_URL) and ask again."
)


def now_iso() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat()


def stored(request: SupportRequest) -> SupportRequest:
    """``request`` as the support table keys it. The state shows the thread id its client chose; the table keeps
    the request under the thread's owner-scoped key (``loom.threads``), so two users' same ids never meet."""
    key = get_config().get("configurable", {}).get("thread_id")
    if isinstance(key, str) and key != request["request_id"] and public_thread_id(key) == request["request_id"]:
        return {**request, "request_id": key}
    return request


async def save(request: SupportRequest) -> None:
    """Mirror ``request`` into the table from an async node without blocking the event loop."""
    row = stored(request)
    await asyncio.to_thread(lambda: get_support_store().save_request(row))


def new_request(request_id: str, user_id: str, text: str) -> SupportRequest:
    at = now_iso()
    return SupportRequest(
        request_id=request_id,
        user_id=user_id,
        initial_message=text,
        category=None,
        priority="medium",
        status="new",
        current_agent=None,
        escalation_reason=None,
        resolution_summary=None,
        created_at=at,
        updated_at=at,
    )


def intake(
    state: SupportState, runtime: Runtime[RunContext]
) -> Command[Literal["triage", "technical", "billing", "general", "escalation", "escalate"]]:
    """A new request goes to triage; a follow-up stays with the current agent unless its wording escalates."""
    text = last_human_text(state["messages"])
    store = get_support_store()
    request = state.get("request")
    if request is None:
        user_id = (runtime.context or RunContext()).user_id
        thread = runtime.execution_info.thread_id if runtime.execution_info else None
        request = new_request(public_thread_id(thread) if thread else f"req_{uuid.uuid4().hex[:12]}", user_id, text)
        store.open_request(stored(request))
        return Command(goto="triage", update={"request": request})
    status = store.status_of(stored(request)["request_id"])
    if status and status[0] == "resolved":  # resolved through the API, and the customer writes again: reopen
        request = {**request, "status": "in_progress", "resolution_summary": None, "updated_at": now_iso()}
        store.save_request(stored(request))
    if request["status"] != "escalated" and wording_cue(text):
        return Command(goto="escalate", update={"request": request})
    return Command(goto=request["current_agent"] or "triage", update={"request": request})


def make_triage(models: ModelProvider) -> Any:
    async def triage(
        state: SupportState, config: RunnableConfig
    ) -> Command[Literal["technical", "billing", "general", "escalate"]]:
        text = last_human_text(state["messages"])
        decision, usage = await triage_request(text, models, get_settings().router_confidence, config)
        agent: Agent = decision["suggested_agent"]
        if agent == "escalation":
            agent = "general" if decision["category"] == "escalation" else decision["category"]
        request: SupportRequest = {
            **state["request"],
            "category": decision["category"],
            "priority": decision["priority"],
            "current_agent": agent,
            "updated_at": now_iso(),
        }
        await save(request)
        get_stream_writer()({"event": "triage", **decision})
        update: dict[str, Any] = {"triage": decision, "request": request, "usage": [usage] if usage else []}
        goto = "escalate" if triage_calls_for_escalation(decision, text) else agent
        return Command(goto=goto, update=update)

    return triage


def make_specialist(
    agent: Agent,
    instructions: str,
    models: ModelProvider,
    tools: Sequence[BaseTool],
    dispatch: Dispatcher | None = None,
) -> Any:
    """An agent over the request's conversation so far; tools only while rounds and retry budget last."""

    async def specialist(state: SupportState, config: RunnableConfig, runtime: Runtime[RunContext]) -> dict[str, Any]:
        settings = get_settings()
        history = this_conversation(state["messages"])
        plain = settings.direct_tool_dispatch and isinstance(history[-1], HumanMessage)
        if calls := (dispatch(history[-1].text) if dispatch and plain else []):
            get_stream_writer()({"event": "tool_dispatch", "agent": agent, "calls": calls})
            return {"messages": [AIMessage(content="", tool_calls=calls)]}
        if settings.quotes_tool_results(agent) and (answer := data_only_answer(history)):
            return {"messages": [AIMessage(content=answer)]}
        model: Any = await model_for(models, agent)
        rounds_left = tool_rounds_this_turn(history) < settings.max_tool_rounds
        if tools and rounds_left and invalid_calls_this_turn(history) < settings.support_retry_budget:
            model = model.bind_tools(list(tools))
        context = runtime.context or RunContext()
        remembered = memory_prompt(state.get("memories") or [], context.user_name)
        system = SystemMessage(
            f"{instructions}\n{request_brief(state)}\nThe customer is {context.user_name}.\n{remembered}".rstrip()
        )
        reply, usage = await call_model(model, [system, *history], node=agent, config=config)
        return {"messages": [reply], "usage": [usage]}

    specialist.__name__ = agent
    return specialist


def data_only_answer(history: list[AnyMessage]) -> str:
    """The answer where the model cannot be trusted with account data (the embedded one): the tools' results,
    and, when the customer asked for an action no tool call made, that it was not done, rather than a reply that
    invents having done it. Empty where no tool ran and nothing was asked: the model may answer a question."""
    asked = last_human_text(history)
    called = {call["name"] for m in messages_this_turn(history) if isinstance(m, AIMessage) for call in m.tool_calls}
    missed = [what for tool, (cue, what) in ACTIONS.items() if cue.search(asked) and tool not in called]
    results = quoted_results(history) if isinstance(history[-1], ToolMessage) else ""
    if not missed:
        return results
    notice = (
        f"I could not {' or '.join(missed)}: this model cannot reliably fill in the tool that does it, "
        f"so nothing was changed. {CONFIGURE_A_MODEL}"
    )
    return f"{results}\n\n{notice}" if results else notice


async def escalate(state: SupportState) -> Command[Literal["escalation"]]:
    """Hand the request to the escalation agent: status, reason and priority change, the webhook fires."""
    reason = escalation_reason(state) or "escalation requested"
    text = last_human_text(state["messages"])
    request: SupportRequest = {
        **state["request"],
        "status": "escalated",
        "current_agent": "escalation",
        "escalation_reason": reason,
        "priority": escalated_priority(state["request"]["priority"], text),
        "updated_at": now_iso(),
    }
    await save(request)
    get_stream_writer()({"event": "escalated", "request_id": request["request_id"], "reason": reason})
    event_id = f"{stored(request)['request_id']}:escalated:{len(state.get('turns') or [])}"  # unique across users
    await notify("support.request.escalated", event_id, request)
    replies = tool_replies(state["messages"][-1], f"Not run: the request was escalated ({reason}).")
    return Command(goto="escalation", update={"request": request, "messages": replies})


def finish(state: SupportState) -> dict[str, Any]:
    """Record the turn: the customer's message, the answering agent's reply and when it came."""
    request = state["request"]
    reply = state["messages"][-1]
    turn = Turn(
        timestamp=now_iso(),
        agent=request["current_agent"] or "general",
        user_message=last_human_text(state["messages"]),
        agent_response=reply.text if isinstance(reply, AIMessage) else "",
    )
    status = "in_progress" if request["status"] == "new" else request["status"]
    request = {**request, "status": status, "updated_at": turn["timestamp"]}
    get_support_store().record_turn(stored(request), turn, seq=len(state.get("turns") or []))
    return {"turns": [turn], "request": request}


def resolve(state: SupportState) -> dict[str, Any]:
    """Apply a resolution recorded through ``/support``, sent as ``Command(goto="resolve", update={"resolution"})``.

    The table was resolved first; this makes the checkpointed request agree, so state changes only in the graph.
    """
    request, resolution = state.get("request"), state.get("resolution")
    if not request or not resolution:
        return {}
    resolved = {"status": "resolved", "resolution_summary": resolution["summary"]}
    return {"request": {**request, **resolved, "updated_at": resolution["resolved_at"]}}


def _dispatcher(pattern: str, *calls: tuple[str, dict[str, Any]]) -> Dispatcher:
    """Read calls a plain request obviously needs, built without a model call (as ``nodes.common.dispatch`` does)."""
    cue = re.compile(pattern, re.IGNORECASE)

    def dispatch(text: str) -> list[ToolCall]:
        if not cue.search(text):
            return []
        return [ToolCall(name=n, args=dict(a), id=f"call_{uuid.uuid4().hex[:12]}", type="tool_call") for n, a in calls]

    return dispatch


billing_calls = _dispatcher(
    r"\b(payments?|invoices?|bill(ing|ed)?|charged?|refunds?|receipts?|subscriptions?|declined)\b",
    ("look_up_account", {}),
    ("list_invoices", {"limit": 5}),
)
technical_calls = _dispatcher(
    r"\b(access|log ?in|sign ?in|errors?|down|outage|not working|broken|crash\w*|slow)\b",
    ("check_service_status", {}),
    ("look_up_account", {}),
)


def route_after_agent(tools: Sequence[BaseTool]) -> Any:
    """After an agent: escalate, ask a human about destructive calls, run the tools, or record the turn."""

    def after_agent(state: SupportState) -> Literal["escalate", "approval", "tools", "finish"]:
        last = state["messages"][-1]
        if state["request"]["current_agent"] != "escalation" and escalation_reason(state):
            return "escalate"
        if isinstance(last, AIMessage) and last.tool_calls:
            return "approval" if pending_approvals(last, tools, state.get("approvals") or {}) else "tools"
        return "finish"

    return after_agent


def after_tools(state: SupportState) -> Literal["technical", "billing", "general", "escalation", "escalate"]:
    """Back to the agent that called the tools, unless it used up its retry budget (then a senior takes over)."""
    agent = state["request"]["current_agent"] or "general"
    if agent != "escalation" and escalation_reason(state):
        return "escalate"
    return agent


def record_approval(state: dict[str, Any], call: ToolCall, approval: Approval | None) -> None:
    """Mirror an approval into the table: pending when asked, then the human's decision."""
    args = approval["args"] if approval else call["args"]
    decision, reason = (approval["decision"], approval["reason"]) if approval else ("pending", "")
    at = parse_time(now_iso())
    get_support_store().record_approval(
        stored(state["request"])["request_id"], call_id(call), call["name"], args, decision, reason, at
    )
