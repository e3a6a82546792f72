"""State of the personal-assistant router graph (seed 000)."""

from __future__ import annotations

import operator
from typing import Annotated, Literal, NotRequired, get_args

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from state.common import Artifact, UsageRecord

Specialist = Literal["content_writer", "coder", "image_generator", "document_analyst", "workspace_agent"]
SPECIALISTS: tuple[Specialist, ...] = get_args(Specialist)


class Route(TypedDict):
    """Where the router sent this turn, which stage decided, and how sure it was."""

    specialist: Specialist
    stage: Literal["keywords", "follow_up", "llm", "fallback", "handoff"]
    confidence: float
    reason: str


class AssistantInput(TypedDict):
    """What a caller sends: new messages for the conversation."""

    messages: Annotated[list[AnyMessage], add_messages]


class AssistantOutput(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    route: NotRequired[Route]
    artifacts: NotRequired[Annotated[list[Artifact], operator.add]]
    usage: NotRequired[Annotated[list[UsageRecord], operator.add]]


class AssistantState(AssistantInput):
    route: NotRequired[Route]
    handoffs: NotRequired[int]
    """Handoffs so far in this turn; reset when a new user message arrives."""
    artifacts: NotRequired[Annotated[list[Artifact], operator.add]]
    usage: NotRequired[Annotated[list[UsageRecord], operator.add]]
