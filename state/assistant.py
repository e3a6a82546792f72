"""State of the personal-assistant router graph (seed 000)."""

from __future__ import annotations

import operator
from typing import Annotated, Literal, NotRequired, get_args

from typing_extensions import TypedDict

from state.common import Artifacts, Messages, RecalledMemory, UsageLog, user_turn
from state.support import Approval

Specialist = Literal["content_writer", "coder", "image_generator", "document_analyst", "workspace_agent"]
SPECIALISTS: tuple[Specialist, ...] = get_args(Specialist)


class Route(TypedDict):
    """Where the router sent this turn, which stage decided, and how sure it was."""

    specialist: Specialist
    stage: Literal["keywords", "follow_up", "llm", "fallback", "handoff"]
    confidence: float
    reason: str


@user_turn
class AssistantInput(TypedDict):
    """What a caller sends: new messages for the conversation."""

    messages: Messages


class AssistantOutput(TypedDict):
    messages: Messages
    route: NotRequired[Route]
    artifacts: NotRequired[Artifacts]
    usage: NotRequired[UsageLog]
    approvals: NotRequired[Annotated[dict[str, Approval], operator.or_]]
    """A human's decision on each destructive tool call (an MCP server's), by tool call id."""
    memories: NotRequired[list[RecalledMemory]]
    """Long-term memories recalled for this run (``nodes.common.memory``), in the answering prompts."""


class AssistantState(AssistantInput):
    route: NotRequired[Route]
    handoffs: NotRequired[int]
    """Handoffs so far in this turn; reset when a new user message arrives."""
    artifacts: NotRequired[Artifacts]
    usage: NotRequired[UsageLog]
    approvals: NotRequired[Annotated[dict[str, Approval], operator.or_]]
    """A human's decision on each destructive tool call (an MCP server's), by tool call id."""
    memories: NotRequired[list[RecalledMemory]]
    """Long-term memories recalled for this run (``nodes.common.memory``), in the answering prompts."""
