"""The personal assistant's router and specialists (seed 000), as plain node functions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal, cast

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Command

from loom.settings import get_settings
from nodes.common.routing import KeywordRouter, choose_label, last_human_text
from nodes.models import ModelProvider, model_for
from state.assistant import SPECIALISTS, AssistantState, Route, Specialist
from state.common import RunContext

SPECIALIST_DESCRIPTIONS: dict[Specialist, str] = {
    "content_writer": "writes blog posts, articles, emails to send, stories and other prose",
    "coder": "writes, explains and fixes code in any programming language",
    "image_generator": "creates images, pictures, logos and illustrations from a description",
    "document_analyst": "analyses data and documents, computes statistics and draws charts",
    "workspace_agent": "searches the user's own files, emails, calendar and messages",
}

ROUTING_RULES: dict[Specialist, list[tuple[str, float]]] = {
    "content_writer": [
        (r"write|draft|compose|rewrite|proofread|polish", 1.0),
        (r"blog|article|essay|newsletter|story|poem|press release|cover letter|speech|tagline|slogan", 2.0),
        (r"linkedin post|tweet|caption|product description|bio\b|announcement|outline for|wording", 2.0),
        (r"(email|letter|message) to (my|the|a|our)\b", 1.5),
    ],
    "coder": [
        (r"code|coding|function|script|class\b|method|algorithm|regex|refactor|debug|bug|compile", 2.0),
        (r"python|javascript|typescript|java\b|rust\b|golang|c\+\+|sql\b|bash|react component|html|css", 2.0),
        (r"dockerfile|endpoint|fastapi|django|flask|node\.js|kubernetes|yaml|json schema", 2.0),
        (r"implement|unit tests?|stack trace|exception|query that", 1.0),
        (r"go (function|handler|program|service|server|module|code)|http (handler|server|client)|json\b", 2.0),
        (r"\w+error\b|traceback|not subscriptable|segfault|null pointer", 2.0),
    ],
    "image_generator": [
        (r"image|picture|photo|illustration|logo|icon|wallpaper|poster|artwork|sketch|drawing", 2.0),
        (r"draw|paint|render|generate an? (image|picture)|visual of|depict", 1.5),
    ],
    "document_analyst": [
        (r"chart|graph\b|plot\b|histogram|visuali[sz]", 2.0),
        (r"statistics|average|median|mean\b|trend|csv|spreadsheet|dataset", 2.0),
        (r"bar chart|line graph|pie chart|analy[sz]e|data\b|figures|numbers", 1.0),
        (r"q[1-4]\s*[:=]?\s*\d+|sales (data|numbers|figures)", 1.5),
        (r"growth( rate)?|percentage|ratio\b|forecast|year over year", 2.0),
        (r"revenue|\d+(\.\d+)?\s?[mk]\b", 1.0),
    ],
    "workspace_agent": [
        (r"(my|our) (e-?mails?|inbox|calendar|meetings?|schedule|files|documents|docs|messages|slack|dms|drive)", 3.0),
        (
            r"(emailed|messaged|texted|pinged|wrote to|message|ask(ed)?|sent|told) me"
            r"|do i have|my next|files? (about|on|named)",
            2.0,
        ),
        (r"(where|when) did i (save|put|store|leave|file|send)|did i (save|send|get)", 2.0),
        (r"(everything|all (the )?(info|information)) (about|on|related to)", 2.0),
        (r"e-?mails?|inbox|calendar|meetings?|events?|appointments?|messages|deployment", 1.0),
        (r"search|find|look up|look for|check|show me|list", 0.5),
    ],
}

FOLLOW_UP_CUES = re.compile(
    r"^\s*(make|now|also|and|then|again|instead|shorter|longer|more|less|add|change|fix|translate|"
    r"rewrite|redo|same|another|what about|how about|can you|do it|try)\b|\b(it|that|this|them|those)\b",
    re.IGNORECASE,
)


def router_instructions(labels: Sequence[Specialist]) -> str:
    """The router model's prompt, listing only the specialists it may choose."""
    listing = "\n".join(f"- {name}: {SPECIALIST_DESCRIPTIONS[name]}" for name in labels)
    return f"You route a user's request to one specialist.\n{listing}"


keyword_router = KeywordRouter(cast(dict[str, list[tuple[str, float]]], ROUTING_RULES))


@tool
def hand_off(specialist: Specialist, reason: str) -> str:
    """Hand the request to another specialist when it is not yours to answer."""
    return f"handing off to {specialist}: {reason}"


def route_by_keywords(text: str, threshold: float) -> Route | None:
    score = keyword_router.score(text)
    if score.confidence < threshold:
        return None
    return Route(
        specialist=cast(Specialist, score.label),
        stage="keywords",
        confidence=score.confidence,
        reason=f"keyword scores {score.scores}",
    )


def candidates(text: str) -> list[Specialist]:
    """The specialists the model may choose: those tied (or close) on keywords, else all of them.

    The embedded model is near chance over five labels; when keywords narrow the request down to a few,
    it only has to pick among those.
    """
    scores = keyword_router.score(text).scores
    scored = [cast(Specialist, label) for label, value in scores.items() if value >= 1.0]
    return scored if len(scored) > 1 else list(SPECIALISTS)


def make_router(models: ModelProvider) -> Any:
    """The main agent: settles a handoff, a clear request or a follow-up, else asks the model."""

    async def router(
        state: AssistantState, config: RunnableConfig, runtime: Runtime[RunContext]
    ) -> Command[Literal["content_writer", "coder", "image_generator", "document_analyst", "workspace_agent"]]:
        settings = get_settings()
        messages = state["messages"]
        update: dict[str, Any] = {}
        last = messages[-1]
        if isinstance(last, AIMessage) and last.tool_calls:  # a specialist called hand_off
            route, reply = _settle_handoff(state, last, settings.max_handoffs)
            update = {"messages": [reply], "handoffs": state.get("handoffs", 0) + 1}
        else:
            update["handoffs"] = 0
            route = await route_request(state, models, settings.router_confidence, config, update)
        get_stream_writer()({"event": "route", **route})
        return Command(goto=route["specialist"], update={**update, "route": route})

    return router


def _settle_handoff(state: AssistantState, call_message: AIMessage, cap: int) -> tuple[Route, ToolMessage]:
    call = next(c for c in call_message.tool_calls if c["name"] == "hand_off")
    current = state["route"]["specialist"] if state.get("route") else "content_writer"
    target = call["args"].get("specialist")
    if state.get("handoffs", 0) >= cap or target not in SPECIALISTS:
        why = "handoff limit reached" if target in SPECIALISTS else f"unknown specialist {target!r}"
        reply = ToolMessage(f"Handoff refused ({why}); answer with what you have.", tool_call_id=call["id"])
        return Route(specialist=current, stage="handoff", confidence=1.0, reason=why), reply
    reply = ToolMessage(f"Handed off to {target}.", tool_call_id=call["id"])
    reason = str(call["args"].get("reason", ""))
    return Route(specialist=cast(Specialist, target), stage="handoff", confidence=1.0, reason=reason), reply


async def route_request(
    state: AssistantState,
    models: ModelProvider,
    threshold: float,
    config: RunnableConfig,
    update: dict[str, Any],
) -> Route:
    """The route for a new request: keywords, a follow-up of the last route, else the model's constrained choice.

    Records the model call's usage in ``update``; the component eval (``loom eval components``) calls this alone.
    """
    text = last_human_text(state["messages"])
    if route := route_by_keywords(text, threshold):
        return route
    previous = state.get("route")
    if previous and FOLLOW_UP_CUES.search(text):
        return Route(
            specialist=previous["specialist"], stage="follow_up", confidence=0.5, reason="refers to the last answer"
        )
    labels = candidates(text)
    choice, error, usage = await choose_label(
        await model_for(models, "router"),
        router_instructions(labels),
        _recent(state["messages"]),
        labels,
        node="router",
        config=config,
    )
    update["usage"] = [usage]
    if choice is None:
        return Route(
            specialist="content_writer", stage="fallback", confidence=0.0, reason=f"router output unusable: {error}"
        )
    return Route(specialist=cast(Specialist, choice.label), stage="llm", confidence=0.7, reason=choice.reason)


def _recent(messages: list[AnyMessage], keep: int = 6) -> list[BaseMessage]:
    """What the router model sees: the last few user and assistant turns, without tool chatter."""
    turns: list[BaseMessage] = [
        m for m in messages if isinstance(m, HumanMessage) or (isinstance(m, AIMessage) and not m.tool_calls)
    ]
    return turns[-keep:]
