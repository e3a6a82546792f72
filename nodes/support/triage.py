"""Support triage (seed 002) on the assistant's two-stage router, and the escalation rules.

Clear tickets ("my payment failed…") are settled by weighted keywords in microseconds, so triage
is right even on the 135M embedded model; only unclear ones ask the model, whose answer is
constrained to the typed ``TriageDecision``. When that answer is unusable, triage falls back to
general/medium and records why, as the seed's triage agent does.
"""

from __future__ import annotations

import re
from typing import Any, cast

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool

from loom.settings import get_settings
from nodes.common.approval import invalid_calls_this_turn
from nodes.common.routing import KeywordRouter, choose_structured
from nodes.models import ModelProvider, model_for
from state.common import UsageRecord
from state.support import PRIORITIES, Agent, Category, Priority, SupportState, Triage, TriageDecision

TRIAGE_RULES: dict[Category, list[tuple[str, float]]] = {
    "billing": [
        (r"payments?|invoices?|billing|bill(ed)?\b|charged?|refunds?|subscriptions?|receipts?|pric(e|ing)", 2.0),
        (r"payment (failed|declined|didn't go through)|card (was )?declined|charged twice|overcharged|plan\b", 1.5),
        (r"upgrade|downgrade|cancel|credit card|vat\b|tax\b", 1.0),
    ],
    "technical": [
        (r"errors?|bugs?|crash(es|ed|ing)?|not working|broken|outage|\bdown\b|timeouts?|api\b|integration|sync", 2.0),
        (r"install|configure|webhook|sdk|upload|slow|500\b|404\b", 1.5),
        (
            r"does nothing|(doesn'?t|does not|stopped) (work|arriv|load|sync|send)\w*"
            r"|button|spam (folder)?|not arriving",
            1.5,
        ),
        (r"log ?in|sign ?in|password|access|2fa|locked out", 1.0),
    ],
    "general": [
        (r"how (do|can|to)|where (do|can|is)|what is", 1.5),
        (r"question|information|documentation|docs\b|feature|guide", 1.5),
        (r"hours|contact|team|roadmap|tutorial|getting started|wondering|curious", 1.0),
        (
            r"limits?\b|language|(update|change) my (phone|address|name|time ?zone)"
            r"|settings|profile|agreement|gdpr",
            1.5,
        ),
    ],
    "escalation": [
        (r"immediately|right (now|away)|asap|as soon as possible|urgent(ly)?|emergency", 2.0),
        (r"unacceptable|lawyer|legal action|furious|ridiculous|outrageous|complaint", 2.0),
        (r"manager|supervisor|escalate|deadline", 2.0),
        (
            r"(second|third|fourth|fifth|\d+(st|nd|rd|th)) time|(two|three|four|five|\d+) tickets"
            r"|nobody (replies|answers)",
            2.0,
        ),
        (
            r"data (breach|leak)|(data|account)s? from another (company|customer|user)|someone else'?s (data|account)",
            2.0,
        ),
    ],
}

PRIORITY_CUES: list[tuple[Priority, re.Pattern[str]]] = [
    (
        "critical",
        re.compile(
            r"\b(immediately|right (now|away)|asap|urgent(ly)?|emergency|deadline|data loss|breach"
            r"|(production|whole|entire)\b.{0,40}\bdown\b|data from another)",
            re.I,
        ),
    ),
    (
        "high",
        re.compile(
            r"\b(payment (failed|declined)|card (was )?declined|can'?t access|cannot access|locked out|not working"
            r"|outage|\bdown\b|charged twice|overcharged|broken|crash|timing out|stopped (working|arriving)"
            r"|charged for .+ but)",
            re.I,
        ),
    ),
    ("medium", re.compile(r"\b(by tomorrow|by (the )?end of (the )?(day|week)|this week)", re.I)),
    ("low", re.compile(r"\b(just wondering|curious|no rush|whenever|feature request|suggestion)", re.I)),
]

BARE_QUESTION = re.compile(r"^\s*(how|what|where|which|can|could|do|does|is|are)\b[^.!?]*\?\s*$", re.I)
"""One question and nothing else: no problem described, nothing pressing."""

WORDING_CUES: dict[str, re.Pattern[str]] = {
    "urgency": re.compile(
        r"\b(immediately|right (now|away)|asap|as soon as possible|urgent(ly)?|emergency|deadline)", re.I
    ),
    "repeated failure": re.compile(
        r"\b(still (not|isn'?t|doesn'?t|broken|failing)|again and again|(second|third|fourth|\d+(st|nd|rd|th)) time"
        r"|keeps? (failing|crashing|happening)|tried everything|nothing works|already (tried|contacted|asked))",
        re.I,
    ),
    "anger": re.compile(
        r"\b(unacceptable|ridiculous|furious|angry|outrageous|fed up|sick of|worst|terrible service|lawyer"
        r"|legal action|speak to (a|your) (manager|supervisor))",
        re.I,
    ),
}

SPECIALIST_FLAGS = re.compile(
    r"\b(escalat(e|ing)|beyond my scope|senior (engineer|specialist)|cannot resolve|can'?t resolve)\b", re.I
)
"""Seed 002's phrases by which a specialist's own answer asks for escalation."""

AGENT_FOR: dict[Category, Agent] = {
    "technical": "technical",
    "billing": "billing",
    "general": "general",
    "escalation": "escalation",
}

TRIAGE_INSTRUCTIONS = """You are a customer support triage specialist. Categorise the customer's request.
Categories: technical (bugs, errors, outages, access problems), billing (payments, invoices, subscriptions,
refunds), general (questions, information, how-to), escalation (urgent issues, complaints, angry customers).
Priority: low, medium, high or critical. suggested_agent: the category's agent (technical, billing, general,
escalation). reasoning: one short sentence."""

triage_router = KeywordRouter(cast(dict[str, list[tuple[str, float]]], TRIAGE_RULES))


@tool
def escalate(reason: str) -> str:
    """Escalate to a senior agent when the request is beyond your scope or needs more than you can do."""
    return f"escalated: {reason}"


def priority_cue(text: str) -> Priority | None:
    return next((level for level, pattern in PRIORITY_CUES if pattern.search(text)), None)


def keyword_priority(category: Category, text: str) -> Priority:
    """The wording's priority, else low for a general request or a bare question, else medium; an escalation
    is at least high (as ``escalated_priority`` makes it once escalated)."""
    priority = priority_cue(text) or ("low" if category == "general" or BARE_QUESTION.match(text) else "medium")
    return higher(priority, "high") if category == "escalation" else priority


def higher(a: Priority, b: Priority | None) -> Priority:
    return a if b is None or PRIORITIES.index(a) >= PRIORITIES.index(b) else b


def wording_cue(text: str) -> str | None:
    """Why the customer's own words call for escalation (urgency, repeated failure, anger), if they do."""
    found = []
    for kind, pattern in WORDING_CUES.items():
        words = sorted({m.group(0).lower() for m in pattern.finditer(text)})
        if words:
            found.append(f"{kind} ({', '.join(words)})")
    return f"customer wording: {'; '.join(found)}" if found else None


async def triage_request(
    text: str, models: ModelProvider, threshold: float, config: RunnableConfig
) -> tuple[Triage, UsageRecord | None]:
    score = triage_router.score(text)
    if score.confidence >= threshold:
        category = cast(Category, score.label)
        reasoning = f"keyword scores {score.scores} (confidence {score.confidence})"
        decision = Triage(
            category=category,
            priority=keyword_priority(category, text),
            reasoning=reasoning,
            suggested_agent=AGENT_FOR[category],
            stage="keywords",
        )
        return decision, None
    choice, error, usage = await choose_structured(
        await model_for(models, "triage"),
        TRIAGE_INSTRUCTIONS,
        [HumanMessage(text)],
        TriageDecision,
        node="triage",
        config=config,
    )
    if choice is None:
        reason = f"triage output unusable, fell back to general/medium: {error}"
        return Triage(
            category="general", priority="medium", reasoning=reason, suggested_agent="general", stage="fallback"
        ), usage
    priority = higher(choice.priority, priority_cue(text))
    decision = Triage(
        category=choice.category,
        priority=priority,
        reasoning=choice.reasoning,
        suggested_agent=choice.suggested_agent,
        stage="llm",
    )
    return decision, usage


def triage_calls_for_escalation(decision: Triage, text: str) -> bool:
    return (
        decision["category"] == "escalation"
        or decision["suggested_agent"] == "escalation"
        or decision["priority"] == "critical"
        or wording_cue(text) is not None
    )


def escalate_call(message: AnyMessage) -> ToolCall | None:
    if isinstance(message, AIMessage):
        return next((c for c in message.tool_calls if c["name"] == "escalate"), None)
    return None


def escalation_reason(state: SupportState) -> str | None:
    """Why this request must go to the escalation agent now, or None; read off the last message."""
    messages = state["messages"]
    last, request = messages[-1], state.get("request")
    agent = request["current_agent"] if request else None
    if isinstance(last, AIMessage):
        if call := escalate_call(last):
            return f"{agent} agent escalated: {call['args'].get('reason', 'no reason given')}"
        if not last.tool_calls and (flag := SPECIALIST_FLAGS.search(last.text)):
            return f"{agent} agent flagged the request ({flag.group(0)!r})"
        return None
    if isinstance(last, ToolMessage):
        budget = get_settings().support_retry_budget
        if invalid_calls_this_turn(messages) >= budget:
            return f"{agent} agent used up its retry budget ({budget} invalid tool calls)"
        return None
    text = last.text if isinstance(last, HumanMessage) else ""
    if cue := wording_cue(text):
        return cue
    decision = state.get("triage")
    if decision and triage_calls_for_escalation(decision, text):
        return f"triage: {decision['category']}/{decision['priority']}: {decision['reasoning']}"
    return None


def escalated_priority(current: Priority, text: str) -> Priority:
    """An escalated request is at least high priority; urgent wording makes it critical."""
    return higher(higher(current, "high"), priority_cue(text))


def request_brief(state: SupportState) -> str:
    request = state.get("request")
    if not request:
        return ""
    lines = [f"Support request {request['request_id']}: category {request['category']}, priority {request['priority']}"]
    lines.append(f"status {request['status']}.")
    if request["escalation_reason"]:
        lines.append(f"Escalated because: {request['escalation_reason']}.")
    return " ".join(lines)


def tool_replies(message: Any, text: str) -> list[ToolMessage]:
    """Answers for every tool call of ``message``, so the history stays valid when the calls don't run."""
    calls = message.tool_calls if isinstance(message, AIMessage) else []
    return [ToolMessage(text, name=c["name"], tool_call_id=c["id"]) for c in calls]
